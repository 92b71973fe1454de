// RunPodSandbox: the pod's shim, namespaces, network and cgroup, made from the CRI config;
// its id.
import type { SandboxService } from '../../sandbox/sandbox_service';
import type { RunPodSandboxRequest, RunPodSandboxResponse } from '../gen/cri';
import type { Reply } from '../server';
import { podSpec, type ServedHandlers } from './pod_spec';

export function runPodSandbox(pods: SandboxService, handlers: ServedHandlers) {
  return async (req: RunPodSandboxRequest): Promise<Reply<RunPodSandboxResponse>> => ({
    pod_sandbox_id: (await pods.run(podSpec(req.config, req.runtime_handler, handlers))).id,
  });
}
