// StartContainer: the created container's process runs its command.
import type { ContainerService } from '../../container/container_service';
import type { StartContainerRequest } from '../gen/cri';
import type { Reply } from '../server';

export function startContainer(containers: ContainerService) {
  return async (req: StartContainerRequest): Promise<Reply<object>> => {
    await containers.start(req.container_id);
    return {};
  };
}
