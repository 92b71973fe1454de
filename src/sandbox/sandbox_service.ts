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
import { MNT_DETACH, mountFs, umount2 } from '../sys/libc';
import type { Logger } from '../log';
import type { CniNetwork } from '../network/cni';
import { bindNetns, unbindNetns } from '../network/netns';
import { ExitInfo, NamespaceName, ShimClient, ShimError, ShimStream } from '../shim/client';
import { byIdOrPrefix, mustFind, requireId } from '../store/ids';
import { KeyedLock } from '../store/keyed_lock';
import { RecordStore } from '../store/records';
import type { Intent, IntentJournal } from '../store/intents';
import { failpoint } from '../failpoints';
import { findShims, killShim } from '../shim/processes';
import { cgroupChildren, removeCgroupTree, unescapeMountPath } from './host_cgroups';
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
  /** Where each operation records its intent before it touches the host. */
  journal: IntentJournal;
  /** Told of each thing start-up recovery finished, undid or removed (logged already). */
  recovered?: (kind: string) => void;
  /** Environment of the shims skiffd starts (failpoints of tests). */
  shimEnv?: Record<string, string>;
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
  /** Run every step; false when one failed (it was logged). */
  async run(log: Logger): Promise<boolean> {
    let clean = true;
    for (const s of this.steps.reverse()) {
      try {
        await s.fn();
      } catch (e) {
        clean = false;
        log.warn('undo step failed', { step: s.what, error: (e as Error).message });
      }
    }
    this.steps = [];
    return clean;
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
    let intent: Intent | undefined;
    let r: PodRecord;
    try {
      intent = await this.opts.journal.begin('run_pod', id, this.runPlan(id, cgroup, hostNetwork, ipcMode));
      failpoint('run_pod.journaled');
      r = await this.lock.run(id, () => this.doRun(id, config, runtimeHandler, { hostNetwork, pidMode, ipcMode, cgroup }, undo));
    } catch (e) {
      // Undone in full: the intent is done with. Else a restart undoes what is left.
      if ((await undo.run(this.opts.log)) && intent) await this.endIntent(intent);
      throw e;
    }
    failpoint('run_pod.recorded');
    await this.endIntent(intent);
    return r;
  }

  /** Drop an intent whose outcome is recorded; should that fail, the next start finds the
   * intent settled by the record. */
  private async endIntent(intent: Intent): Promise<void> {
    await this.opts.journal.end(intent).catch((e: Error) => this.opts.log.warn('could not drop a settled intent', { op: intent.op, id: intent.id, error: e.message }));
  }

  /** Where a pod's run puts things on the host: all a restart needs to undo it. */
  private runPlan(id: string, cgroup: PodCgroup, hostNetwork: boolean, ipcMode: NamespaceMode) {
    const dir = path.join(this.opts.state, 'pods', id);
    return {
      dir,
      netnsPath: hostNetwork ? '' : path.join(this.opts.state, 'netns', id),
      shmPath: ipcMode === NamespaceMode.NODE ? '' : path.join(dir, 'shm'),
      cgroupParent: cgroup.path,
      ownsCgroup: cgroup.owned,
    };
  }

  private async doRun(
    id: string,
    config: PodSandboxConfig,
    runtimeHandler: string,
    o: { hostNetwork: boolean; pidMode: NamespaceMode; ipcMode: NamespaceMode; cgroup: PodCgroup },
    undo: Undo,
  ): Promise<PodRecord> {
    const plan = this.runPlan(id, o.cgroup, o.hostNetwork, o.ipcMode);
    const dir = plan.dir;
    await fsp.mkdir(dir, { mode: 0o711 });
    undo.push('remove pod dir', () => fsp.rm(dir, { recursive: true, force: true }));
    undo.push('remove pod cgroups', () => this.removeCgroups(plan.cgroupParent, plan.ownsCgroup, [id]));
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
    failpoint('run_pod.dir');
    if (plan.shmPath) {
      r.shmPath = plan.shmPath;
      await fsp.mkdir(r.shmPath, { mode: 0o1777 });
      mountFs('tmpfs', r.shmPath, [['source', 'shm'], ['size', '64m'], ['mode', '1777']]);
      undo.push('unmount shm', () => umount2(r.shmPath, MNT_DETACH));
      failpoint('run_pod.shm');
    }

    undo.push('stop a shim that did not answer', () => this.stopShim(dir, true));
    const shim = await ShimClient.spawn({ binary: this.opts.shimBinary, stateDir: shimDir(r), env: this.opts.shimEnv });
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
    failpoint('run_pod.shim');

    if (plan.netnsPath) {
      r.netnsPath = plan.netnsPath;
      await bindNetns(`/proc/${pod.pid}/ns/net`, r.netnsPath);
      undo.push('unbind netns', () => unbindNetns(r.netnsPath));
      failpoint('run_pod.netns');
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
      failpoint('run_pod.network');
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
      await shim.updatePod({ resources: limits });
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
      // Stopping again a pod that is stopped already only repeats idempotent steps.
      const intent = r.state === 'ready' || this.shims.has(r.id) ? await this.opts.journal.begin('stop_pod', r.id, {}) : undefined;
      failpoint('stop_pod.journaled');
      await this.beforeStop(r.id);
      failpoint('stop_pod.containers');
      if (r.netnsPath || !r.hostNetwork) await this.opts.cni.tearDown(r.id, r.netnsPath || undefined);
      if (r.netnsPath) await unbindNetns(r.netnsPath);
      this.networkChecks.delete(r.id);
      failpoint('stop_pod.network');
      const shim = this.shims.get(r.id);
      if (shim) {
        this.shims.delete(r.id);
        shim.removeAllListeners('lost');
        await shim.shutdown().catch((e: Error) => this.opts.log.warn('shim shutdown failed', { pod: r.id, error: e.message }));
      }
      // A shim skiffd had lost (it never answered after a restart of skiffd).
      else await this.stopShim(r.dir, false);
      if (r.shmPath) unmountQuietly(r.shmPath);
      failpoint('stop_pod.shim');
      if (r.state !== 'notready') await this.save({ ...r, state: 'notready' });
      failpoint('stop_pod.recorded');
      if (intent) await this.opts.journal.end(intent);
    });
  }

  /** Remove a pod and everything it holds; unknown ids succeed, as kubelet expects (an
   * empty one is refused). */
  async remove(id: string): Promise<void> {
    requireId(id, 'pod_sandbox_id');
    const found = this.get(id);
    if (!found) return;
    const intent = await this.opts.journal.begin('remove_pod', found.id, {});
    failpoint('remove_pod.journaled');
    await this.stop(found.id);
    await this.lock.run(found.id, async () => {
      const r = this.pods.get(found.id);
      if (!r) return;
      await this.beforeRemove(r.id);
      failpoint('remove_pod.containers');
      // The shim removes its cgroups when it shuts down; a killed one could not.
      await this.removeCgroups(r.cgroupParent, !!r.ownsCgroup, [r.id]);
      failpoint('remove_pod.cgroups');
      await fsp.rm(r.dir, { recursive: true, force: true });
      failpoint('remove_pod.dir');
      await this.records.delete(r.id);
      this.pods.delete(r.id);
      this.networkChecks.delete(r.id);
      this.emit('change', 'deleted', r);
      const m = r.config.metadata;
      if (m && this.names.get(nameKey(m)) === r.id) this.names.delete(nameKey(m));
      failpoint('remove_pod.recorded');
    });
    await this.opts.journal.end(intent);
  }

  /** Remove cgroups skiff named: `<parent>/<id>` for each id (the infra's, containers'),
   * and the pod cgroup itself when skiff made it. */
  async removeCgroups(parent: string, owned: boolean, ids: string[]): Promise<void> {
    if (owned) {
      await removeCgroupTree(parent);
      return;
    }
    for (const id of ids) await removeCgroupTree(path.posix.join(parent, id));
  }

  /** Shut down the shim serving in a pod dir, else SIGKILL the one started there: by its
   * pid file, or (scan) by its command line, which finds one that is not serving yet. */
  private async stopShim(podDir: string, scan: boolean): Promise<void> {
    const stateDir = shimDir({ dir: podDir });
    try {
      const shim = await ShimClient.connect(path.join(stateDir, 'shim.sock'));
      await shim.shutdown();
      return;
    } catch {
      /* not serving: find its process */
    }
    const pid = Number((await fsp.readFile(path.join(stateDir, 'shim.pid'), 'utf8').catch(() => '')).trim());
    const shims = scan ? await findShims(podDir) : pid > 0 ? (await findShims(podDir, [pid])) : [];
    for (const p of shims) await killShim(p.pid);
  }

  /** Before recovery runs CNI DEL: let the plugins a crash left running finish. */
  async awaitOrphanedPlugins(): Promise<void> {
    const n = await this.opts.cni.waitForOrphanedPlugins(path.join(this.opts.state, 'netns'));
    if (n > 0) this.opts.log.warn('recovery waited for CNI plugins an earlier skiffd left running', { plugins: n });
  }

  /**
   * Start-up recovery of an operation a crash interrupted. A pod's run with no record is
   * undone (shim, CNI DEL with what the ADD was given, netns, /dev/shm, cgroups, dir); a
   * stop or remove of a pod still recorded is carried out again (both are idempotent).
   */
  async recoverIntent(i: Intent): Promise<string> {
    const r = this.pods.get(i.id);
    switch (i.op) {
      case 'run_pod': {
        if (r) return 'finished';
        const p = i.plan;
        await this.stopShim(p.dir, true);
        if (p.netnsPath) {
          await this.opts.cni.tearDown(i.id, p.netnsPath);
          await unbindNetns(p.netnsPath);
        }
        if (p.shmPath) unmountQuietly(p.shmPath);
        await this.removeCgroups(p.cgroupParent, p.ownsCgroup, [i.id]);
        await fsp.rm(p.dir, { recursive: true, force: true });
        return 'undone';
      }
      case 'stop_pod':
        if (!r) return 'finished';
        await this.stop(r.id);
        return 'finished';
      case 'remove_pod':
        if (!r) return 'finished';
        await this.remove(r.id);
        return 'finished';
      default:
        throw new Error(`not a pod operation: ${i.op}`);
    }
  }

  /**
   * Remove what no pod record owns under skiff's own names and roots: shims started in
   * an unknown pod's dir, pod dirs (and their /dev/shm mounts), netns bind mounts, CNI
   * cache entries (CNI DEL with the cached config releases the IP, veth and rules), and
   * `skiff-pod-<id>` cgroups under the configured cgroup parent.
   */
  async sweep(): Promise<void> {
    const known = (id: string) => this.pods.has(id);
    const podsDir = path.join(this.opts.state, 'pods');
    const unknownDirs = (await fsp.readdir(podsDir).catch(() => [] as string[])).filter((n) => POD_ID.test(n) && !known(n));
    for (const p of await findShims(podsDir)) {
      const id = path.basename(path.dirname(p.stateDir));
      if (known(id)) continue;
      await killShim(p.pid);
      this.recovered('shim', { pod: id, pid: p.pid });
    }
    const mounts = await mountPoints();
    for (const id of unknownDirs) {
      const dir = path.join(podsDir, id);
      for (const m of mounts.filter((m) => m.startsWith(dir + '/')).sort().reverse()) {
        unmountQuietly(m);
        this.recovered('shm_mount', { pod: id, path: m });
      }
    }
    const netnsDir = path.join(this.opts.state, 'netns');
    for (const id of (await fsp.readdir(netnsDir).catch(() => [] as string[])).filter((n) => POD_ID.test(n) && !known(n))) {
      const p = path.join(netnsDir, id);
      await this.opts.cni.tearDown(id, p).catch((e: Error) => this.opts.log.warn('CNI DEL of a leftover netns failed', { pod: id, error: e.message }));
      await unbindNetns(p);
      this.recovered('netns', { pod: id, path: p });
    }
    for (let n = await this.opts.cni.dropTempFiles(); n > 0; n--) this.recovered('cni', { file: 'temp file of a cut-short write' });
    for (const id of (await this.opts.cni.cachedIds()).filter((n) => POD_ID.test(n) && !known(n))) {
      await this.opts.cni.tearDown(id);
      this.recovered('cni', { pod: id });
    }
    const parent = this.opts.defaultCgroupParent;
    for (const name of await cgroupChildren(parent)) {
      const m = /^skiff-pod-([a-f0-9]{64})$/.exec(name);
      if (!m || known(m[1])) continue;
      await removeCgroupTree(path.posix.join(parent, name));
      this.recovered('cgroup', { pod: m[1], path: path.posix.join(parent, name) });
    }
    for (const id of unknownDirs) {
      await fsp.rm(path.join(podsDir, id), { recursive: true, force: true });
      this.recovered('pod_dir', { pod: id });
    }
  }

  private recovered(kind: string, detail: Record<string, unknown>): void {
    this.opts.log.warn('recovery removed a leftover', { kind, ...detail });
    this.opts.recovered?.(kind);
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

const POD_ID = /^[a-f0-9]{64}$/;

/** Every mount point of skiffd's mount namespace. */
async function mountPoints(): Promise<string[]> {
  return (await fsp.readFile('/proc/self/mountinfo', 'utf8')).split('\n').filter(Boolean).map((l) => unescapeMountPath(l.split(' ')[4]));
}

function unmountQuietly(target: string): void {
  try {
    umount2(target, MNT_DETACH);
  } catch (e) {
    const errno = (e as NodeJS.ErrnoException).errno;
    if (errno !== 22 && errno !== 2) throw e; // not mounted, or gone
  }
}
