// RunPodSandbox, StopPodSandbox, RemovePodSandbox, PodSandboxStatus, ListPodSandbox,
// StreamPodSandboxes and UpdatePodSandboxResources.
import type { ContainerService } from '../../container/container_service';
import type { PodRecord, SandboxService } from '../../sandbox/sandbox_service';
import type {
  ListPodSandboxRequest, PodSandbox, PodSandboxFilter, PodSandboxStatusRequest, PodSandboxStatusResponse, RemovePodSandboxRequest,
  RunPodSandboxRequest, RunPodSandboxResponse, StopPodSandboxRequest, StreamPodSandboxesRequest, StreamPodSandboxesResponse,
  UpdatePodSandboxResourcesRequest,
} from '../gen/cri';
import { CachedListing, ChunkBounds, STREAM_CHUNK_BOUNDS } from '../list_stream';
import { Encoded, codec } from '../proto';
import type { Reply, StreamContext } from '../server';
import { byCreation, podState, selectPods, toContainerStatus, toPodSandbox, toPodSandboxStatus } from './convert';

const podSandboxCodec = codec<PodSandbox>('PodSandbox');

export function runPodSandbox(pods: SandboxService) {
  return async (req: RunPodSandboxRequest): Promise<Reply<RunPodSandboxResponse>> => ({
    pod_sandbox_id: (await pods.run(req.config, req.runtime_handler)).id,
  });
}

export function stopPodSandbox(pods: SandboxService) {
  return async (req: StopPodSandboxRequest): Promise<Reply<object>> => {
    await pods.stop(req.pod_sandbox_id);
    return {};
  };
}

export function removePodSandbox(pods: SandboxService) {
  return async (req: RemovePodSandboxRequest): Promise<Reply<object>> => {
    await pods.remove(req.pod_sandbox_id);
    return {};
  };
}

export function updatePodSandboxResources(pods: SandboxService) {
  return async (req: UpdatePodSandboxResourcesRequest): Promise<Reply<object>> => {
    await pods.updateResources(req.pod_sandbox_id, req.resources, req.overhead);
    return {};
  };
}

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
      containers_statuses: containers.list().filter((c) => c.podId === r.id).map(toContainerStatus),
      timestamp: Date.now() * 1e6,
    };
  };
}

/**
 * ListPodSandbox and StreamPodSandboxes: the same filter, oldest pod first, over one cache
 * of encoded pods. A pod's listing changes only with its state (the rest is fixed when it
 * is made).
 */
export function podSandboxLists(pods: Pick<SandboxService, 'list' | 'get'>, bounds: ChunkBounds = STREAM_CHUNK_BOUNDS) {
  const listing = new CachedListing<PodRecord, PodSandboxFilter | null>(
    {
      select: (f) => selectPods(pods.list(), f).sort(byCreation),
      version: (r) => String(podState(r)),
      encode: (r) => podSandboxCodec.encode(toPodSandbox(r)),
      live: (id) => !!pods.get(id),
    },
    bounds,
  );
  return {
    ListPodSandbox: async (req: ListPodSandboxRequest): Promise<Encoded> => listing.reply(req.filter),
    StreamPodSandboxes: async (req: StreamPodSandboxesRequest, ctx: StreamContext<StreamPodSandboxesResponse>): Promise<void> => listing.send(req.filter, ctx),
  };
}
