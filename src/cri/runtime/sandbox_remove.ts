// RemovePodSandbox: the pod, its containers and everything made for them go; an unknown
// id is no error.
import type { SandboxService } from '../../sandbox/sandbox_service';
import type { RemovePodSandboxRequest } from '../gen/cri';
import type { Reply } from '../server';

export function removePodSandbox(pods: SandboxService) {
  return async (req: RemovePodSandboxRequest): Promise<Reply<object>> => {
    await pods.remove(req.pod_sandbox_id);
    return {};
  };
}
