// The pods skiffd knows: their durable records and the connections to their shims. The
// pod lifecycle (sandbox_service.ts) changes them; the container service reads them to
// reach a pod's shim.
import { EventEmitter } from 'events';
import * as path from 'path';
import { FailedPrecondition } from '../errors';
import type { LinuxContainerResources, NamespaceMode, PodSandboxConfig } from '../cri/gen/cri';
import type { Logger } from '../log';
import type { ExitInfo, NamespaceName, ShimClient } from '../shim/client';
import { RecordSet } from '../store/record_set';
import type { HostIdRange } from './userns_pool';

export type PodState = 'ready' | 'notready';

/** The pod-level resources of the last UpdatePodSandboxResources (in-place pod resize). */
export interface PodResources {
  /** The sum of the containers' resources, as kubelet sent it. */
  resources: LinuxContainerResources | null;
  overhead: LinuxContainerResources | null;
  /** Nanoseconds since the epoch. */
  updatedAt: number;
  /** Recorded before the pod cgroup is changed: a restart finds the change unfinished and
   * applies it again, or, if the cgroup refuses it, goes back to `previous`. */
  pending?: { previous: PodResources | null };
}

export interface PodRecord {
  id: string;
  /** RunPodSandbox's config as kubelet sent it: status replies and containers' specs read it. */
  config: PodSandboxConfig;
  runtimeHandler: string;
  /** Nanoseconds since the epoch. */
  createdAt: number;
  state: PodState;
  hostNetwork: boolean;
  pidMode: NamespaceMode;
  ipcMode: NamespaceMode;
  /** /proc/<infra>/ns/<type> of the namespaces the pod owns. */
  namespaces: Partial<Record<NamespaceName, string>>;
  infraPid: number;
  /** The netns bind mount CNI ran in; '' for host-network pods. */
  netnsPath: string;
  ips: string[];
  /** The pod cgroup: the containers' parent (see pod_cgroup.ts). */
  cgroupParent: string;
  /** skiff made the pod cgroup (no cgroup_parent was given) and set the pod's limits on it. */
  ownsCgroup?: boolean;
  /** Set by UpdatePodSandboxResources; until then the config's linux.resources/overhead hold. */
  podResources?: PodResources;
  /** Runtime dir of the pod: the shim's state dir (shim/) and the files below. */
  dir: string;
  hostsPath: string;
  resolvConfPath: string;
  hostnamePath: string;
  /** A tmpfs for /dev/shm, or '' when the pod uses the host's IPC namespace. */
  shmPath: string;
  /** The host ids skiff chose for the pod's user namespace (the userns handler, when
   * kubelet sent no mappings); kubelet's own mappings stay in config. */
  usernsRange?: HostIdRange;
}

const isPodRecord = (v: unknown): v is PodRecord => {
  const r = v as PodRecord;
  return !!r && typeof r.id === 'string' && /^[a-f0-9]{64}$/.test(r.id) && !!r.config && typeof r.dir === 'string' && (r.state === 'ready' || r.state === 'notready');
};

/** The shim's own state dir (0700: socket, pid file, exit files) inside the pod dir,
 * whose shared files (hosts, resolv.conf, hostname, shm) user-namespaced containers
 * must be able to reach. */
export const shimDir = (r: { dir: string }) => path.join(r.dir, 'shim');

/** The name a pod holds while it exists: one pod per name, namespace, uid and attempt. */
export const podName = (m: { name: string; namespace: string; uid: string; attempt: number }) => `${m.name}_${m.namespace}_${m.uid}_${m.attempt}`;

/** Shims skiffd talks to at once when it starts (reconnection, reconcile): one at a time,
 * 500 pods take seconds of round trips; a bound keeps the sockets opened together few. */
export const SHIM_CONCURRENCY = 32;

export interface PodShimEvents {
  /** A process of the pod's shim exited: a container, or an exec. */
  exit: (podId: string, exit: ExitInfo) => void;
  /** A pod's shim went away (killed): its containers are gone. */
  lost: (podId: string) => void;
}

export class PodRegistry extends RecordSet<PodRecord> {
  private readonly shims = new Map<string, ShimClient>();
  private readonly shimEvents = new EventEmitter();

  constructor(root: string, private readonly log: Logger) {
    super({ dir: path.join(root, 'metadata', 'pods'), validate: isPodRecord, warn: (m) => log.warn(m), idField: 'pod_sandbox_id', what: 'pod sandbox'});
  }

  /** Read the pod records back. */
  loadPods(): Promise<PodRecord[]> {
    return this.load((r) => (r.config.metadata ? podName(r.config.metadata) : undefined));
  }

  /** The connection to a pod's shim, while skiffd has one. */
  shim(id: string): ShimClient | undefined {
    return this.shims.get(id);
  }

  requireReady(id: string): PodRecord {
    const r = this.mustGet(id);
    if (r.state !== 'ready' || !this.shims.get(r.id)) throw new FailedPrecondition(`pod sandbox ${r.id} is not ready`);
    return r;
  }

  onShim<E extends keyof PodShimEvents>(event: E, listener: PodShimEvents[E]): void {
    this.shimEvents.on(event, listener);
  }

  /** Take the shim's exit events; a connection lost makes the pod not ready. */
  async attachShim(id: string, shim: ShimClient): Promise<void> {
    shim.on('exit', (e) => this.shimEvents.emit('exit', id, e));
    shim.on('lost', () => {
      this.shims.delete(id);
      const r = this.get(id);
      this.log.warn('lost the connection to a pod shim', { pod: id });
      if (r && r.state === 'ready') void this.save({ ...r, state: 'notready' }).catch(() => {});
      this.shimEvents.emit('lost', id);
    });
    await shim.subscribe();
    this.shims.set(id, shim);
  }

  /** Forget a shim whose pod is being undone (its lost event still tells). */
  forgetShim(id: string): void {
    this.shims.delete(id);
  }

  /** Take the shim away to shut it down: losing it is no longer news. */
  releaseShim(id: string): ShimClient | undefined {
    const shim = this.shims.get(id);
    if (!shim) return undefined;
    this.shims.delete(id);
    shim.removeAllListeners('lost');
    return shim;
  }

  /** Let go of every shim without stopping it (skiffd shutting down). */
  detachShims(): void {
    for (const s of this.shims.values()) {
      s.removeAllListeners('lost');
      s.close();
    }
    this.shims.clear();
  }
}
