// PodSandboxStatus: the pod's status and its containers'; with `verbose`, its infra pid,
// namespaces, network check, cgroup, resources and config as JSON under "info".
import type { ContainerService } from '../../container/container_service';
import type { PodRecord } from '../../sandbox/pod_registry';
import type { SandboxService } from '../../sandbox/sandbox_service';
import type { PodSandboxStatusRequest, PodSandboxStatusResponse } from '../gen/cri';
import type { Reply } from '../server';
import { toContainerStatus, toPodSandboxStatus } from './convert';

/** The pod's resources now: the last UpdatePodSandboxResources, else RunPodSandbox's config.
 * Keys and shape as containerd's verbose info ({"linux": LinuxContainerResources}). */
function podResourcesInfo(r: PodRecord) {
  const p = r.podResources;
  const resources = p ? p.resources : (r.config.linux?.resources ?? null);
  const overhead = p ? p.overhead : (r.config.linux?.overhead ?? null);
  return {
    resources: resources && { linux: resources },
    overhead: overhead && { linux: overhead },
    resourcesUpdatedAt: p?.updatedAt ?? null,
  };
}

export function podSandboxStatus(pods: SandboxService, containers: ContainerService) {
  return async (req: PodSandboxStatusRequest): Promise<Reply<PodSandboxStatusResponse>> => {
    const r = pods.mustGet(req.pod_sandbox_id);
    const info: Record<string, string> = {};
    if (req.verbose) {
      info.info = JSON.stringify({
        pid: r.infraPid,
        namespaces: r.namespaces,
        netns: r.netnsPath,
        networkCheck: pods.networkCheck(r.id),
        cgroupParent: r.cgroupParent,
        cgroupOwned: r.ownsCgroup ?? false,
        ...podResourcesInfo(r),
        runtimeHandler: r.runtimeHandler,
        config: r.config,
      });
    }
    return {
      status: toPodSandboxStatus(r),
      info,
      containers_statuses: containers.inPod(r.id).map(toContainerStatus),
      timestamp: Date.now() * 1e6,
    };
  };
}
