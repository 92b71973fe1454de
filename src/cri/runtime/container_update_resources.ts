// UpdateContainerResources: new limits on a running or created container's cgroup, all
// or nothing.
import type { ContainerService } from '../../container/container_service';
import type { UpdateContainerResourcesRequest } from '../gen/cri';
import type { Reply } from '../server';

export function updateContainerResources(containers: ContainerService) {
  return async (req: UpdateContainerResourcesRequest): Promise<Reply<object>> => {
    await containers.updateResources(req.container_id, req.linux);
    return {};
  };
}
