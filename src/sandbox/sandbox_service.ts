// Pod lifecycle: a shim per pod holds the pod's namespaces; skiffd bind-mounts the
// netns, runs CNI, writes hosts/resolv.conf/hostname, mounts /dev/shm, and keeps one
// durable record per pod. Failed runs undo every step; stop and remove are idempotent;
// after a restart every pod is found again through its shim's socket.
import { randomBytes } from 'crypto';
import { EventEmitter } from 'events';
import { promises as fsp } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { AlreadyExists, FailedPrecondition, GrpcCode, InvalidArgument, NotFound } from '../errors';
import { LinuxContainerResources, NamespaceMode, PodSandboxConfig } from '../cri/gen/cri';
import { checkLinuxResources } from '../container/resources';
import { MNT_DETACH, mountFs, umount2 } from '../image/libc';
import type { Logger } from '../log';
import type { CniNetwork } from '../network/cni';
import { bindNetns, unbindNetns } from '../network/netns';
import { ExitInfo, NamespaceName, ShimClient, ShimError, ShimStream } from '../shim/client';
import { byIdOrPrefix, mustFind, requireId } from '../store/ids';
import { KeyedLock } from '../store/keyed_lock';
import { RecordStore } from '../store/records';
import { PodCgroup, criFieldNames, podCgroup, podCgroupUpdate } from './pod_cgroup';
import { hostnameFile, hostsFile, resolvConf } from './pod_files';
import { checkPortMappings, cniPortMappings } from './port_mappings';
import { checkSysctls } from './sysctls';
import { checkPodUserNamespace } from './userns';

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
}

const isPodRecord = (v: unknown): v is PodRecord => {
  const r = v as PodRecord;
  return !!r && typeof r.id === 'string' && /^[a-f0-9]{64}$/.test(r.id) && !!r.config && typeof r.dir === 'string' && (r.state === 'ready' || r.state === 'notready');
};

export interface NetworkCheck {
  ok: boolean;
  /** When it ran (RFC 3339). */
  at: string;
  error?: string;
}

export interface SandboxServiceOptions {
  root: string;
  state: string;
  shimBinary: string;
  runtimeHandler: string;
  defaultCgroupParent: string;
  cni: CniNetwork;
  log: Logger;
}

export interface SandboxEvents {
  exit: (podId: string, exit: ExitInfo) => void;
  /** A pod's shim went away (killed): its containers are gone. */
  lost: (podId: string) => void;
  /** A pod was created, started (ready), stopped (not ready) or deleted. */
  change: (change: LifecycleChange, pod: PodRecord) => void;
}

export declare interface SandboxService {
  on<E extends keyof SandboxEvents>(event: E, listener: SandboxEvents[E]): this;
  emit<E extends keyof SandboxEvents>(event: E, ...args: Parameters<SandboxEvents[E]>): boolean;
}

/** The shim's own state dir (0700: socket, pid file, exit files) inside the pod dir,
 * whose shared files (hosts, resolv.conf, hostname, shm) user-namespaced containers
 * must be able to reach. */
export const shimDir = (r: { dir: string }) => path.join(r.dir, 'shim');

const nameKey = (m: { name: string; namespace: string; uid: string; attempt: number }) => `${m.name}_${m.namespace}_${m.uid}_${m.attempt}`;
export const nowNs = () => Date.now() * 1e6;

/** Undo steps of a half-done operation, run newest first. */
class Undo {
  private steps: { what: string; fn: () => Promise<void> | void }[] = [];
  push(what: string, fn: () => Promise<void> | void): void {
    this.steps.push({ what, fn });
  }
  async run(log: Logger): Promise<void> {
    for (const s of this.steps.reverse()) {
      try {
        await s.fn();
      } catch (e) {
        log.warn('undo step failed', { step: s.what, error: (e as Error).message });
      }
    }
    this.steps = [];
  }
}

/** What a pod or container went through, as GetContainerEvents reports it. */
export type LifecycleChange = 'created' | 'started' | 'stopped' | 'deleted';

/** The change a record's state move is; a pod is created and started in one step. */
export function lifecycleChange(from: string | undefined, to: string): LifecycleChange | undefined {
  if (from === to) return undefined;
  if (to === 'created') return 'created';
  if (to === 'running' || (to === 'ready' && from === undefined)) return 'started';
  if (to === 'exited' || to === 'notready') return 'stopped';
  return undefined;
}

export class SandboxService extends EventEmitter {
  private readonly records: RecordStore<PodRecord>;
  private readonly pods = new Map<string, PodRecord>();
  private readonly shims = new Map<string, ShimClient>();
  private readonly networkChecks = new Map<string, NetworkCheck>();
  private readonly names = new Map<string, string>();
  readonly lock = new KeyedLock();
  /** Called before a pod stops (its containers are stopped first) and before removal. */
  beforeStop: (podId: string) => Promise<void> = async () => {};
  beforeRemove: (podId: string) => Promise<void> = async () => {};

  constructor(private readonly opts: SandboxServiceOptions) {
    super();
    this.records = new RecordStore(path.join(opts.root, 'metadata', 'pods'), isPodRecord, (m) => opts.log.warn(m));
  }

  /** Load the records and reconnect to every live shim. */
  async init(): Promise<void> {
    await this.records.init();
    await fsp.mkdir(path.join(this.opts.state, 'pods'), { recursive: true, mode: 0o711 });
    await fsp.mkdir(path.join(this.opts.state, 'netns'), { recursive: true, mode: 0o711 });
    for (const r of (await this.records.all()).values()) {
      this.pods.set(r.id, r);
      const m = r.config.metadata;
      if (m) this.names.set(nameKey(m), r.id);
      if (r.state !== 'ready') continue;
      try {
        await this.attachShim(r.id, await ShimClient.connect(path.join(shimDir(r), 'shim.sock')));
      } catch {
        this.opts.log.warn('pod shim gone: pod is not ready', { pod: r.id });
        await this.save({ ...r, state: 'notready' });
      }
    }
    for (const r of [...this.pods.values()]) if (r.podResources?.pending) await this.finishResize(r);
    void this.checkNetworks();
  }

  /** A resize a crash interrupted: applied again (the shim's update is all or nothing and
   * can be repeated), or, if the cgroup will not take it now, the record goes back. */
  private async finishResize(r: PodRecord): Promise<void> {
    const p = r.podResources!;
    try {
      await this.applyPodResources(r, p);
      await this.save({ ...r, podResources: { resources: p.resources, overhead: p.overhead, updatedAt: p.updatedAt } });
    } catch (e) {
      this.opts.log.warn('an interrupted pod resize could not be finished: back to the resources before it', { pod: r.id, error: (e as Error).message });
      const back: PodRecord = { ...r };
      if (p.pending!.previous) back.podResources = p.pending!.previous;
      else delete back.podResources;
      await this.save(back);
    }
  }

  /** CNI CHECK of every ready pod's network after a restart of skiffd, one pod at a time in
   * the background: a network that went away while skiffd was down (a deleted bridge or
   * veth, a flushed IP allocation) is logged and shown in PodSandboxStatus's verbose info.
   * The pod's state is left alone: whether to recreate it is kubelet's call. */
  private async checkNetworks(): Promise<void> {
    for (const r of [...this.pods.values()]) {
      if (r.state !== 'ready' || !r.netnsPath) continue;
      const at = new Date().toISOString();
      try {
        await this.opts.cni.check(r.id, r.netnsPath);
        this.networkChecks.set(r.id, { ok: true, at });
      } catch (e) {
        const error = (e as Error).message;
        this.networkChecks.set(r.id, { ok: false, at, error });
        this.opts.log.warn('CNI CHECK failed for a pod found after a restart', { pod: r.id, error });
      }
    }
  }

  /** The result of the CNI CHECK run after skiffd's last restart, if there was one. */
  networkCheck(id: string): NetworkCheck | undefined {
    return this.networkChecks.get(id);
  }

  private async attachShim(id: string, shim: ShimClient): Promise<void> {
    shim.on('exit', (e) => this.emit('exit', id, e));
    shim.on('lost', () => {
      this.shims.delete(id);
      const r = this.pods.get(id);
      this.opts.log.warn('lost the connection to a pod shim', { pod: id });
      if (r && r.state === 'ready') void this.save({ ...r, state: 'notready' }).catch(() => {});
      this.emit('lost', id);
    });
    await shim.subscribe();
    this.shims.set(id, shim);
  }

  private async save(r: PodRecord): Promise<void> {
    const old = this.pods.get(r.id);
    await this.records.put(r.id, r);
    this.pods.set(r.id, r);
    if (!old) this.emit('change', 'created', r);
    const change = lifecycleChange(old?.state, r.state);
    if (change) this.emit('change', change, r);
  }

  /** A pod by full id or unique id prefix. */
  get(id: string): PodRecord | undefined {
    return byIdOrPrefix(this.pods, id);
  }

  mustGet(id: string): PodRecord {
    return mustFind(this.pods, id, 'pod_sandbox_id', 'pod sandbox');
  }

  list(): PodRecord[] {
    return [...this.pods.values()];
  }

  shim(id: string): ShimClient | undefined {
    return this.shims.get(id);
  }

  async run(config: PodSandboxConfig | null, runtimeHandler: string): Promise<PodRecord> {
    if (!config) throw new InvalidArgument('config is required');
    const m = config.metadata;
    if (!m || !m.name || !m.namespace || !m.uid) throw new InvalidArgument('config.metadata needs name, namespace and uid');
    if (runtimeHandler && runtimeHandler !== this.opts.runtimeHandler)
      throw new InvalidArgument(`runtime handler "${runtimeHandler}" is not configured (skiff serves "${this.opts.runtimeHandler}" and the default "")`);
    const sc = config.linux?.security_context ?? null;
    const ns = sc?.namespace_options ?? null;
    const hostNetwork = ns?.network === NamespaceMode.NODE;
    const pidMode = ns?.pid ?? NamespaceMode.CONTAINER;
    const ipcMode = ns?.ipc ?? NamespaceMode.POD;
    if (pidMode === NamespaceMode.TARGET) throw new InvalidArgument('namespace_options.pid: TARGET is for containers, not pods');
    checkSysctls(config.linux?.sysctls ?? {}, { hostNetwork, hostIpc: ipcMode === NamespaceMode.NODE });
    if (config.log_directory && !path.isAbsolute(config.log_directory)) throw new InvalidArgument(`log_directory "${config.log_directory}" must be an absolute path`);
    checkPodUserNamespace(ns?.userns_options ?? null);
    checkPortMappings(config.port_mappings);
    const id = randomBytes(32).toString('hex');
    const cgroup = podCgroup(id, config.linux, this.opts.defaultCgroupParent);

    const key = nameKey(m);
    const clash = this.names.get(key);
    if (clash) throw new AlreadyExists(`pod sandbox name "${key}" is reserved by ${clash}`);
    this.names.set(key, id);
    const undo = new Undo();
    undo.push('release name', () => void this.names.delete(key));
    try {
      return await this.lock.run(id, () => this.doRun(id, config, runtimeHandler, { hostNetwork, pidMode, ipcMode, cgroup }, undo));
    } catch (e) {
      await undo.run(this.opts.log);
      throw e;
    }
  }

  private async doRun(
    id: string,
    config: PodSandboxConfig,
    runtimeHandler: string,
    o: { hostNetwork: boolean; pidMode: NamespaceMode; ipcMode: NamespaceMode; cgroup: PodCgroup },
    undo: Undo,
  ): Promise<PodRecord> {
    const dir = path.join(this.opts.state, 'pods', id);
    await fsp.mkdir(dir, { mode: 0o711 });
    undo.push('remove pod dir', () => fsp.rm(dir, { recursive: true, force: true }));
    const r: PodRecord = {
      id,
      config,
      runtimeHandler,
      createdAt: nowNs(),
      state: 'ready',
      hostNetwork: o.hostNetwork,
      pidMode: o.pidMode,
      ipcMode: o.ipcMode,
      namespaces: {},
      infraPid: 0,
      netnsPath: '',
      ips: [],
      cgroupParent: o.cgroup.path,
      ownsCgroup: o.cgroup.owned,
      dir,
      hostsPath: path.join(dir, 'hosts'),
      resolvConfPath: path.join(dir, 'resolv.conf'),
      hostnamePath: path.join(dir, 'hostname'),
      shmPath: '',
    };
    await fsp.writeFile(r.hostsPath, await hostsFile(o.hostNetwork), { mode: 0o644 });
    await fsp.writeFile(r.resolvConfPath, await resolvConf(config.dns_config), { mode: 0o644 });
    await fsp.writeFile(r.hostnamePath, hostnameFile(config.hostname || os.hostname(), o.hostNetwork), { mode: 0o644 });
    if (o.ipcMode !== NamespaceMode.NODE) {
      r.shmPath = path.join(dir, 'shm');
      await fsp.mkdir(r.shmPath, { mode: 0o1777 });
      mountFs('tmpfs', r.shmPath, [['source', 'shm'], ['size', '64m'], ['mode', '1777']]);
      undo.push('unmount shm', () => umount2(r.shmPath, MNT_DETACH));
    }

    const shim = await ShimClient.spawn({ binary: this.opts.shimBinary, stateDir: shimDir(r) });
    undo.push('shut the shim down', () => shim.shutdown());
    const userns = config.linux?.security_context?.namespace_options?.userns_options;
    const pod = await shim.pod({
      hostname: o.hostNetwork ? undefined : config.hostname || os.hostname(),
      network: o.hostNetwork ? 'host' : 'new',
      uts: o.hostNetwork ? 'host' : 'new',
      ipc: o.ipcMode === NamespaceMode.NODE ? 'host' : 'new',
      pid: o.pidMode === NamespaceMode.POD ? 'new' : 'host',
      userns:
        userns && userns.mode === NamespaceMode.POD
          ? {
              uidMappings: userns.uids.map((u) => ({ containerID: u.container_id, hostID: u.host_id, size: u.length })),
              gidMappings: userns.gids.map((g) => ({ containerID: g.container_id, hostID: g.host_id, size: g.length })),
            }
          : null,
      sysctls: config.linux?.sysctls ?? {},
      cgroupsPath: path.posix.join(o.cgroup.path, id),
      podCgroup: o.cgroup.owned ? { path: o.cgroup.path, resources: o.cgroup.resources ?? {} } : undefined,
    });
    r.infraPid = pod.pid;
    r.namespaces = pod.namespaces;
    await this.attachShim(id, shim);
    undo.push('forget the shim', () => void this.shims.delete(id));

    if (!o.hostNetwork) {
      r.netnsPath = path.join(this.opts.state, 'netns', id);
      await bindNetns(`/proc/${pod.pid}/ns/net`, r.netnsPath);
      undo.push('unbind netns', () => unbindNetns(r.netnsPath));
      undo.push('CNI DEL', () => this.opts.cni.tearDown(id, r.netnsPath));
      const net = await this.opts.cni.setUp({
        id,
        name: config.metadata!.name,
        namespace: config.metadata!.namespace,
        uid: config.metadata!.uid,
        netnsPath: r.netnsPath,
        portMappings: cniPortMappings(config.port_mappings),
        cgroupParent: o.cgroup.path,
      });
      r.ips = [...net.ips.filter((i) => i.family === 4), ...net.ips.filter((i) => i.family === 6)].map((i) => i.address);
    }
    await this.save(r);
    return r;
  }

  /**
   * UpdatePodSandboxResources (in-place pod resize): kubelet sends the pod's new total and
   * overhead after resizing its containers. Validated before anything changes; set on the
   * pod cgroup when skiff owns it and the pod is ready (the sum is that of RunPodSandbox);
   * recorded either way, as containerd and CRI-O do for any pod they know, ready or not.
   * A value the kernel refuses leaves the cgroup (the shim rolls back) and the record as
   * they were.
   */
  async updateResources(id: string, resources: LinuxContainerResources | null, overhead: LinuxContainerResources | null): Promise<void> {
    const found = this.mustGet(id);
    checkLinuxResources(resources, 'resources');
    checkLinuxResources(overhead, 'overhead');
    await this.lock.run(found.id, async () => {
      const r = this.pods.get(found.id);
      if (!r) throw new NotFound(`pod sandbox "${id}" not found`);
      const next: PodResources = { resources, overhead, updatedAt: nowNs() };
      if (!this.appliesPodResources(r)) {
        await this.save({ ...r, podResources: next });
        return;
      }
      await this.save({ ...r, podResources: { ...next, pending: { previous: r.podResources ?? null } } });
      try {
        await this.applyPodResources(r, next);
      } catch (e) {
        await this.save(r);
        throw e;
      }
      await this.save({ ...r, podResources: next });
    });
  }

  /** skiff sets the pod's limits on its cgroup: it made it, and the shim holding it runs. */
  private appliesPodResources(r: PodRecord): boolean {
    return !!r.ownsCgroup && r.state === 'ready';
  }

  private async applyPodResources(r: PodRecord, p: Pick<PodResources, 'resources' | 'overhead'>): Promise<void> {
    if (!this.appliesPodResources(r)) return;
    const limits = podCgroupUpdate(p.resources, p.overhead);
    if (!limits) return;
    const shim = this.shims.get(r.id);
    if (!shim) throw new FailedPrecondition(`pod sandbox ${r.id} is not ready`);
    try {
      await shim.updatePod({ resources: limits as Record<string, unknown> });
    } catch (e) {
      if (!(e instanceof ShimError) || e.grpcStatus !== GrpcCode.INVALID_ARGUMENT) throw e;
      // A shim started by an older skiffd (pods outlive upgrades) has no updatePod: it took
      // the call for a container method and asked for params.id, which updatePod never reads.
      if (e.message.startsWith('params.id') || e.message.includes('unknown method "updatePod"'))
        throw new FailedPrecondition(`pod sandbox ${r.id}: its shim predates pod resizing; its cgroup keeps its limits until the pod is made again`, { cause: e });
      throw new InvalidArgument(criFieldNames(e.message), { cause: e });
    }
  }

  /** Stop: containers first (beforeStop), then the network, the shim and /dev/shm.
   * The record stays, NOTREADY. A second stop, or a stop of an unknown pod, succeeds; an
   * empty id is refused. */
  async stop(id: string): Promise<void> {
    requireId(id, 'pod_sandbox_id');
    const found = this.get(id);
    if (!found) return;
    await this.lock.run(found.id, async () => {
      const r = this.pods.get(found.id);
      if (!r) return;
      await this.beforeStop(r.id);
      if (r.netnsPath || !r.hostNetwork) await this.opts.cni.tearDown(r.id, r.netnsPath || undefined);
      if (r.netnsPath) await unbindNetns(r.netnsPath);
      this.networkChecks.delete(r.id);
      const shim = this.shims.get(r.id);
      if (shim) {
        this.shims.delete(r.id);
        shim.removeAllListeners('lost');
        await shim.shutdown().catch((e: Error) => this.opts.log.warn('shim shutdown failed', { pod: r.id, error: e.message }));
      }
      if (r.shmPath) unmountQuietly(r.shmPath);
      if (r.state !== 'notready') await this.save({ ...r, state: 'notready' });
    });
  }

  /** Remove a pod and everything it holds; unknown ids succeed, as kubelet expects (an
   * empty one is refused). */
  async remove(id: string): Promise<void> {
    requireId(id, 'pod_sandbox_id');
    const found = this.get(id);
    if (!found) return;
    await this.stop(found.id);
    await this.lock.run(found.id, async () => {
      const r = this.pods.get(found.id);
      if (!r) return;
      await this.beforeRemove(r.id);
      await fsp.rm(r.dir, { recursive: true, force: true });
      await this.records.delete(r.id);
      this.pods.delete(r.id);
      this.networkChecks.delete(r.id);
      this.emit('change', 'deleted', r);
      const m = r.config.metadata;
      if (m && this.names.get(nameKey(m)) === r.id) this.names.delete(nameKey(m));
    });
  }

  /** Let go of shims without stopping them (skiffd shutting down). */
  detach(): void {
    for (const s of this.shims.values()) {
      s.removeAllListeners('lost');
      s.close();
    }
    this.shims.clear();
  }

  /** A TCP connection to a port on the pod's localhost, made in its network namespace. */
  portForward(id: string, port: number): Promise<ShimStream> {
    const r = this.requireReady(id);
    return this.shims.get(r.id)!.portForward({ port });
  }

  requireReady(id: string): PodRecord {
    const r = this.mustGet(id);
    if (r.state !== 'ready' || !this.shims.get(r.id)) throw new FailedPrecondition(`pod sandbox ${r.id} is not ready`);
    return r;
  }
}

function unmountQuietly(target: string): void {
  try {
    umount2(target, MNT_DETACH);
  } catch (e) {
    const errno = (e as NodeJS.ErrnoException).errno;
    if (errno !== 22 && errno !== 2) throw e; // not mounted, or gone
  }
}
