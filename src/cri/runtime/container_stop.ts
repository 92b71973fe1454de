// StopContainer: the stop signal, then SIGKILL once the timeout has passed; an unknown id
// is no error.
import type { ContainerService } from '../../container/container_service';
import type { StopContainerRequest } from '../gen/cri';
import type { Reply } from '../server';

export function stopContainer(containers: ContainerService) {
  return async (req: StopContainerRequest): Promise<Reply<object>> => {
    await containers.stop(req.container_id, req.timeout);
    return {};
  };
}
