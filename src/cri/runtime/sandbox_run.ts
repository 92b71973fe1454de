// RunPodSandbox: the pod's shim, namespaces, network and cgroup, made from the CRI config;
// its id.
import type { SandboxService } from '../../sandbox/sandbox_service';
import type { RunPodSandboxRequest, RunPodSandboxResponse } from '../gen/cri';
import type { Reply } from '../server';

export function runPodSandbox(pods: SandboxService) {
  return async (req: RunPodSandboxRequest): Promise<Reply<RunPodSandboxResponse>> => ({
    pod_sandbox_id: (await pods.run(req.config, req.runtime_handler)).id,
  });
}
