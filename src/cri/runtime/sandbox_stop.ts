// StopPodSandbox: the pod's containers, network and shim stop; the pod stays, not ready.
// An unknown id is no error.
import type { SandboxService } from '../../sandbox/sandbox_service';
import type { StopPodSandboxRequest } from '../gen/cri';
import type { Reply } from '../server';

export function stopPodSandbox(pods: SandboxService) {
  return async (req: StopPodSandboxRequest): Promise<Reply<object>> => {
    await pods.stop(req.pod_sandbox_id);
    return {};
  };
}
