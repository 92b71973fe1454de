// UpdatePodSandboxResources: the pod's new resources and overhead, set on the pod cgroup
// skiff made (kubelet sets its own).
import type { SandboxService } from '../../sandbox/sandbox_service';
import type { UpdatePodSandboxResourcesRequest } from '../gen/cri';
import type { Reply } from '../server';

export function updatePodSandboxResources(pods: SandboxService) {
  return async (req: UpdatePodSandboxResourcesRequest): Promise<Reply<object>> => {
    await pods.updateResources(req.pod_sandbox_id, req.resources, req.overhead);
    return {};
  };
}
