// Pod and container records -> CRI messages, and the filters that the List and Stream
// calls share.
import type { ContainerRecord } from '../../container/container_service';
import { criSignal, recordedStopSignal } from '../../container/signals';
import type { PodRecord } from '../../sandbox/pod_registry';
import type { HostIdRange } from '../../sandbox/userns_pool';
import { ContainerState, NamespaceMode, PodSandboxState } from '../gen/cri';
import type { Container, ContainerStatus, PodSandbox, PodSandboxStatus } from '../gen/cri';
import { CachedListing, ChunkBounds } from '../list_stream';
import type { Encoded } from '../proto';
import type { Reply, StreamContext } from '../server';

export const podState = (r: PodRecord) => (r.state === 'ready' ? PodSandboxState.SANDBOX_READY : PodSandboxState.SANDBOX_NOTREADY);

export const containerState = (r: ContainerRecord) =>
  r.state === 'created' ? ContainerState.CONTAINER_CREATED : r.state === 'running' ? ContainerState.CONTAINER_RUNNING : ContainerState.CONTAINER_EXITED;

export function matchesLabels(labels: Record<string, string>, selector: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/** What the List filters ask for: PodSandboxFilter, ContainerFilter, and their stats
 * filters (no state). */
interface Selector<S> {
  id: string;
  pod_sandbox_id?: string;
  state?: { state: S } | null;
  label_selector: Record<string, string>;
}

/** The records a filter selects: id prefix, pod id prefix, state, labels; all of them
 * without a filter. */
function select<R extends { id: string; config: { labels: Record<string, string> } }, S>(list: R[], f: Selector<S> | null, state: (r: R) => S, podId: (r: R) => string): R[] {
  if (!f) return list.slice();
  return list.filter(
    (r) =>
      (!f.id || r.id.startsWith(f.id)) &&
      (!f.pod_sandbox_id || podId(r).startsWith(f.pod_sandbox_id)) &&
      (!f.state || state(r) === f.state.state) &&
      matchesLabels(r.config.labels, f.label_selector),
  );
}

export const selectPods = (list: PodRecord[], f: Selector<PodSandboxState> | null): PodRecord[] => select(list, f, podState, (r) => r.id);

export const selectContainers = (list: ContainerRecord[], f: Selector<ContainerState> | null): ContainerRecord[] => select(list, f, containerState, (r) => r.podId);

/** Oldest first, then by id: the order ListPodSandbox and ListContainers answer in. */
export const byCreation = <R extends { createdAt: number; id: string }>(a: R, b: R): number => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1);

/**
 * The handlers of ListPodSandbox or ListContainers and of its Stream call: what `select`
 * takes of the records for a filter, oldest first, over one cache of encoded records. A
 * record's listing changes only with its state (the rest is fixed when it is made); a
 * whole List reply is kept until the records' generation changes.
 */
export function recordLists<R extends { createdAt: number; id: string }, F>(
  records: { list(): R[]; get(id: string): R | undefined; generation(): number },
  select: (list: R[], f: F) => R[],
  state: (r: R) => number,
  encode: (r: R) => Buffer,
  bounds: ChunkBounds,
) {
  const listing = new CachedListing<R, F>(
    { select: (f) => select(records.list(), f).sort(byCreation), version: (r) => String(state(r)), encode, live: (id) => !!records.get(id), generation: () => records.generation() },
    bounds,
  );
  return {
    list: async (req: { filter: F }): Promise<Encoded> => listing.reply(req.filter),
    stream: (req: { filter: F }, ctx: StreamContext<unknown>): Promise<void> => listing.send(req.filter, ctx),
  };
}

export function toPodSandbox(r: PodRecord): Reply<PodSandbox> {
  return {
    id: r.id,
    metadata: r.config.metadata,
    state: podState(r),
    created_at: r.createdAt,
    labels: r.config.labels,
    annotations: r.config.annotations,
    runtime_handler: r.runtimeHandler,
  };
}

const rangeIdMapping = (r: HostIdRange) => ({ container_id: 0, host_id: r.hostId, length: r.length });

export function toPodSandboxStatus(r: PodRecord): Reply<PodSandboxStatus> {
  const ns = r.config.linux?.security_context?.namespace_options;
  return {
    id: r.id,
    metadata: r.config.metadata,
    state: podState(r),
    created_at: r.createdAt,
    network: { ip: r.ips[0] ?? '', additional_ips: r.ips.slice(1).map((ip) => ({ ip })) },
    linux: {
      namespaces: {
        options: {
          network: r.hostNetwork ? NamespaceMode.NODE : NamespaceMode.POD,
          pid: r.pidMode,
          ipc: r.ipcMode,
          target_id: '',
          // What the pod has: the userns handler's range when skiff chose it.
          userns_options: r.usernsRange ? { mode: NamespaceMode.POD, uids: [rangeIdMapping(r.usernsRange)], gids: [rangeIdMapping(r.usernsRange)] } : (ns?.userns_options ?? null),
        },
      },
    },
    labels: r.config.labels,
    annotations: r.config.annotations,
    runtime_handler: r.runtimeHandler,
  };
}

export function toContainer(r: ContainerRecord): Reply<Container> {
  return {
    id: r.id,
    pod_sandbox_id: r.podId,
    metadata: r.config.metadata,
    image: { image: r.config.image?.image ?? '', annotations: r.config.image?.annotations ?? {} },
    image_ref: r.imageRef,
    image_id: r.imageId,
    state: containerState(r),
    created_at: r.createdAt,
    labels: r.config.labels,
    annotations: r.config.annotations,
  };
}

/** The CRI mounts as containerd reports them: an image volume's host_path is where its
 * view (or sub path) is on the host, its image and image_sub_path as kubelet sent them. */
function statusMounts(r: ContainerRecord): ContainerRecord['config']['mounts'] {
  const volumes = r.imageVolumes ?? [];
  if (volumes.length === 0) return r.config.mounts;
  return r.config.mounts.map((m, i) => {
    const v = volumes.find((x) => x.mount === i);
    return v ? { ...m, host_path: v.source, uidMappings: [], gidMappings: [] } : m;
  });
}

export function toContainerStatus(r: ContainerRecord): Reply<ContainerStatus> {
  return {
    id: r.id,
    metadata: r.config.metadata,
    state: containerState(r),
    created_at: r.createdAt,
    started_at: r.startedAt,
    finished_at: r.finishedAt,
    exit_code: r.exitCode,
    image: { image: r.config.image?.image ?? '', annotations: r.config.image?.annotations ?? {} },
    image_ref: r.imageRef,
    image_id: r.imageId,
    reason: r.reason,
    message: r.message,
    labels: r.config.labels,
    annotations: r.config.annotations,
    mounts: statusMounts(r),
    log_path: r.logPath,
    resources: r.resources ? { linux: r.resources } : null,
    user: { linux: { uid: r.user.uid, gid: r.user.gid, supplemental_groups: r.user.additionalGids } },
    // The signal in force, resolved as containerd reports it (SIGTERM when neither the
    // config nor the image names one); RUNTIME_DEFAULT only for 32/33, which have no name.
    stop_signal: criSignal(recordedStopSignal(r.stopSignal)),
  };
}
