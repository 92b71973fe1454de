// Container lifecycle over the pod's shim: an OCI bundle (overlay rootfs + config.json
// built from the CRI config and the image) per container, one durable record each,
// exits recorded from the shim's events, and every step undone when create fails.
import { randomBytes } from 'crypto';
import { promises as fsp } from 'fs';
import * as path from 'path';
import { DeadlineExceeded, FailedPrecondition, GrpcCode, InvalidArgument, NotFound } from '../errors';
import type { ContainerConfig, ImageSpec, LinuxContainerResources } from '../cri/gen/cri';
import type { ImageRecord, ImageService } from '../image/image_service';
import type { RootfsIdmap, Snapshotter } from '../image/snapshotter';
import type { Logger } from '../log';
import { PodRecord, PodRegistry, SHIM_CONCURRENCY, shimDir } from '../sandbox/pod_registry';
import { ExecOutputBuffers, ExitInfo, ShimClient, ShimError, ShimStream } from '../shim/client';
import type { Intent, IntentJournal } from '../store/intents';
import { forEachLimited } from '../store/parallel';
import { ChangeListener, nowNs, RecordSet } from '../store/record_set';
import { Undo } from '../store/undo';
import { failpoint } from '../failpoints';
import { removeCgroupTree } from '../sandbox/host_cgroups';
import { podUserns, rootOwner } from '../sandbox/userns';
import type { Process, Spec } from '../oci/runtime_spec';
import { checkMemoryFloor, ociResources } from './resources';
import { BundleHost, writeBundle } from './bundle';
import { requestedCdiDevices, resolveCdiDevices } from './cdi';
import { explainInfraGone } from './infra_end';
import { Isolation, isolationFromSpec, observeIsolation } from './isolation';
import { initDropsSignal, recordedStopSignal, SIGKILL, stopSignalInForce } from './signals';
import { capabilitiesFromMask } from './spec';
import { APPARMOR_DEFAULT_PROFILE, AppArmorProfiles, HostLsm } from './lsm';
import { ImageVolume, isImageMount, mountImageVolumes, planImageVolumes, unmountImageVolumes } from './image_volumes';
import { makeMissingHostPaths } from './host_paths';
import type { CheckpointRestorer } from '../checkpoint/restore';

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
  /** The image volumes it mounts (absent in records from before image volumes). */
  imageVolumes?: ImageVolume[];
  /** The checkpoint archive it was restored from (its start resumes those processes). */
  restoredFrom?: string;
}

const isContainerRecord = (v: unknown): v is ContainerRecord => {
  const r = v as ContainerRecord;
  return !!r && typeof r.id === 'string' && /^[a-f0-9]{64}$/.test(r.id) && typeof r.podId === 'string' && !!r.config && ['created', 'running', 'exited'].includes(r.state);
};

/** What the container lifecycle needs of the image service: the images, and the rootfs
 * and image volume mounts of the snapshotter. */
export type ContainerImages = Pick<ImageService, 'find' | 'findExact' | 'collectGarbage'> & {
  snapshots: Pick<Snapshotter, 'mountRootfs' | 'removeRootfs' | 'listWritableLayers' | 'mountView' | 'unmountView'>;
};

/** What the container lifecycle does to the host besides its bundle dirs, the shim and the
 * snapshotter; a fake in unit tests. */
export interface ContainerHost {
  removeCgroupTree(rel: string): Promise<unknown>;
  /** See signals.ts: a container's init that would drop this signal. */
  initDropsSignal(pid: number, signal: number): Promise<boolean>;
}

const realHost: ContainerHost = { removeCgroupTree: (rel) => removeCgroupTree(rel), initDropsSignal };

export interface ContainerServiceOptions {
  root: string;
  state: string;
  images: ContainerImages;
  /** The pods and their shims' connections. */
  pods: PodRegistry;
  host?: ContainerHost;
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
  /** pids.max of containers whose CRI config sets none (cri.default_pids_limit; 0: off). */
  defaultPidsLimit?: number;
  /** CDI spec directories, lowest priority first (the config's cdi.spec_dirs). */
  cdiSpecDirs: readonly string[];
  /** Where each operation records its intent before it touches the host. */
  journal: IntentJournal;
  /** Told of each leftover start-up recovery removed (logged already). */
  recovered?: (kind: string) => void;
  /** Restores from checkpoint archives (a CreateContainer whose image is one); none: refused as unknown images. */
  restorer?: CheckpointRestorer;
}

/** A user-namespaced pod's containers get a rootfs of id-mapped layers (see
 * Snapshotter.mountIdmapped); other pods' get none. */
function rootfsIdmap(pod: PodRecord): RootfsIdmap | undefined {
  const maps = podUserns(pod);
  if (!maps || !pod.namespaces.user) return undefined;
  const root = rootOwner(maps);
  return { usernsPath: pod.namespaces.user, rootUid: root.uid, rootGid: root.gid };
}

function exitReason(e: ExitInfo): string {
  if (e.reason === 'OOMKilled' || e.oomKilled) return 'OOMKilled';
  return e.exitCode === 0 ? 'Completed' : 'Error';
}

/** Delete a container from its shim, if the shim has it; a shim that died took its
 * containers with it. */
async function deleteFromShim(shim: ShimClient, id: string): Promise<void> {
  try {
    await shim.delete({ id, force: true });
  } catch (e) {
    if (shim.connected && !(e instanceof ShimError && e.grpcStatus === GrpcCode.NOT_FOUND)) throw e;
  }
}

export class ContainerService {
  private readonly containers: RecordSet<ContainerRecord>;
  private readonly pods: PodRegistry;
  private readonly host: ContainerHost;
  private readonly exitWaiters = new Map<string, (() => void)[]>();
  private hostCaps: string[] | undefined;
  /** Isolation facts from each container's spec, which does not change once written. */
  private readonly isolationBase = new Map<string, Isolation>();
  /** The last observation of a running container, by the pids it was made on: a
   * process's namespaces and uid_map are fixed once it runs, and a scrape asks for
   * every container's. */
  private readonly isolationSeen = new Map<string, { pid: number; infraPid: number; isolation: Isolation }>();
  /** Containers being created, by id: their image and layers (those of their image volumes
   * too) are in use before they are recorded. */
  private readonly creating = new Map<string, { imageId: string; chainIds: string[] }>();

  private readonly appArmor: AppArmorProfiles;

  constructor(private readonly opts: ContainerServiceOptions) {
    this.appArmor = opts.appArmorProfiles ?? new AppArmorProfiles({ stateDir: opts.state });
    this.pods = opts.pods;
    this.host = opts.host ?? realHost;
    this.containers = new RecordSet({
      dir: path.join(opts.root, 'metadata', 'containers'),
      validate: isContainerRecord,
      warn: (m) => opts.log.warn(m),
      idField: 'container_id',
      what: 'container',
      podOf: (r) => r.podId,
    });
    this.pods.onShim('exit', (podId, e) => void this.onExit(podId, e));
    this.pods.onShim('lost', (podId) => void this.onShimLost(podId));
  }

  /** The name a container holds while it exists: one per name and attempt in a pod. */
  private containerName(c: ContainerConfig, pod: PodRecord): string {
    const m = pod.config.metadata!;
    return `${c.metadata!.name}_${m.name}_${m.namespace}_${m.uid}_${c.metadata!.attempt}`;
  }

  /** Load records and reconcile them with what the pods' shims report. */
  async init(): Promise<void> {
    // "ALL" and privileged grant what skiffd holds: the shim cannot give more.
    const eff = /^CapEff:\s*([0-9a-f]+)$/m.exec(await fsp.readFile('/proc/self/status', 'utf8'));
    this.hostCaps = eff ? capabilitiesFromMask(eff[1]) : undefined;
    await this.containers.load((r) => {
      const pod = this.pods.get(r.podId);
      return pod && r.config.metadata ? this.containerName(r.config, pod) : undefined;
    });
    await fsp.mkdir(path.join(this.opts.state, 'containers'), { recursive: true, mode: 0o711 });
    // A pod's reconcile touches only its own containers: pods go in parallel (a shim round trip each).
    await forEachLimited(this.pods.list(), SHIM_CONCURRENCY, (pod) => this.reconcile(pod.id));
    // Containers whose pod record is gone cannot run: report them exited.
    for (const r of this.containers.list()) if (!this.pods.get(r.podId) && r.state !== 'exited') await this.markGone(r, 'pod sandbox record is gone');
  }

  /** Bring the records of a pod's containers in line with its shim (or its exit files). */
  private async reconcile(podId: string): Promise<void> {
    const shim = this.pods.shim(podId);
    const mine = this.containers.inPod(podId).filter((c) => c.state !== 'exited');
    if (mine.length === 0) return;
    const live = shim ? new Map((await shim.list()).containers.map((s) => [s.id, s])) : new Map();
    for (const r of mine) {
      const s = live.get(r.id);
      if (s && s.status !== 'stopped') {
        if (s.status === 'running' && r.state !== 'running') await this.containers.save({ ...r, state: 'running', pid: s.pid });
        continue;
      }
      const exit = s?.exit ?? (await this.readExitFile(podId, r.id));
      if (exit) await this.recordExit(r, exit);
      else await this.markGone(r, shim ? 'container not found in its shim' : 'the pod shim is gone (host reboot or killed)');
    }
  }

  private async readExitFile(podId: string, id: string): Promise<ExitInfo | undefined> {
    const pod = this.pods.get(podId);
    if (!pod) return undefined;
    try {
      return JSON.parse(await fsp.readFile(path.join(shimDir(pod), 'exits', `${id}.json`), 'utf8')) as ExitInfo;
    } catch {
      return undefined;
    }
  }

  private async markGone(r: ContainerRecord, why: string): Promise<void> {
    await this.containers.save({ ...r, state: 'exited', finishedAt: r.finishedAt || nowNs(), exitCode: 255, reason: 'Unknown', message: why });
    this.wakeWaiters(r.id);
  }

  /** Told of every container created, started, stopped (exited) and deleted. */
  onChange(listener: ChangeListener<ContainerRecord>): () => void {
    return this.containers.onChange(listener);
  }

  private async recordExit(r: ContainerRecord, e: ExitInfo): Promise<void> {
    if (r.state !== 'exited') {
      await this.containers.save({
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
    await this.containers.lock.run(`exit:${r.id}`, async () => {
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

  /** A container by full id or unique id prefix. */
  get(id: string): ContainerRecord | undefined {
    return this.containers.get(id);
  }

  mustGet(id: string): ContainerRecord {
    return this.containers.mustGet(id);
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
    const infraPid = this.pods.get(r.podId)?.infraPid ?? 0;
    const seen = this.isolationSeen.get(r.id);
    if (seen && seen.pid === r.pid && seen.infraPid === infraPid) return seen.isolation;
    const isolation = await observeIsolation(base, r.pid, infraPid);
    if (isolation.observed) this.isolationSeen.set(r.id, { pid: r.pid, infraPid, isolation });
    return isolation;
  }

  list(): ContainerRecord[] {
    return this.containers.list();
  }

  /** Changes whenever list() would (RecordSet.generation). */
  generation(): number {
    return this.containers.generation;
  }

  /** The containers of one pod (from the index by pod). */
  inPod(podId: string): ContainerRecord[] {
    return this.containers.inPod(podId);
  }

  /** CreateContainer in a ready pod. (kubelet sends the pod's config again; the pod's record
   * holds the one it ran with.) */
  async create(podId: string, config: ContainerConfig): Promise<ContainerRecord> {
    if (!config.metadata?.name) throw new InvalidArgument('config.metadata.name is required');
    checkMemoryFloor(config.linux?.resources?.memory_limit_in_bytes ?? 0, 'config.linux.resources.memory_limit_in_bytes');
    const pod = this.pods.requireReady(podId);
    const restoring = await this.opts.restorer?.plan(config.image);
    const image = this.resolveImage(restoring?.image ?? config.image);
    const volumePlans = planImageVolumes(config.mounts, this.opts.images);
    const stopSignal = stopSignalInForce(config.stop_signal, image.config.stopSignal);
    // CDI devices resolve before anything is made: a bad name or an unknown device leaves nothing.
    const cdi = await resolveCdiDevices(this.opts.cdiSpecDirs, requestedCdiDevices(config));
    let logPath = '';
    if (config.log_path) {
      if (path.isAbsolute(config.log_path) || config.log_path.split('/').includes('..'))
        throw new InvalidArgument(`log_path "${config.log_path}" must be relative to the pod's log_directory, without ".."`);
      if (pod.config.log_directory) logPath = path.join(pod.config.log_directory, config.log_path);
    }
    const id = randomBytes(32).toString('hex');
    this.containers.reserveName(this.containerName(config, pod), id);
    this.creating.set(id, { imageId: image.id, chainIds: [...image.chainIds, ...volumePlans.flatMap((p) => p.image.chainIds)] });
    const bundle = path.join(this.opts.state, 'containers', id);
    const rootfs = path.join(bundle, 'rootfs');
    const undo = new Undo();
    undo.push('release name', () => this.containers.releaseName(id));
    undo.push('no longer in use by a create', () => this.creating.delete(id));
    let intent: Intent | undefined;
    try {
      intent = await this.opts.journal.begin('create_container', id, { podId: pod.id, bundle, cgroupParent: pod.cgroupParent });
      failpoint('create_container.journaled');
      await fsp.mkdir(rootfs, { recursive: true, mode: 0o711 });
      undo.push('remove bundle', () => fsp.rm(bundle, { recursive: true, force: true }));
      undo.push('remove rootfs', () => this.opts.images.snapshots.removeRootfs(id, rootfs));
      const idmap = rootfsIdmap(pod);
      await this.opts.images.snapshots.mountRootfs(id, image.chainIds, rootfs, idmap);
      failpoint('create_container.rootfs');
      undo.push('unmount image volumes', () => unmountImageVolumes(bundle, this.opts.images.snapshots));
      const imageVolumes = await mountImageVolumes(bundle, volumePlans, this.opts.images.snapshots, idmap?.usernsPath);
      failpoint('create_container.image_volumes');
      if (logPath) await fsp.mkdir(path.dirname(logPath), { recursive: true, mode: 0o755 });
      const spec = await writeBundle(this.bundleHost(), { id, bundle, rootfs, config, pod, image, imageVolumes, cdi });
      // kubelet hands hostPath volumes of type "" over unchecked: a missing host path
      // becomes an empty directory (the paths as buildContainerSpec checked them).
      const hostPaths = config.mounts.filter((m) => !isImageMount(m)).map((m) => path.posix.normalize(m.host_path).replace(/(.)\/+$/, '$1'));
      for (const dir of await makeMissingHostPaths(hostPaths)) undo.push('remove a host path made for a mount', () => fsp.rmdir(dir));
      failpoint('create_container.spec');
      const shim = this.pods.shim(pod.id);
      if (!shim) throw new FailedPrecondition(`pod sandbox ${pod.id} is not ready`);
      undo.push('remove cgroup', () => this.host.removeCgroupTree(path.posix.join(pod.cgroupParent, id)));
      undo.push('delete from the shim', () => deleteFromShim(shim, id));
      const restore = restoring && (await this.opts.restorer!.prepare(restoring, spec, bundle, rootfs));
      const created = await shim.create({ id, bundle, logPath: logPath || undefined, stdin: config.stdin, stdinOnce: config.stdin_once, restore });
      failpoint('create_container.shim');
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
        ...(imageVolumes.length ? { imageVolumes } : {}),
        ...(restoring ? { restoredFrom: restoring.archive } : {}),
      };
      await this.containers.save(r);
      this.creating.delete(id);
    } catch (e) {
      // Undone in full: the intent is done with. Else a restart undoes what is left.
      if ((await undo.run(this.opts.log.with({ container: id }))) && intent) await this.opts.journal.settled(intent);
      throw await explainInfraGone(e, pod.infraPid, id, async () => (await this.pods.shim(pod.id)?.list())?.pod?.infraStatus);
    }
    failpoint('create_container.recorded');
    await this.opts.journal.settled(intent);
    return this.containers.get(id)!;
  }

  /** Unmount a container's rootfs (dropping its writable layer) and its image volumes, then
   * remove its bundle dir: removal, recovery of a create cut short, and the sweep. */
  private async removeBundle(id: string, bundle: string): Promise<void> {
    await this.opts.images.snapshots.removeRootfs(id, path.join(bundle, 'rootfs'));
    await unmountImageVolumes(bundle, this.opts.images.snapshots);
    await fsp.rm(bundle, { recursive: true, force: true });
  }

  private bundleHost(): BundleHost {
    const o = this.opts;
    return { minOomScoreAdj: o.minOomScoreAdj, lsm: o.lsm, appArmor: this.appArmor, seccompProfileRoot: o.seccompProfileRoot, hostCapabilities: this.hostCaps, defaultPidsLimit: o.defaultPidsLimit ?? 0 };
  }

  /**
   * StartContainer. No intent: a start makes nothing on the host that a restart could have
   * to undo, and what it changes, the shim's container from created to running, is what
   * start-up reconciliation reads back from the shim (a crash before the record is written
   * leaves a container that the shim reports running and the restart records so). The
   * running state is written unsynced: a crash of the host ends the process, and the
   * container is reported exited either way.
   */
  async start(id: string): Promise<void> {
    const found = this.mustGet(id);
    await this.containers.lock.run(found.id, async () => {
      const r = this.containers.get(found.id)!;
      if (r.state !== 'created') throw new FailedPrecondition(`container ${r.id} is ${r.state}, not created`);
      const shim = this.pods.shim(r.podId);
      if (!shim) throw new FailedPrecondition(`pod sandbox ${r.podId} of container ${r.id} is not ready`);
      try {
        // The start time is when the shim was asked: the process runs after that, and may
        // exit (at the shim's clock) before the reply is read here on a busy host, so a
        // later reading could put the start after the finish.
        const startedAt = nowNs();
        const s = await shim.start({ id: r.id });
        failpoint('start_container.shim');
        const cur = this.containers.get(r.id)!;
        // A process that exits at once may have been recorded exited already.
        if (cur.state === 'created') await this.containers.save({ ...cur, state: 'running', startedAt, pid: s.pid }, { sync: false });
        else await this.containers.save({ ...cur, startedAt: cur.startedAt || startedAt }, { sync: false });
        failpoint('start_container.recorded');
      } catch (e) {
        await this.containers.save({ ...r, state: 'exited', finishedAt: nowNs(), exitCode: 128, reason: 'StartError', message: (e as Error).message });
        throw e;
      }
    });
  }

  /** Stop with the stop signal in force (the config's, the image's, or SIGTERM), SIGKILL
   * after timeoutS.
   * An exited or unknown container is not an error; an empty id is. */
  stop(id: string, timeoutS: number): Promise<void> {
    return this.containers.ifKnown(id, (r) => this.doStop(r, timeoutS));
  }

  private async doStop(r: ContainerRecord, timeoutS: number): Promise<void> {
    if (r.state === 'exited') return;
    const id = r.id;
    const shim = this.pods.shim(r.podId);
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
    let dropped = await this.host.initDropsSignal(r.pid, signal);
    await shim.kill({ id: r.id, signal }).catch(() => {});
    while (dropped) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      if (await this.waitExited(r.id, Math.min(left, 100))) return true;
      dropped = await this.host.initDropsSignal(r.pid, signal);
      if (!dropped) await shim.kill({ id: r.id, signal }).catch(() => {});
    }
    return this.waitExited(r.id, Math.max(0, deadline - Date.now()));
  }

  /** Remove a container (killing it if it runs); unknown ids succeed, an empty one is refused. */
  async remove(id: string): Promise<void> {
    await this.containers.ifKnown(id, async (r) => {
      const intent = await this.opts.journal.begin('remove_container', r.id, { podId: r.podId });
      failpoint('remove_container.journaled');
      if (r.state !== 'exited') await this.doStop(r, 0);
      failpoint('remove_container.stopped');
      const shim = this.pods.shim(r.podId);
      const deleted = shim
        ? await shim.delete({ id: r.id, force: true }).then(
            () => true,
            (e: Error) => (this.opts.log.warn('shim delete failed', { container: r.id, error: e.message }), false),
          )
        : false;
      // A delete the shim answered removed the container's cgroup (it fails otherwise); a
      // killed or lost shim could not, and a walk of every hierarchy costs tens of ms when
      // twenty pods go at once.
      const pod = this.pods.get(r.podId);
      if (pod && !deleted) await this.host.removeCgroupTree(path.posix.join(pod.cgroupParent, r.id));
      failpoint('remove_container.shim');
      await this.removeBundle(r.id, r.bundle);
      failpoint('remove_container.rootfs');
      this.isolationBase.delete(r.id);
      this.isolationSeen.delete(r.id);
      await this.containers.delete(r);
      failpoint('remove_container.recorded');
      await this.opts.journal.end(intent);
      // Layers only this container kept (its image, or an image it mounts as a volume, was
      // removed while it existed) go now.
      if ([r.imageId, ...(r.imageVolumes ?? []).map((v) => v.imageId)].some((i) => !this.opts.images.find(i)))
        await this.opts.images.collectGarbage().catch((e: Error) => this.opts.log.warn('image garbage collection failed', { container: r.id, error: e.message }));
    });
  }

  /**
   * Start-up recovery of an operation a crash interrupted: a create with no record is
   * undone (the shim's container, its cgroup, the rootfs mount and writable layer, the
   * image volume mounts, the bundle); a start was settled by reconcile (the shim says
   * whether it ran); a removal of a container still recorded is carried out again.
   */
  async recoverIntent(i: Intent): Promise<string> {
    const r = this.containers.get(i.id);
    switch (i.op) {
      case 'create_container': {
        if (r) return 'finished';
        const shim = this.pods.shim(i.plan.podId);
        if (shim) await deleteFromShim(shim, i.id);
        await this.host.removeCgroupTree(path.posix.join(i.plan.cgroupParent, i.id));
        await this.removeBundle(i.id, i.plan.bundle);
        return 'undone';
      }
      case 'start_container':
        return r?.state === 'created' ? 'undone' : 'finished';
      case 'remove_container':
        if (r) await this.remove(r.id);
        return 'finished';
      default:
        throw new Error(`not a container operation: ${i.op}`);
    }
  }

  /** Remove what no container record owns: bundles (and their rootfs and image volume
   * mounts) under the state dir, and writable layers in the snapshotter. */
  async sweep(): Promise<void> {
    const ID = /^[a-f0-9]{64}$/;
    const bundles = path.join(this.opts.state, 'containers');
    for (const id of (await fsp.readdir(bundles).catch(() => [] as string[])).filter((n) => ID.test(n) && !this.containers.has(n))) {
      await this.removeBundle(id, path.join(bundles, id));
      this.recovered('rootfs', id);
    }
    for (const id of (await this.opts.images.snapshots.listWritableLayers()).filter((n) => ID.test(n) && !this.containers.has(n))) {
      await this.opts.images.snapshots.removeRootfs(id, path.join(bundles, id, 'rootfs'));
      this.recovered('writable_layer', id);
    }
  }

  private recovered(kind: string, id: string): void {
    this.opts.log.warn('recovery removed a leftover', { kind, container: id });
    this.opts.recovered?.(kind);
  }

  /** Stop every container of a pod at once, without grace (StopPodSandbox). */
  async stopAllInPod(podId: string): Promise<void> {
    await Promise.all(this.inPod(podId).map((c) => this.stop(c.id, 0)));
  }

  /** Remove every container of a pod (RemovePodSandbox). */
  async removeAllInPod(podId: string): Promise<void> {
    await Promise.all(this.inPod(podId).map((c) => this.remove(c.id)));
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

  /** Chain ids of every container's rootfs and image volumes (also of those being
   * created): image GC keeps them. */
  layersInUse(): Set<string> {
    const records = this.list().flatMap((c) => [...c.chainIds, ...(c.imageVolumes ?? []).flatMap((v) => v.chainIds)]);
    return new Set([...records, ...[...this.creating.values()].flatMap((c) => c.chainIds)]);
  }

  /** Image id -> a container that uses it, in any state until it is removed (also while
   * it is created): such an image is not removed. An image mounted only as a volume is
   * not in use here: RemoveImage removes it, as containerd does, and its layers stay
   * (layersInUse) until the last container that mounts it is removed. */
  imagesInUse(): Map<string, string> {
    const out = new Map<string, string>();
    for (const [id, c] of this.creating) out.set(c.imageId, id);
    for (const c of this.list()) out.set(c.imageId, c.id);
    return out;
  }

  private requireRunning(id: string): { r: ContainerRecord; shim: ShimClient } {
    const r = this.mustGet(id);
    const shim = this.pods.shim(r.podId);
    if (r.state !== 'running' || !shim) throw new FailedPrecondition(`container ${r.id} is not running (${r.state})`);
    return { r, shim };
  }

  /** The container's process settings (user, env, caps ...) with other args: what exec runs. */
  private async execProcess(r: ContainerRecord, args: string[]): Promise<Process> {
    const spec = JSON.parse(await fsp.readFile(path.join(r.bundle, 'config.json'), 'utf8')) as Spec;
    // An exec enters the container's profile too (the shim writes it before execve):
    // load skiff-default again should it have been removed since the create.
    if (spec.process.apparmorProfile === APPARMOR_DEFAULT_PROFILE) await this.appArmor.ensureDefault();
    return { ...spec.process, args, terminal: false };
  }

  /** Run cmd in the container to its end: its exit code and output (at most
   * EXEC_SYNC_MAX_OUTPUT of stdout and stderr together), written where `into` says. */
  async execSync(id: string, cmd: string[], timeoutS: number, into?: ExecOutputBuffers): Promise<{ stdout: Buffer; stderr: Buffer; exitCode: number }> {
    if (cmd.length === 0) throw new InvalidArgument('cmd is required');
    const { r, shim } = this.requireRunning(id);
    const res = await shim.execSync({ id: r.id, process: await this.execProcess(r, cmd), timeoutMs: timeoutS > 0 ? timeoutS * 1000 : undefined }, into);
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
    checkMemoryFloor(resources.memory_limit_in_bytes, 'linux.memory_limit_in_bytes');
    if (r.state === 'exited') throw new FailedPrecondition(`container ${r.id} has exited`);
    const shim = this.pods.shim(r.podId);
    if (!shim) throw new FailedPrecondition(`pod sandbox ${r.podId} is not ready`);
    await shim.update({ id: r.id, resources: ociResources(resources, this.opts.minOomScoreAdj) });
    await this.containers.save({ ...this.containers.get(r.id)!, resources });
  }

  async reopenLog(id: string): Promise<void> {
    const { r, shim } = this.requireRunning(id);
    await shim.reopenLog({ id: r.id });
  }
}
