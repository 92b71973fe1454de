// CreateContainer: the container made in its pod from the CRI config; its id.
import type { ContainerService } from '../../container/container_service';
import type { CreateContainerRequest, CreateContainerResponse } from '../gen/cri';
import type { Reply } from '../server';

export function createContainer(containers: ContainerService) {
  return async (req: CreateContainerRequest): Promise<Reply<CreateContainerResponse>> => ({
    container_id: (await containers.create(req.pod_sandbox_id, req.config, req.sandbox_config)).id,
  });
}
