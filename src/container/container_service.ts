// Container lifecycle over the pod's shim: an OCI bundle (overlay rootfs + config.json
// built from the CRI config and the image) per container, one durable record each,
// exits recorded from the shim's events, and every step undone when create fails.
import { randomBytes } from 'crypto';
import { promises as fsp } from 'fs';
import * as path from 'path';
import { AlreadyExists, DeadlineExceeded, FailedPrecondition, InvalidArgument, NotFound } from '../errors';
import type { ContainerConfig, ImageSpec, LinuxContainerResources } from '../cri/gen/cri';
import type { ImageRecord, ImageService } from '../image/image_service';
import type { Logger } from '../log';
import { LifecycleChange, lifecycleChange, nowNs, PodRecord, SandboxService, shimDir } from '../sandbox/sandbox_service';
import type { ExitInfo, OciProcess, ShimClient, ShimStream } from '../shim/client';
import { byIdOrPrefix, mustFind } from '../store/ids';
import { KeyedLock } from '../store/keyed_lock';
import { RecordStore } from '../store/records';
import type { Spec } from './oci';
import { ociResources } from './resources';
import { hostDevices, statDevices } from './devices';
import { readLocalhostProfile, seccompChoice } from './seccomp';
import { Isolation, isolationFromSpec, observeIsolation } from './isolation';
import { initDropsSignal, recordedStopSignal, SIGKILL, stopSignalInForce } from './signals';
import { buildContainerSpec, capabilitiesFromMask } from './spec';
import { readPasswdDb } from './user';
import { APPARMOR_DEFAULT_PROFILE, AppArmorProfiles, HostLsm } from './lsm';

export type ContainerRunState = 'created' | 'running' | 'exited';

export interface ContainerRecord {
  id: string;
  podId: string;
  config: ContainerConfig;
  imageId: string;
  /** The repo digest the image was pulled by, else its id. */
  imageRef: string;
  chainIds: string[];
  /** The signal StopContainer sends first, by name ("SIGUSR1", "SIGRTMIN+3"; see
   * stopSignalInForce). Records from before CRI stop signals hold the image's
   * STOPSIGNAL as written, or '' for SIGTERM. */
  stopSignal: string;
  state: ContainerRunState;
  createdAt: number;
  startedAt: number;
  finishedAt: number;
  exitCode: number;
  reason: string;
  message: string;
  pid: number;
  /** Absolute CRI log path, or '' when the pod has no log directory. */
  logPath: string;
  bundle: string;
  user: { uid: number; gid: number; additionalGids: number[] };
  resources: LinuxContainerResources | null;
}

const isContainerRecord = (v: unknown): v is ContainerRecord => {
  const r = v as ContainerRecord;
  return !!r && typeof r.id === 'string' && /^[a-f0-9]{64}$/.test(r.id) && typeof r.podId === 'string' && !!r.config && ['created', 'running', 'exited'].includes(r.state);
};

export interface ContainerServiceOptions {
  root: string;
  state: string;
  images: ImageService;
  sandboxes: SandboxService;
  log: Logger;
  /** The lowest oom_score_adj this host lets root set. */
  minOomScoreAdj: number;
  /** The LSMs that enforce on this host (detectHostLsm). */
  lsm: HostLsm;
  /** Where AppArmor enforces: the kernel's profiles and skiff's default; defaults to
   * the real host's, with skiff-default's text under <state>/apparmor. */
  appArmorProfiles?: AppArmorProfiles;
  /** Where relative Localhost seccomp profiles are found (kubelet's seccomp dir). */
  seccompProfileRoot?: string;
}

function exitReason(e: ExitInfo): string {
  if (e.reason === 'OOMKilled' || e.oomKilled) return 'OOMKilled';
  return e.exitCode === 0 ? 'Completed' : 'Error';
}

/**
 * Create the missing targets of bind mounts inside rootfs (a directory for a directory
 * source, else an empty file). A path through a symlink is left alone: the shim
 * resolves those inside the rootfs itself.
 */
async function createBindTargets(rootfs: string, mounts: { destination: string; type?: string; source?: string; options?: string[] }[]): Promise<void> {
  for (const m of mounts) {
    const isBind = m.type === 'bind' || m.options?.includes('bind') || m.options?.includes('rbind');
    if (!isBind || !m.source) continue;
    const parts = m.destination.split('/').filter(Boolean);
    let cur = rootfs;
    let ok = true;
    for (const [i, part] of parts.entries()) {
      cur = path.join(cur, part);
      const st = await fsp.lstat(cur).catch(() => undefined);
      if (st?.isSymbolicLink()) {
        ok = false;
        break;
      }
      if (st) continue;
      const last = i === parts.length - 1;
      const srcIsDir = last ? (await fsp.stat(m.source).catch(() => undefined))?.isDirectory() ?? true : true;
      if (srcIsDir) await fsp.mkdir(cur, { mode: 0o755 });
      else await fsp.writeFile(cur, '', { mode: 0o644, flag: 'wx' });
    }
    void ok;
  }
}

/**
 * Make each host path of the CRI mounts that names nothing on the host (not even a dangling
 * link) an empty directory, as containerd and CRI-O do: kubelet hands hostPath volumes of
 * type "" over unchecked. Returns the directories made, parents first.
 */
async function makeMissingHostPaths(hostPaths: string[]): Promise<string[]> {
  const made: string[] = [];
  for (const p of hostPaths) {
    const exists = await fsp.lstat(p).then(
      () => true,
      (e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT') return false;
        throw e;
      },
    );
    if (exists) continue;
    const first = await fsp.mkdir(p, { recursive: true, mode: 0o755 });
    if (!first) continue;
    const chain: string[] = [];
    for (let d = p; ; d = path.dirname(d)) {
      chain.unshift(d);
      if (d === first || d === path.dirname(d)) break;
    }
    made.push(...chain);
  }
  return made;
}

export class ContainerService {
  private readonly records: RecordStore<ContainerRecord>;
  private readonly containers = new Map<string, ContainerRecord>();
  private readonly names = new Map<string, string>();
  private readonly exitWaiters = new Map<string, (() => void)[]>();
  private readonly lock = new KeyedLock();
  private hostCaps: string[] | undefined;
  /** Told when a container is removed (caches keyed by container id). */
  onRemoved: (id: string) => void = () => {};
  /** Isolation facts from each container's spec, which does not change once written. */
  private readonly isolationBase = new Map<string, Isolation>();
  /** The last observation of a running container, by the pids it was made on: a
   * process's namespaces and uid_map are fixed once it runs, and a scrape asks for
   * every container's. */
  private readonly isolationSeen = new Map<string, { pid: number; infraPid: number; isolation: Isolation }>();
  private readonly changeListeners = new Set<(change: LifecycleChange, r: ContainerRecord) => void>();
  /** Containers being created, by id: their image and layers are in use before they are recorded. */
  private readonly creating = new Map<string, { imageId: string; chainIds: string[] }>();

  private readonly appArmor: AppArmorProfiles;

  constructor(private readonly opts: ContainerServiceOptions) {
    this.appArmor = opts.appArmorProfiles ?? new AppArmorProfiles({ stateDir: opts.state });
    this.records = new RecordStore(path.join(opts.root, 'metadata', 'containers'), isContainerRecord, (m) => opts.log.warn(m));
    opts.sandboxes.on('exit', (podId, e) => void this.onExit(podId, e));
    opts.sandboxes.on('lost', (podId) => void this.onShimLost(podId));
    opts.sandboxes.beforeStop = (podId) => this.stopAllInPod(podId);
    opts.sandboxes.beforeRemove = (podId) => this.removeAllInPod(podId);
  }

  private nameKey(c: ContainerConfig, pod: PodRecord): string {
    const m = pod.config.metadata!;
    return `${c.metadata!.name}_${m.name}_${m.namespace}_${m.uid}_${c.metadata!.attempt}`;
  }

  /** Load records and reconcile them with what the pods' shims report. */
  async init(): Promise<void> {
    // "ALL" and privileged grant what skiffd holds: the shim cannot give more.
    const eff = /^CapEff:\s*([0-9a-f]+)$/m.exec(await fsp.readFile('/proc/self/status', 'utf8'));
    this.hostCaps = eff ? capabilitiesFromMask(eff[1]) : undefined;
    await this.records.init();
    await fsp.mkdir(path.join(this.opts.state, 'containers'), { recursive: true, mode: 0o711 });
    for (const r of (await this.records.all()).values()) {
      this.containers.set(r.id, r);
      const pod = this.opts.sandboxes.get(r.podId);
      if (pod && r.config.metadata) this.names.set(this.nameKey(r.config, pod), r.id);
    }
    for (const pod of this.opts.sandboxes.list()) await this.reconcile(pod.id);
    // Containers whose pod record is gone cannot run: report them exited.
    for (const r of this.containers.values()) if (!this.opts.sandboxes.get(r.podId) && r.state !== 'exited') await this.markGone(r, 'pod sandbox record is gone');
  }

  /** Bring the records of a pod's containers in line with its shim (or its exit files). */
  private async reconcile(podId: string): Promise<void> {
    const shim = this.opts.sandboxes.shim(podId);
    const mine = [...this.containers.values()].filter((c) => c.podId === podId && c.state !== 'exited');
    if (mine.length === 0) return;
    const live = shim ? new Map((await shim.list()).containers.map((s) => [s.id, s])) : new Map();
    for (const r of mine) {
      const s = live.get(r.id);
      if (s && s.status !== 'stopped') {
        if (s.status === 'running' && r.state !== 'running') await this.save({ ...r, state: 'running', pid: s.pid });
        continue;
      }
      const exit = s?.exit ?? (await this.readExitFile(podId, r.id));
      if (exit) await this.recordExit(r, exit);
      else await this.markGone(r, shim ? 'container not found in its shim' : 'the pod shim is gone (host reboot or killed)');
    }
  }

  private async readExitFile(podId: string, id: string): Promise<ExitInfo | undefined> {
    const pod = this.opts.sandboxes.get(podId);
    if (!pod) return undefined;
    try {
      return JSON.parse(await fsp.readFile(path.join(shimDir(pod), 'exits', `${id}.json`), 'utf8')) as ExitInfo;
    } catch {
      return undefined;
    }
  }

  private async markGone(r: ContainerRecord, why: string): Promise<void> {
    await this.save({ ...r, state: 'exited', finishedAt: r.finishedAt || nowNs(), exitCode: 255, reason: 'Unknown', message: why });
    this.wakeWaiters(r.id);
  }

  private async save(r: ContainerRecord): Promise<void> {
    const old = this.containers.get(r.id);
    this.containers.set(r.id, r);
    await this.records.put(r.id, r);
    const change = lifecycleChange(old?.state, r.state);
    if (change) this.emitChange(change, r);
  }

  private emitChange(change: LifecycleChange, r: ContainerRecord): void {
    for (const l of this.changeListeners) l(change, r);
  }

  /** Told of every container created, started, stopped (exited) and deleted. */
  onChange(listener: (change: LifecycleChange, r: ContainerRecord) => void): () => void {
    this.changeListeners.add(listener);
    return () => void this.changeListeners.delete(listener);
  }

  private async recordExit(r: ContainerRecord, e: ExitInfo): Promise<void> {
    if (r.state !== 'exited') {
      await this.save({
        ...r,
        state: 'exited',
        finishedAt: e.exitedAtNs || nowNs(),
        exitCode: e.exitCode,
        reason: exitReason(e),
        message: r.message,
        startedAt: r.startedAt || (r.state === 'created' ? 0 : r.startedAt),
      });
    }
    this.wakeWaiters(r.id);
  }

  private wakeWaiters(id: string): void {
    for (const w of this.exitWaiters.get(id) ?? []) w();
    this.exitWaiters.delete(id);
  }

  private async onExit(podId: string, e: ExitInfo): Promise<void> {
    const r = this.containers.get(e.id);
    if (!r || r.podId !== podId) return; // an exec process, or not ours
    await this.lock.run(`exit:${r.id}`, async () => {
      const cur = this.containers.get(r.id);
      if (cur) await this.recordExit(cur, e);
    }).catch((err: Error) => this.opts.log.error('recording an exit failed', { container: r.id, error: err.message }));
  }

  private async onShimLost(podId: string): Promise<void> {
    await this.reconcile(podId).catch((err: Error) => this.opts.log.error('reconciling after a lost shim failed', { pod: podId, error: err.message }));
  }

  /** Resolves once the container is recorded exited, or after timeoutMs (false). */
  private waitExited(id: string, timeoutMs: number): Promise<boolean> {
    const r = this.containers.get(id);
    if (!r || r.state === 'exited') return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        const list = this.exitWaiters.get(id) ?? [];
        this.exitWaiters.set(id, list.filter((w) => w !== done));
        resolve(false);
      }, timeoutMs);
      const done = () => {
        clearTimeout(t);
        resolve(true);
      };
      this.exitWaiters.set(id, [...(this.exitWaiters.get(id) ?? []), done]);
    });
  }

  get(id: string): ContainerRecord | undefined {
    return byIdOrPrefix(this.containers, id);
  }

  mustGet(id: string): ContainerRecord {
    return mustFind(this.containers, id, 'container_id', 'container');
  }

  /** What isolates the container (see isolation.ts): from its spec, checked against the
   * kernel while it runs. */
  async isolation(r: ContainerRecord): Promise<Isolation> {
    let base = this.isolationBase.get(r.id);
    if (!base) {
      const spec = JSON.parse(await fsp.readFile(path.join(r.bundle, 'config.json'), 'utf8')) as Spec;
      base = isolationFromSpec(spec, r.config.linux?.security_context?.privileged === true);
      this.isolationBase.set(r.id, base);
    }
    if (r.state !== 'running') return base;
    const infraPid = this.opts.sandboxes.get(r.podId)?.infraPid ?? 0;
    const seen = this.isolationSeen.get(r.id);
    if (seen && seen.pid === r.pid && seen.infraPid === infraPid) return seen.isolation;
    const isolation = await observeIsolation(base, r.pid, infraPid);
    if (isolation.observed) this.isolationSeen.set(r.id, { pid: r.pid, infraPid, isolation });
    return isolation;
  }

  list(): ContainerRecord[] {
    return [...this.containers.values()];
  }

  async create(podId: string, config: ContainerConfig | null, sandboxConfig: unknown): Promise<ContainerRecord> {
    if (!config) throw new InvalidArgument('config is required');
    if (!config.metadata?.name) throw new InvalidArgument('config.metadata.name is required');
    void sandboxConfig; // kubelet resends the pod's config; the record holds the one it ran with
    const pod = this.opts.sandboxes.requireReady(podId);
    const image = this.resolveImage(config.image);
    const stopSignal = stopSignalInForce(config.stop_signal, image.config.stopSignal);
    let logPath = '';
    if (config.log_path) {
      if (path.isAbsolute(config.log_path) || config.log_path.split('/').includes('..'))
        throw new InvalidArgument(`log_path "${config.log_path}" must be relative to the pod's log_directory, without ".."`);
      if (pod.config.log_directory) logPath = path.join(pod.config.log_directory, config.log_path);
    }
    const key = this.nameKey(config, pod);
    const clash = this.names.get(key);
    if (clash) throw new AlreadyExists(`container name "${key}" is reserved by ${clash}`);
    const id = randomBytes(32).toString('hex');
    this.names.set(key, id);
    this.creating.set(id, { imageId: image.id, chainIds: image.chainIds });
    const bundle = path.join(this.opts.state, 'containers', id);
    const rootfs = path.join(bundle, 'rootfs');
    const undo: (() => Promise<unknown>)[] = [async () => this.names.delete(key), async () => this.creating.delete(id)];
    try {
      await fsp.mkdir(rootfs, { recursive: true, mode: 0o711 });
      undo.push(() => fsp.rm(bundle, { recursive: true, force: true }));
      await this.opts.images.snapshots.mountRootfs(id, image.chainIds, rootfs);
      undo.push(() => this.opts.images.snapshots.removeRootfs(id, rootfs));
      if (logPath) await fsp.mkdir(path.dirname(logPath), { recursive: true, mode: 0o755 });
      const sc = config.linux?.security_context ?? null;
      const devices = await statDevices(config.devices.map((d) => d.host_path));
      const seccomp = sc?.privileged ? undefined : seccompChoice(sc?.seccomp ?? null, sc?.seccomp_profile_path ?? '', this.opts.seccompProfileRoot);
      const localhostProfile = seccomp?.kind === 'localhost' ? await readLocalhostProfile(seccomp.path) : undefined;
      const appArmorProfilesLoaded = this.opts.lsm.apparmor ? await this.appArmor.loaded() : undefined;
      // Image VOLUMEs get an empty directory of the container's own, gone with it.
      const volumes = new Map<string, string>();
      for (const [i, v] of (image.config.volumes ?? []).entries()) {
        const dir = path.join(bundle, 'volumes', String(i));
        await fsp.mkdir(dir, { recursive: true, mode: 0o755 });
        volumes.set(v, dir);
      }
      const spec = buildContainerSpec({
        containerId: id,
        config,
        sandboxConfig: pod.config,
        image: image.config,
        imageName: config.image?.image || image.id,
        rootfsPath: rootfs,
        passwd: await readPasswdDb(rootfs),
        pod: {
          id: pod.id,
          namespaces: pod.namespaces,
          hostNetwork: pod.hostNetwork,
          hostsPath: pod.hostsPath,
          resolvConfPath: pod.resolvConfPath,
          hostnamePath: pod.hostnamePath,
          shmPath: pod.shmPath,
          cgroupParent: pod.cgroupParent,
        },
        restrictOomScoreAdj: this.opts.minOomScoreAdj,
        lsm: this.opts.lsm,
        appArmorProfilesLoaded,
        hostCapabilities: this.hostCaps,
        hostDevices: sc?.privileged ? await hostDevices() : undefined,
        statDevice: (p) => devices.get(p),
        volumeDir: (dst) => volumes.get(dst) ?? volumes.get(dst + '/') ?? path.join(bundle, 'volumes', 'missing'),
        seccompProfileRoot: this.opts.seccompProfileRoot,
        loadLocalhostProfile: () => localhostProfile ?? '',
      });
      if (spec.process.apparmorProfile === APPARMOR_DEFAULT_PROFILE) await this.appArmor.ensureDefault();
      // The host paths as buildContainerSpec checked them (absolute, no "..").
      const hostPaths = config.mounts.map((m) => path.posix.normalize(m.host_path).replace(/(.)\/+$/, '$1'));
      for (const dir of await makeMissingHostPaths(hostPaths)) undo.push(() => fsp.rmdir(dir));
      // In a user namespace the container's root cannot create mount targets in a rootfs
      // owned by the host's root: skiffd makes the bind targets first.
      if (pod.namespaces.user) await createBindTargets(rootfs, spec.mounts);
      await fsp.writeFile(path.join(bundle, 'config.json'), JSON.stringify(spec), { mode: 0o600 });
      const shim = this.opts.sandboxes.shim(pod.id);
      if (!shim) throw new FailedPrecondition(`pod sandbox ${pod.id} is not ready`);
      const created = await shim.create({ id, bundle, logPath: logPath || undefined, stdin: config.stdin, stdinOnce: config.stdin_once });
      undo.push(() => shim.delete({ id, force: true }));
      const user = spec.process?.user ?? { uid: 0, gid: 0 };
      const r: ContainerRecord = {
        id,
        podId: pod.id,
        config,
        imageId: image.id,
        imageRef: image.repoDigests[0] ?? image.id,
        chainIds: image.chainIds,
        stopSignal,
        state: 'created',
        createdAt: nowNs(),
        startedAt: 0,
        finishedAt: 0,
        exitCode: 0,
        reason: '',
        message: '',
        pid: created.pid,
        logPath,
        bundle,
        user: { uid: user.uid, gid: user.gid, additionalGids: user.additionalGids ?? [] },
        resources: config.linux?.resources ?? null,
      };
      await this.save(r);
      this.creating.delete(id);
      return r;
    } catch (e) {
      for (const u of undo.reverse()) await u().catch((err: Error) => this.opts.log.warn('undo of a failed create failed', { container: id, error: err.message }));
      throw e;
    }
  }

  async start(id: string): Promise<void> {
    const found = this.mustGet(id);
    await this.lock.run(found.id, async () => {
      const r = this.containers.get(found.id)!;
      if (r.state !== 'created') throw new FailedPrecondition(`container ${r.id} is ${r.state}, not created`);
      const shim = this.opts.sandboxes.shim(r.podId);
      if (!shim) throw new FailedPrecondition(`pod sandbox ${r.podId} of container ${r.id} is not ready`);
      try {
        const s = await shim.start({ id: r.id });
        const cur = this.containers.get(r.id)!;
        // A process that exits at once may have been recorded exited already.
        if (cur.state === 'created') await this.save({ ...cur, state: 'running', startedAt: nowNs(), pid: s.pid });
        else await this.save({ ...cur, startedAt: cur.startedAt || nowNs() });
      } catch (e) {
        await this.save({ ...r, state: 'exited', finishedAt: nowNs(), exitCode: 128, reason: 'StartError', message: (e as Error).message });
        throw e;
      }
    });
  }

  /** Stop with the stop signal in force (the config's, the image's, or SIGTERM), SIGKILL
   * after timeoutS.
   * An exited or unknown container is not an error. */
  async stop(id: string, timeoutS: number): Promise<void> {
    const found = this.get(id);
    if (!found) return;
    await this.lock.run(found.id, () => this.doStop(found.id, timeoutS));
  }

  private async doStop(id: string, timeoutS: number): Promise<void> {
    const r = this.containers.get(id);
    if (!r || r.state === 'exited') return;
    const shim = this.opts.sandboxes.shim(r.podId);
    if (!shim) {
      await this.reconcile(r.podId);
      return;
    }
    if (r.state === 'created') {
      // Never started: nothing to signal gracefully.
      await shim.kill({ id, signal: SIGKILL, all: true }).catch(() => {});
    } else if (timeoutS > 0) {
      if (await this.stopGracefully(r, shim, timeoutS * 1000)) return;
    }
    await shim.kill({ id, signal: SIGKILL, all: true }).catch(() => {});
    const e = await shim.wait({ id });
    const cur = this.containers.get(id);
    if (cur) await this.recordExit(cur, e);
  }

  /** Send the stop signal and wait up to timeoutMs for the exit. While the container's
   * init has no handler for it yet (a shell that has not exec'd its program), the kernel
   * drops the signal: it is sent again as soon as a handler is there. */
  private async stopGracefully(r: ContainerRecord, shim: ShimClient, timeoutMs: number): Promise<boolean> {
    const signal = recordedStopSignal(r.stopSignal);
    const deadline = Date.now() + timeoutMs;
    let dropped = await initDropsSignal(r.pid, signal);
    await shim.kill({ id: r.id, signal }).catch(() => {});
    while (dropped) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      if (await this.waitExited(r.id, Math.min(left, 100))) return true;
      dropped = await initDropsSignal(r.pid, signal);
      if (!dropped) await shim.kill({ id: r.id, signal }).catch(() => {});
    }
    return this.waitExited(r.id, Math.max(0, deadline - Date.now()));
  }

  /** Remove a container (killing it if it runs); unknown ids succeed. */
  async remove(id: string): Promise<void> {
    const found = this.get(id);
    if (!found) return;
    await this.lock.run(found.id, async () => {
      const r = this.containers.get(found.id);
      if (!r) return;
      if (r.state !== 'exited') await this.doStop(r.id, 0);
      const shim = this.opts.sandboxes.shim(r.podId);
      if (shim) await shim.delete({ id: r.id, force: true }).catch((e: Error) => this.opts.log.warn('shim delete failed', { container: r.id, error: e.message }));
      await this.opts.images.snapshots.removeRootfs(r.id, path.join(r.bundle, 'rootfs'));
      await fsp.rm(r.bundle, { recursive: true, force: true });
      await this.records.delete(r.id);
      this.containers.delete(r.id);
      for (const [k, v] of this.names) if (v === r.id) this.names.delete(k);
      this.isolationBase.delete(r.id);
      this.isolationSeen.delete(r.id);
      this.onRemoved(r.id);
      this.emitChange('deleted', r);
      // Layers only this container kept (its image was removed while it was created) go now.
      if (!this.opts.images.find(r.imageId))
        await this.opts.images.collectGarbage().catch((e: Error) => this.opts.log.warn('image garbage collection failed', { container: r.id, error: e.message }));
    });
  }

  private async stopAllInPod(podId: string): Promise<void> {
    await Promise.all(this.list().filter((c) => c.podId === podId).map((c) => this.stop(c.id, 0)));
  }

  private async removeAllInPod(podId: string): Promise<void> {
    await Promise.all(this.list().filter((c) => c.podId === podId).map((c) => this.remove(c.id)));
  }

  /** The image a CreateContainer names: image_ref, when set, names the exact image (the id
   * or digest kubelet resolved), else image.image by id, tag or digest. */
  private resolveImage(spec: ImageSpec | null): ImageRecord {
    const ref = spec?.image_ref?.trim();
    if (ref) {
      const exact = this.opts.images.findExact(ref);
      if (!exact) throw new NotFound(`config.image.image_ref "${ref}" not found`);
      return exact;
    }
    if (!spec?.image) throw new InvalidArgument('config.image.image is required');
    const image = this.opts.images.find(spec.image);
    if (!image) throw new NotFound(`image "${spec.image}" not found`);
    return image;
  }

  /** Chain ids of every container's rootfs (also of those being created): image GC keeps them. */
  layersInUse(): Set<string> {
    return new Set([...this.list(), ...this.creating.values()].flatMap((c) => c.chainIds));
  }

  /** Image id -> a container that uses it, in any state until it is removed (also while
   * it is created): such an image is not removed. */
  imagesInUse(): Map<string, string> {
    const out = new Map<string, string>();
    for (const [id, c] of this.creating) out.set(c.imageId, id);
    for (const c of this.list()) out.set(c.imageId, c.id);
    return out;
  }

  private requireRunning(id: string): { r: ContainerRecord; shim: NonNullable<ReturnType<SandboxService['shim']>> } {
    const r = this.mustGet(id);
    const shim = this.opts.sandboxes.shim(r.podId);
    if (r.state !== 'running' || !shim) throw new FailedPrecondition(`container ${r.id} is not running (${r.state})`);
    return { r, shim };
  }

  /** The container's process settings (user, env, caps ...) with other args: what exec runs. */
  private async execProcess(r: ContainerRecord, args: string[]): Promise<OciProcess> {
    const spec = JSON.parse(await fsp.readFile(path.join(r.bundle, 'config.json'), 'utf8')) as Spec;
    // An exec enters the container's profile too (the shim writes it before execve):
    // load skiff-default again should it have been removed since the create.
    if (spec.process.apparmorProfile === APPARMOR_DEFAULT_PROFILE) await this.appArmor.ensureDefault();
    return { ...(spec.process as unknown as OciProcess), args, terminal: false };
  }

  async execSync(id: string, cmd: string[], timeoutS: number): Promise<{ stdout: Buffer; stderr: Buffer; exitCode: number }> {
    if (cmd.length === 0) throw new InvalidArgument('cmd is required');
    const { r, shim } = this.requireRunning(id);
    const res = await shim.execSync({ id: r.id, process: await this.execProcess(r, cmd), timeoutMs: timeoutS > 0 ? timeoutS * 1000 : undefined });
    if (res.timedOut) throw new DeadlineExceeded(`command ${JSON.stringify(cmd)} in container ${r.id} timed out after ${timeoutS}s`);
    return { stdout: res.stdout, stderr: res.stderr, exitCode: res.exitCode };
  }

  /** A streaming exec (the CRI streaming server's exec) with the container's process settings. */
  async execStream(id: string, cmd: string[], tty: boolean, stdin: boolean): Promise<ShimStream> {
    const { r, shim } = this.requireRunning(id);
    const process = { ...(await this.execProcess(r, cmd)), terminal: tty };
    return shim.exec({ id: r.id, process, stdin });
  }

  /** Attach to the running container's stdio. */
  attachStream(id: string, stdin: boolean, stdout: boolean, stderr: boolean): Promise<ShimStream> {
    const { r, shim } = this.requireRunning(id);
    return shim.attach({ id: r.id, stdin, stdout, stderr });
  }

  /** Checks for the CRI Exec and Attach calls, before a URL is handed out. */
  checkStreamable(id: string): ContainerRecord {
    return this.requireRunning(id).r;
  }

  async updateResources(id: string, resources: LinuxContainerResources | null): Promise<void> {
    const r = this.mustGet(id);
    if (!resources) return;
    if (r.state === 'exited') throw new FailedPrecondition(`container ${r.id} has exited`);
    const shim = this.opts.sandboxes.shim(r.podId);
    if (!shim) throw new FailedPrecondition(`pod sandbox ${r.podId} is not ready`);
    await shim.update({ id: r.id, resources: ociResources(resources, this.opts.minOomScoreAdj) as Record<string, unknown> });
    await this.save({ ...this.containers.get(r.id)!, resources });
  }

  async reopenLog(id: string): Promise<void> {
    const { r, shim } = this.requireRunning(id);
    await shim.reopenLog({ id: r.id });
  }
}
