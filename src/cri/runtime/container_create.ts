// CreateContainer: the container made in its pod from the CRI config; its id.
import type { ContainerService } from '../../container/container_service';
import { InvalidArgument } from '../../errors';
import type { CreateContainerRequest, CreateContainerResponse } from '../gen/cri';
import type { Reply } from '../server';

export function createContainer(containers: ContainerService) {
  return async (req: CreateContainerRequest): Promise<Reply<CreateContainerResponse>> => {
    if (!req.config) throw new InvalidArgument('config is required');
    return { container_id: (await containers.create(req.pod_sandbox_id, req.config)).id };
  };
}
