// Pod lifecycle: a shim per pod holds the pod's namespaces; skiffd bind-mounts the
// netns, runs CNI, writes hosts/resolv.conf/hostname, mounts /dev/shm, and keeps one
// durable record per pod. Failed runs undo every step; stop and remove are idempotent;
// after a restart every pod is found again through its shim's socket.
import { randomBytes } from 'crypto';
import { promises as fsp } from 'fs';
import * as os from 'os';
import * as path from 'path';
import { FailedPrecondition, GrpcCode, InvalidArgument, NotFound } from '../errors';
import { LinuxContainerResources, NamespaceMode, PodSandboxConfig } from '../cri/gen/cri';
import { checkLinuxResources } from '../container/resources';
import type { Logger } from '../log';
import type { CniNetwork, PortMapping } from '../network/cni';
import type { IdMapping } from '../oci/runtime_spec';
import { ShimClient, ShimError, ShimStream } from '../shim/client';
import { requireId } from '../store/ids';
import type { Intent, IntentJournal, IntentPlans } from '../store/intents';
import { forEachLimited } from '../store/parallel';
import { ChangeListener, nowNs } from '../store/record_set';
import { allDone, Undo } from '../store/undo';
import { failpoint } from '../failpoints';
import { hostPods, PodHost } from './pod_host';
import { PodCgroup, PodCgroupRequest, criFieldNames, podCgroup, podCgroupUpdate } from './pod_cgroup';
import { DnsSettings, hostnameFile, hostsFile, resolvConf } from './pod_files';
import { podName, PodRecord, PodRegistry, PodResources, SHIM_CONCURRENCY, shimDir } from './pod_registry';
import { HostIdRange, rangeMappings, UsernsPool } from './userns_pool';

/** What a pod is made of, checked already (cri/runtime/pod_spec.ts makes it of a
 * RunPodSandbox request). */
export interface PodSpec {
  /** kubelet's config as it came: the record keeps it for status replies and for the
   * containers' specs. */
  config: PodSandboxConfig;
  /** The pod's unique name. */
  name: { name: string; namespace: string; uid: string; attempt: number };
  runtimeHandler: string;
  /** '' for the node's. */
  hostname: string;
  hostNetwork: boolean;
  pidMode: NamespaceMode;
  ipcMode: NamespaceMode;
  /** A user namespace of the pod's own with these mappings; null: the node's. */
  userns: { uidMappings: IdMapping[]; gidMappings: IdMapping[] } | null;
  /** A user namespace with a range of the userns pool (the userns handler, no mappings
   * sent): run() allocates it and sets userns and usernsRange. */
  usernsFromPool?: boolean;
  usernsRange?: HostIdRange;
  sysctls: Record<string, string>;
  /** null or empty: the node's resolv.conf. */
  dns: DnsSettings | null;
  /** The host ports to publish, as CNI's portmap takes them. */
  portMappings: PortMapping[];
  cgroup: PodCgroupRequest;
}

export interface NetworkCheck {
  ok: boolean;
  /** When it ran (RFC 3339). */
  at: string;
  error?: string;
}

/** What a pod's stop and removal do to its containers first (the container service). */
export interface PodContainers {
  stopAllInPod(podId: string): Promise<void>;
  removeAllInPod(podId: string): Promise<void>;
}

export interface SandboxServiceOptions {
  state: string;
  shimBinary: string;
  runtimeHandler: string;
  defaultCgroupParent: string;
  /** The pod records and shim connections, shared with the container service. */
  pods: PodRegistry;
  containers: PodContainers;
  cni: Pick<CniNetwork, 'setUp' | 'tearDown' | 'check' | 'dropTempFiles' | 'cachedIds' | 'waitForOrphanedPlugins'>;
  /** Shims, mounts, netns and cgroups; the real host unless a test gives a fake. */
  host?: PodHost;
  log: Logger;
  /** Where each operation records its intent before it touches the host. */
  journal: IntentJournal;
  /** Told of each thing start-up recovery finished, undid or removed (logged already). */
  recovered?: (kind: string) => void;
  /** Environment of the shims skiffd starts (failpoints of tests). */
  shimEnv?: Record<string, string>;
  /** The host id ranges of the userns handler's pods. */
  usernsPool?: UsernsPool;
}

export class SandboxService {
  private readonly pods: PodRegistry;
  private readonly host: PodHost;
  private readonly networkChecks = new Map<string, NetworkCheck>();
  /** Pods whose shim shut down saying it removed every cgroup it made (not kept across a
   * restart of skiffd: RemovePodSandbox then looks for them itself). */
  private readonly cgroupsRemoved = new Set<string>();
  /** The start-up sweep left the search of /proc for shims to afterStart. */
  private shimSearchDeferred = false;
  /** Userns ranges of pods gone without a record, released once no shim of theirs runs. */
  private unclaimedRanges: string[] = [];

  constructor(private readonly opts: SandboxServiceOptions) {
    this.pods = opts.pods;
    this.host = opts.host ?? hostPods;
  }

  /** Told of every pod created, started (ready), stopped (not ready) and deleted. */
  onChange(listener: ChangeListener<PodRecord>): () => void {
    return this.pods.onChange(listener);
  }

  /** Told when a pod's shim went away (killed): its containers are gone. */
  onShimLost(listener: (podId: string) => void): void {
    this.pods.onShim('lost', listener);
  }

  /** Load the records and reconnect to every live shim (afterStart follows). */
  async init(): Promise<void> {
    await fsp.mkdir(path.join(this.opts.state, 'pods'), { recursive: true, mode: 0o711 });
    await fsp.mkdir(path.join(this.opts.state, 'netns'), { recursive: true, mode: 0o711 });
    const loaded = await this.pods.loadPods();
    await this.opts.usernsPool?.init(loaded.flatMap((r) => (r.usernsRange ? [{ id: r.id, range: r.usernsRange }] : [])));
    const ready = loaded.filter((r) => r.state === 'ready');
    await forEachLimited(ready, SHIM_CONCURRENCY, async (r) => {
      try {
        await this.pods.attachShim(r.id, await this.host.connectShim(path.join(shimDir(r), 'shim.sock')));
      } catch {
        this.opts.log.warn('pod shim gone: pod is not ready', { pod: r.id });
        await this.pods.save({ ...r, state: 'notready' });
      }
    });
    for (const r of this.pods.list()) if (r.podResources?.pending) await this.finishResize(r);
  }

  /** A resize a crash interrupted: applied again (the shim's update is all or nothing and
   * can be repeated), or, if the cgroup will not take it now, the record goes back. */
  private async finishResize(r: PodRecord): Promise<void> {
    const p = r.podResources!;
    try {
      await this.applyPodResources(r, p);
      await this.pods.save({ ...r, podResources: { resources: p.resources, overhead: p.overhead, updatedAt: p.updatedAt } });
    } catch (e) {
      this.opts.log.warn('an interrupted pod resize could not be finished: back to the resources before it', { pod: r.id, error: (e as Error).message });
      const back: PodRecord = { ...r };
      if (p.pending!.previous) back.podResources = p.pending!.previous;
      else delete back.podResources;
      await this.pods.save(back);
    }
  }

  /** CNI CHECK of every ready pod's network after a restart of skiffd, one pod at a time in
   * the background: a network that went away while skiffd was down (a deleted bridge or
   * veth, a flushed IP allocation) is logged and shown in PodSandboxStatus's verbose info.
   * The pod's state is left alone: whether to recreate it is kubelet's call. Run once the
   * socket answers (afterStart): a CHECK spawns plugins, and 500 of them would hold up the
   * reconnection of the pods. */
  private async checkNetworks(): Promise<void> {
    for (const r of this.pods.list()) {
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

  /** A pod by full id or unique id prefix. */
  get(id: string): PodRecord | undefined {
    return this.pods.get(id);
  }

  mustGet(id: string): PodRecord {
    return this.pods.mustGet(id);
  }

  list(): PodRecord[] {
    return this.pods.list();
  }

  /** Changes whenever list() would (RecordSet.generation). */
  generation(): number {
    return this.pods.generation;
  }

  shim(id: string): ShimClient | undefined {
    return this.pods.shim(id);
  }

  requireReady(id: string): PodRecord {
    return this.pods.requireReady(id);
  }

  /** The runtime handler skiff serves, besides the default "". */
  get runtimeHandler(): string {
    return this.opts.runtimeHandler;
  }

  async run(spec: PodSpec): Promise<PodRecord> {
    const id = randomBytes(32).toString('hex');
    const cgroup = podCgroup(id, spec.cgroup, this.opts.defaultCgroupParent);
    this.pods.reserveName(podName(spec.name), id);
    const undo = new Undo();
    undo.push('release name', () => this.pods.releaseName(id));
    let intent: Intent | undefined;
    let r: PodRecord;
    try {
      intent = await this.opts.journal.begin('run_pod', id, this.runPlan(id, cgroup, spec));
      failpoint('run_pod.journaled');
      const withUserns = spec.usernsFromPool ? await this.allocateUserns(id, spec) : spec;
      r = await this.pods.lock.run(id, () => this.doRun(id, withUserns, cgroup, undo));
    } catch (e) {
      // Undone in full: the intent is done with. Else a restart undoes what is left. A
      // userns range goes back only then: no process of the pod may run on it still.
      let clean = await undo.run(this.opts.log);
      if (clean && spec.usernsFromPool) clean = await this.releaseUserns(id);
      if (clean && intent) await this.opts.journal.settled(intent);
      throw e;
    }
    failpoint('run_pod.recorded');
    await this.opts.journal.settled(intent);
    return r;
  }

  /** A range of the userns pool for the pod, recorded before its namespace is made. */
  private async allocateUserns(id: string, spec: PodSpec): Promise<PodSpec> {
    if (!this.opts.usernsPool) throw new FailedPrecondition(`runtime handler "${spec.runtimeHandler}" has no userns pool`);
    const range = await this.opts.usernsPool.allocate(id);
    return { ...spec, userns: rangeMappings(range), usernsRange: range };
  }

  /** The pod's userns range back to the pool; false (logged) when its allocation record
   * stays, for the next start. */
  private async releaseUserns(id: string): Promise<boolean> {
    try {
      await this.opts.usernsPool?.release(id);
      return true;
    } catch (e) {
      this.opts.log.warn('could not release a userns range: the next start does', { pod: id, error: (e as Error).message });
      return false;
    }
  }

  /** Where a pod's run puts things on the host: all a restart needs to undo it. */
  private runPlan(id: string, cgroup: PodCgroup, spec: PodSpec): RunPlan {
    const dir = path.join(this.opts.state, 'pods', id);
    return {
      dir,
      netnsPath: spec.hostNetwork ? '' : path.join(this.opts.state, 'netns', id),
      shmPath: spec.ipcMode === NamespaceMode.NODE ? '' : path.join(dir, 'shm'),
      cgroupParent: cgroup.path,
      ownsCgroup: cgroup.owned,
    };
  }

  private async doRun(id: string, spec: PodSpec, cgroup: PodCgroup, undo: Undo): Promise<PodRecord> {
    const plan = this.runPlan(id, cgroup, spec);
    const dir = plan.dir;
    await fsp.mkdir(dir, { mode: 0o711 });
    undo.push('remove pod dir', () => fsp.rm(dir, { recursive: true, force: true }));
    undo.push('remove pod cgroups', () => this.removeCgroups(plan.cgroupParent, plan.ownsCgroup, [id]));
    const r: PodRecord = {
      id,
      config: spec.config,
      runtimeHandler: spec.runtimeHandler,
      createdAt: nowNs(),
      state: 'ready',
      hostNetwork: spec.hostNetwork,
      pidMode: spec.pidMode,
      ipcMode: spec.ipcMode,
      namespaces: {},
      infraPid: 0,
      netnsPath: '',
      ips: [],
      cgroupParent: cgroup.path,
      ownsCgroup: cgroup.owned,
      dir,
      hostsPath: path.join(dir, 'hosts'),
      resolvConfPath: path.join(dir, 'resolv.conf'),
      hostnamePath: path.join(dir, 'hostname'),
      shmPath: '',
      ...(spec.usernsRange ? { usernsRange: spec.usernsRange } : {}),
    };
    // The shim with the pod's namespaces, the pod's files with /dev/shm, the file the netns
    // is pinned on, and CNI's record of the ADD to come do not depend on each other (but for
    // the pin, which waits for its file): they are made at once, and the ADD runs once the
    // rest is done. Each undoes and recovers on its own (the intent names all of them), and
    // nothing is undone before all have stopped.
    if (plan.netnsPath) undo.push('unbind netns', () => this.host.unbindNetns(plan.netnsPath));
    const mountPoint = plan.netnsPath ? this.host.makeNetnsMountPoint(plan.netnsPath) : Promise.resolve();
    const ready = allDone([this.startInfra(r, spec, cgroup, plan, mountPoint, undo), this.writePodFiles(r, spec, plan, undo), mountPoint]);
    if (plan.netnsPath) {
      const [, net] = await allDone([
        ready,
        this.opts.cni.setUp(
          {
            id,
            name: spec.name.name,
            namespace: spec.name.namespace,
            uid: spec.name.uid,
            netnsPath: plan.netnsPath,
            portMappings: spec.portMappings,
            cgroupParent: cgroup.path,
          },
          ready,
        ),
      ]);
      r.ips = [...net.ips.filter((i) => i.family === 4), ...net.ips.filter((i) => i.family === 6)].map((i) => i.address);
      failpoint('run_pod.network');
    } else await ready;
    await this.pods.save(r);
    return r;
  }

  /** hosts, resolv.conf, hostname and a tmpfs for /dev/shm in the pod dir. */
  private async writePodFiles(r: PodRecord, spec: PodSpec, plan: RunPlan, undo: Undo): Promise<void> {
    await Promise.all([
      hostsFile(spec.hostNetwork).then((text) => fsp.writeFile(r.hostsPath, text, { mode: 0o644 })),
      resolvConf(spec.dns).then((text) => fsp.writeFile(r.resolvConfPath, text, { mode: 0o644 })),
      fsp.writeFile(r.hostnamePath, hostnameFile(spec.hostname || os.hostname(), spec.hostNetwork), { mode: 0o644 }),
    ]);
    failpoint('run_pod.dir');
    if (plan.shmPath) {
      r.shmPath = plan.shmPath;
      await fsp.mkdir(r.shmPath, { mode: 0o1777 });
      this.host.mountShm(r.shmPath);
      undo.push('unmount shm', () => this.host.unmount(r.shmPath));
      failpoint('run_pod.shm');
    }
  }

  /** The pod's shim, its infra process holding the pod's namespaces, and the netns pinned. */
  private async startInfra(r: PodRecord, spec: PodSpec, cgroup: PodCgroup, plan: RunPlan, mountPoint: Promise<void>, undo: Undo): Promise<void> {
    const id = r.id;
    undo.push('stop a shim that did not answer', () => this.stopShim(r.dir, true));
    const shim = await this.host.spawnShim({ binary: this.opts.shimBinary, stateDir: shimDir(r), env: this.opts.shimEnv });
    undo.push('shut the shim down', () => shim.shutdown());
    undo.push('forget the shim', () => this.pods.forgetShim(id));
    // The subscription goes with the pod request: the shim answers them in order.
    const [pod] = await allDone([
      shim.pod({
        hostname: spec.hostNetwork ? undefined : spec.hostname || os.hostname(),
        network: spec.hostNetwork ? 'host' : 'new',
        uts: spec.hostNetwork ? 'host' : 'new',
        ipc: spec.ipcMode === NamespaceMode.NODE ? 'host' : 'new',
        pid: spec.pidMode === NamespaceMode.POD ? 'new' : 'host',
        userns: spec.userns,
        sysctls: spec.sysctls,
        cgroupsPath: path.posix.join(cgroup.path, id),
        podCgroup: cgroup.owned ? { path: cgroup.path, resources: cgroup.resources ?? {} } : undefined,
      }),
      this.pods.attachShim(id, shim),
    ] as const);
    r.infraPid = pod.pid;
    r.namespaces = pod.namespaces;
    failpoint('run_pod.shim');
    if (!plan.netnsPath) return;
    await mountPoint;
    await this.host.bindNetns(`/proc/${pod.pid}/ns/net`, plan.netnsPath);
    r.netnsPath = plan.netnsPath;
    // From here CNI may ADD in the netns (unbound by the undo step of its mount point).
    undo.push('CNI DEL', () => this.opts.cni.tearDown(id, plan.netnsPath));
    failpoint('run_pod.netns');
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
    await this.pods.lock.run(found.id, async () => {
      const r = this.pods.get(found.id);
      if (!r) throw new NotFound(`pod sandbox "${id}" not found`);
      const next: PodResources = { resources, overhead, updatedAt: nowNs() };
      if (!this.appliesPodResources(r)) {
        await this.pods.save({ ...r, podResources: next });
        return;
      }
      await this.pods.save({ ...r, podResources: { ...next, pending: { previous: r.podResources ?? null } } });
      try {
        await this.applyPodResources(r, next);
      } catch (e) {
        await this.pods.save(r);
        throw e;
      }
      await this.pods.save({ ...r, podResources: next });
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
    const shim = this.pods.shim(r.id);
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

  /** Stop: containers first, then the network, the shim and /dev/shm.
   * The record stays, NOTREADY. A second stop, or a stop of an unknown pod, succeeds; an
   * empty id is refused. */
  async stop(id: string): Promise<void> {
    await this.pods.ifKnown(id, async (r) => {
      // Stopping again a pod that is stopped already only repeats idempotent steps.
      const intent = r.state === 'ready' || this.pods.shim(r.id) ? await this.opts.journal.begin('stop_pod', r.id, {}) : undefined;
      failpoint('stop_pod.journaled');
      await this.opts.containers.stopAllInPod(r.id);
      failpoint('stop_pod.containers');
      if (r.netnsPath || !r.hostNetwork) await this.opts.cni.tearDown(r.id, r.netnsPath || undefined);
      if (r.netnsPath) await this.host.unbindNetns(r.netnsPath);
      this.networkChecks.delete(r.id);
      failpoint('stop_pod.network');
      const shim = this.pods.releaseShim(r.id);
      let cgroupsRemoved = false;
      if (shim) {
        const answer = await shim.shutdown().catch((e: Error) => void this.opts.log.warn('shim shutdown failed', { pod: r.id, error: e.message }));
        cgroupsRemoved = !!answer?.cgroupsRemoved;
      }
      // A shim skiffd had lost (it never answered after a restart of skiffd).
      else cgroupsRemoved = await this.stopShim(r.dir, false);
      if (cgroupsRemoved) this.cgroupsRemoved.add(r.id);
      if (r.shmPath) this.unmountQuietly(r.shmPath);
      failpoint('stop_pod.shim');
      // Unsynced: a crash of the host leaves the pod not ready anyway (its shim is gone).
      if (r.state !== 'notready') await this.pods.save({ ...r, state: 'notready' }, { sync: false });
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
    await this.pods.lock.run(found.id, async () => {
      const r = this.pods.get(found.id);
      if (!r) return;
      await this.opts.containers.removeAllInPod(r.id);
      failpoint('remove_pod.containers');
      // The shim removes its cgroups when it shuts down and says so; a killed one could not,
      // and a walk of every hierarchy costs tens of ms when twenty pods go at once.
      if (!this.cgroupsRemoved.has(r.id)) await this.removeCgroups(r.cgroupParent, !!r.ownsCgroup, [r.id]);
      failpoint('remove_pod.cgroups');
      await fsp.rm(r.dir, { recursive: true, force: true });
      failpoint('remove_pod.dir');
      await this.pods.delete(r);
      this.networkChecks.delete(r.id);
      this.cgroupsRemoved.delete(r.id);
      failpoint('remove_pod.recorded');
      // The pod is removed: a range the pool could not take back is the next start's (sweep).
      await this.releaseUserns(r.id);
    });
    await this.opts.journal.end(intent);
  }

  /** Remove cgroups skiff named: `<parent>/<id>` for each id (the infra's, containers'),
   * and the pod cgroup itself when skiff made it. */
  private async removeCgroups(parent: string, owned: boolean, ids: string[]): Promise<void> {
    if (owned) {
      await this.host.removeCgroupTree(parent);
      return;
    }
    for (const id of ids) await this.host.removeCgroupTree(path.posix.join(parent, id));
  }

  /** Shut down the shim serving in a pod dir, else SIGKILL the one started there: by its
   * pid file, or (scan) by its command line, which finds one that is not serving yet.
   * True when a shim shut down and removed every cgroup it made. */
  private async stopShim(podDir: string, scan: boolean): Promise<boolean> {
    const stateDir = shimDir({ dir: podDir });
    try {
      const shim = await this.host.connectShim(path.join(stateDir, 'shim.sock'));
      return (await shim.shutdown()).cgroupsRemoved;
    } catch {
      /* not serving: find its process */
    }
    const pid = Number((await fsp.readFile(path.join(stateDir, 'shim.pid'), 'utf8').catch(() => '')).trim());
    const shims = scan ? await this.host.findShims(podDir) : pid > 0 ? await this.host.findShims(podDir, [pid]) : [];
    for (const p of shims) await this.host.killShim(p.pid);
    return false;
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
          await this.host.unbindNetns(p.netnsPath);
        }
        if (p.shmPath) this.unmountQuietly(p.shmPath);
        await this.removeCgroups(p.cgroupParent, p.ownsCgroup, [i.id]);
        await fsp.rm(p.dir, { recursive: true, force: true });
        if (await this.opts.usernsPool?.release(i.id)) this.recovered('userns_range', { pod: i.id });
        return 'undone';
      }
      case 'stop_pod':
        if (!r) return 'finished';
        await this.stop(r.id);
        return 'finished';
      case 'remove_pod':
        // Removed up to the record: the range is what was left.
        if (!r) {
          await this.opts.usernsPool?.release(i.id);
          return 'finished';
        }
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
    // A shim of an unknown pod goes before its pod dir does: with such dirs, /proc is
    // searched now. Without any, a shim could be left only with its dir gone too (a removal
    // whose shutdown failed), and the search (thousands of processes at 500 pods, the most
    // of a restart) waits until the socket answers: afterStart.
    if (unknownDirs.length > 0) await this.sweepShims(false);
    else this.shimSearchDeferred = true;
    const mounts = unknownDirs.length > 0 ? await this.host.mountPoints() : [];
    for (const id of unknownDirs) {
      const dir = path.join(podsDir, id);
      for (const m of mounts.filter((m) => m.startsWith(dir + '/')).sort().reverse()) {
        this.unmountQuietly(m);
        this.recovered('shm_mount', { pod: id, path: m });
      }
    }
    const netnsDir = path.join(this.opts.state, 'netns');
    for (const id of (await fsp.readdir(netnsDir).catch(() => [] as string[])).filter((n) => POD_ID.test(n) && !known(n))) {
      const p = path.join(netnsDir, id);
      await this.opts.cni.tearDown(id, p).catch((e: Error) => this.opts.log.warn('CNI DEL of a leftover netns failed', { pod: id, error: e.message }));
      await this.host.unbindNetns(p);
      this.recovered('netns', { pod: id, path: p });
    }
    for (let n = await this.opts.cni.dropTempFiles(); n > 0; n--) this.recovered('cni', { file: 'temp file of a cut-short write' });
    for (const id of (await this.opts.cni.cachedIds()).filter((n) => POD_ID.test(n) && !known(n))) {
      await this.opts.cni.tearDown(id);
      this.recovered('cni', { pod: id });
    }
    const parent = this.opts.defaultCgroupParent;
    for (const name of await this.host.cgroupChildren(parent)) {
      const m = /^skiff-pod-([a-f0-9]{64})$/.exec(name);
      if (!m || known(m[1])) continue;
      await this.host.removeCgroupTree(path.posix.join(parent, name));
      this.recovered('cgroup', { pod: m[1], path: path.posix.join(parent, name) });
    }
    for (const id of unknownDirs) {
      await fsp.rm(path.join(podsDir, id), { recursive: true, force: true });
      this.recovered('pod_dir', { pod: id });
    }
    // Ranges of pods gone without a record: back to the pool once no shim of theirs can
    // run, which is now if /proc was searched above, else after afterStart's search.
    this.unclaimedRanges = this.opts.usernsPool?.unclaimedPods(known) ?? [];
    if (!this.shimSearchDeferred) await this.releaseUnclaimedRanges();
  }

  private async releaseUnclaimedRanges(): Promise<void> {
    for (const id of this.unclaimedRanges.splice(0)) if (await this.opts.usernsPool!.release(id)) this.recovered('userns_range', { pod: id });
  }

  /** Kill the shims under the pods dir that no pod record owns; `startedBeforeSelf` once
   * skiffd serves: a pod being run meanwhile has no record yet, and a shim of this skiffd's. */
  private async sweepShims(startedBeforeSelf: boolean): Promise<void> {
    for (const p of await this.host.findShims(path.join(this.opts.state, 'pods'), undefined, startedBeforeSelf)) {
      const id = path.basename(path.dirname(p.stateDir));
      if (this.pods.has(id)) continue;
      await this.host.killShim(p.pid);
      this.recovered('shim', { pod: id, pid: p.pid });
    }
  }

  /** What the start leaves until the socket answers: the search for shims no record owns
   * when the sweep put it off, and the CNI CHECK of every pod. */
  async afterStart(): Promise<void> {
    if (this.shimSearchDeferred) {
      this.shimSearchDeferred = false;
      try {
        await this.sweepShims(true);
        await this.releaseUnclaimedRanges();
      } catch (e) {
        this.opts.log.error('the search for shims no pod owns failed; the next start tries again', { error: (e as Error).message });
      }
    }
    await this.checkNetworks();
  }

  private recovered(kind: string, detail: Record<string, unknown>): void {
    this.opts.log.warn('recovery removed a leftover', { kind, ...detail });
    this.opts.recovered?.(kind);
  }

  /** Let go of shims without stopping them (skiffd shutting down). */
  detach(): void {
    this.pods.detachShims();
  }

  /** A TCP connection to a port on the pod's localhost, made in its network namespace. */
  portForward(id: string, port: number): Promise<ShimStream> {
    const r = this.requireReady(id);
    return this.pods.shim(r.id)!.portForward({ port });
  }

  private unmountQuietly(target: string): void {
    try {
      this.host.unmount(target);
    } catch (e) {
      const errno = (e as NodeJS.ErrnoException).errno;
      if (errno !== 22 && errno !== 2) throw e; // not mounted, or gone
    }
  }
}

const POD_ID = /^[a-f0-9]{64}$/;

type RunPlan = IntentPlans['run_pod'];
