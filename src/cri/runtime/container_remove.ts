// RemoveContainer: the container and everything made for it go; an unknown id is no error.
import type { ContainerService } from '../../container/container_service';
import type { RemoveContainerRequest } from '../gen/cri';
import type { Reply } from '../server';

export function removeContainer(containers: ContainerService) {
  return async (req: RemoveContainerRequest): Promise<Reply<object>> => {
    await containers.remove(req.container_id);
    return {};
  };
}
