// ReopenContainerLog: the shim reopens the container's log file (after kubelet rotated it).
import type { ContainerService } from '../../container/container_service';
import type { ReopenContainerLogRequest } from '../gen/cri';
import type { Reply } from '../server';

export function reopenContainerLog(containers: ContainerService) {
  return async (req: ReopenContainerLogRequest): Promise<Reply<object>> => {
    await containers.reopenLog(req.container_id);
    return {};
  };
}
