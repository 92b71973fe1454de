// skiffd's wiring: builds the stores and services from the configuration, recovers pods
// and containers, serves the CRI socket, and stops without touching running pods (their
// shims outlive skiffd).
import { promises as fsp } from 'fs';
import * as path from 'path';
import { serveAdmin } from './admin/api';
import type { SkiffConfig } from './config';
import type { Server } from 'http';
import { Metrics, serveMetrics } from './metrics/metrics';
import { CheckpointService } from './checkpoint/checkpoint_service';
import { Criu } from './checkpoint/criu';
import { CheckpointRestorer } from './checkpoint/restore';
import { ContainerService } from './container/container_service';
import { detectHostLsm } from './container/lsm';
import { criHandlers } from './cri/handlers';
import { CriServer } from './cri/server';
import { ImageService } from './image/image_service';
import { setUnpackBinary } from './image/unpack';
import type { Logger } from './log';
import { CniNetwork } from './network/cni';
import { DefaultNetwork } from './network/default_network';
import { PodRegistry } from './sandbox/pod_registry';
import { SandboxService } from './sandbox/sandbox_service';
import { subidOverlaps, UsernsPool, usernsPoolDir } from './sandbox/userns_pool';
import { probeKernelFeatures } from './shim/features';
import { ContainerStatsService } from './stats/container_stats';
import { PodStatsService } from './stats/pod_stats';
import { StreamingServer } from './streaming/server';
import { startIsolationEvents } from './events/isolation_events';
import { armFailpoints, shimFailpoints } from './failpoints';
import { recover } from './recovery';
import { IntentJournal } from './store/intents';


/** The lowest oom_score_adj this host lets skiffd give a process: some hosts refuse any
 * value below skiffd's own, even to root. */
async function lowestOomScoreAdj(restrict: boolean): Promise<number> {
  if (!restrict) return -1000;
  const own = Number((await fsp.readFile('/proc/self/oom_score_adj', 'utf8')).trim());
  if (own <= -1000) return -1000;
  try {
    await fsp.writeFile('/proc/self/oom_score_adj', String(own - 1));
    await fsp.writeFile('/proc/self/oom_score_adj', String(own));
    return -1000;
  } catch {
    return own;
  }
}

/** A stopwatch of the start: phase(name) ends a part; all() gives each part's ms, and
 * `process` the time from the process's start (Node's own start-up and module loading). */
function startupPhases(): ((name: string) => void) & { all(): Record<string, number> } {
  const ms: Record<string, number> = { process: Math.round(performance.now()) };
  let last = performance.now();
  const phase = (name: string) => {
    const now = performance.now();
    ms[name] = Math.round(now - last);
    last = now;
  };
  return Object.assign(phase, { all: () => ms });
}

export class Daemon {
  private constructor(
    readonly config: SkiffConfig,
    readonly images: ImageService,
    readonly sandboxes: SandboxService,
    readonly containers: ContainerService,
    private readonly server: CriServer,
    private readonly streaming: StreamingServer,
    private readonly metricsServer: Server | undefined,
    private readonly log: Logger,
    private readonly stopEvents: (() => void) | undefined,
  ) {}

  static async start(config: SkiffConfig, log: Logger): Promise<Daemon> {
    // How long each part of the start took, in the serving line: with hundreds of pods
    // the reconnection is most of it (issue 18's restart target).
    const phase = startupPhases();
    await fsp.mkdir(config.root, { recursive: true, mode: 0o711 });
    await fsp.mkdir(config.state, { recursive: true, mode: 0o711 });
    let containers: ContainerService | undefined;
    armFailpoints([...config['debug.failpoints'], ...(process.env.SKIFF_FAILPOINTS ?? '').split(',')]);
    const shimSteps = shimFailpoints();
    const journal = new IntentJournal(path.join(config.root, 'metadata', 'intents'), (m) => log.warn(m));
    await journal.init();
    const metrics = new Metrics();
    let metricsAddress = ''; // host:port once serving (port 0 in the config picks one)
    setUnpackBinary(config['image.unpack_binary']);
    const images = new ImageService({
      root: config.root,
      registry: {
        configPath: config['image.config_path'],
        stallTimeoutMs: config['image.stall_timeout_s'] * 1000,
        attempts: config['image.attempts'],
        retryWindowMs: config['image.retry_window_s'] * 1000,
      },
      parallelLayers: config['image.parallel_layers'],
      layersInUse: () => containers?.layersInUse() ?? new Set(),
      imagesInUse: () => containers?.imagesInUse() ?? new Map(),
      pinnedImages: config['image.pinned_images'],
      warn: (msg) => log.warn(msg),
      onPull: (p) => metrics.observePull(p),
      journal,
    });
    await images.init();
    const shimBinary = config['shim.binary'] || path.resolve(__dirname, '../../shim/build/skiff-shim');
    // Probed while the rest starts (a process of its own): Status is the first to need it.
    const kernelProbe = probeKernelFeatures(shimBinary);
    const cni = new CniNetwork({
      confDir: config['network.conf_dir'],
      binDirs: config['network.bin_dirs'],
      cacheDir: path.join(config.root, 'cni'),
      pluginTimeoutMs: config['network.plugin_timeout_s'] * 1000,
      observe: (o) => metrics.observeCni(o),
      warn: (msg) => log.warn(msg),
    });
    const defaultNetwork = new DefaultNetwork({
      confDir: config['network.conf_dir'],
      stateDir: path.join(config.root, 'network'),
      bridge: config['network.bridge'],
      defaultPodCidr: config['network.default_pod_cidr'],
      ipamDataDir: config['network.ipam_data_dir'] || undefined,
      write: config['network.write_default_config'],
      cni,
      log,
    });
    await defaultNetwork.init();
    const hostLsm = await detectHostLsm();
    log.info('mandatory access control', { apparmor: hostLsm.apparmor, selinux: !!hostLsm.selinux });
    const pods = new PodRegistry(config.root, log);
    // Probed while the rest starts; the first checkpoint or restore waits for it.
    let checkpointStatus: Record<string, unknown> = { available: false, reason: 'criu not probed yet' };
    const criu = new Criu(config['checkpoint.criu'], (s) => {
      checkpointStatus = { ...s };
      if (s.available) log.info('checkpoint and restore available', { criu: s.path, version: s.version });
      else log.warn('checkpoint and restore unavailable', { criu: s.path, reason: s.reason });
    });
    containers = new ContainerService({
      root: config.root,
      state: config.state,
      images,
      pods,
      log,
      minOomScoreAdj: await lowestOomScoreAdj(config['cri.restrict_oom_score_adj']),
      lsm: hostLsm,
      seccompProfileRoot: config['cri.seccomp_profile_root'],
      defaultPidsLimit: config['cri.default_pids_limit'],
      cdiSpecDirs: config['cdi.spec_dirs'],
      journal,
      recovered: (kind) => metrics.observeRecovery(kind),
      restorer: new CheckpointRestorer(criu, {
        find: (ref) => images.find(ref),
        findExact: (ref) => images.findExact(ref),
        readBlob: (digest) => images.content.read(digest),
        layerDir: (chain) => images.snapshots.layerDir(chain),
      }),
    });
    const checkpoints = new CheckpointService({
      state: config.state,
      criu,
      journal,
      container: (id) => containers!.mustGet(id),
      pod: (id) => pods.get(id),
      shim: (id) => pods.shim(id),
      upperDir: (id) => images.snapshots.upperDir(id),
      imageName: (id) => images.find(id)?.repoTags[0] ?? '',
      log,
    });
    const usernsPool = new UsernsPool({
      dir: usernsPoolDir(config.root),
      firstHostId: config['userns.first_host_id'],
      ranges: config['userns.pod_ranges'],
      warn: (msg, detail) => log.warn(msg, detail),
    });
    // Other programs hand out ids from these files: a pool that overlaps them shares ids.
    for (const file of ['/etc/subuid', '/etc/subgid'])
      for (const line of subidOverlaps(await fsp.readFile(file, 'utf8').catch(() => ''), usernsPool.bounds))
        log.warn('the userns pool overlaps subordinate ids handed out elsewhere: move userns.first_host_id', { file, line });
    const sandboxes = new SandboxService({
      state: config.state,
      shimBinary,
      runtimeHandler: config['cri.runtime_handler'],
      defaultCgroupParent: config['cri.cgroup_parent'],
      pods,
      containers,
      cni,
      log,
      journal,
      recovered: (kind) => metrics.observeRecovery(kind),
      shimEnv: shimSteps ? { SKIFF_SHIM_FAILPOINTS: shimSteps } : undefined,
      usernsPool,
    });
    phase('setup');
    await sandboxes.init();
    phase('pods');
    await containers.init();
    phase('containers');
    await recover({ journal, sandboxes, containers, images, log, observe: (kind) => metrics.observeRecovery(kind) });
    phase('recovery');
    const kernel = await kernelProbe;
    for (const [name, f] of Object.entries(kernel)) if (!f.supported) log.warn('kernel feature unavailable', { feature: name, error: f.error });

    const streaming = new StreamingServer(
      {
        exec: (id, cmd, tty, stdin) => containers!.execStream(id, cmd, tty, stdin),
        attach: (id, stdin, stdout, stderr) => containers!.attachStream(id, stdin, stdout, stderr),
        portForward: (podId, port) => sandboxes.portForward(podId, port),
      },
      log,
    );
    await streaming.listen({
      address: config['streaming.address'],
      tls: config['streaming.tls_cert'] ? { cert: await fsp.readFile(config['streaming.tls_cert']), key: await fsp.readFile(config['streaming.tls_key']) } : undefined,
    });
    const stats = new ContainerStatsService(sandboxes, images.snapshots);
    containers.onChange((change, r) => {
      if (change === 'deleted') stats.forget(r.id);
    });
    const podStats = new PodStatsService(stats, sandboxes);
    const server = new CriServer(
      criHandlers({
        sandboxes,
        containers,
        checkpoints,
        images,
        containerStats: stats,
        podStats,
        streaming,
        cni,
        defaultNetwork,
        kernel,
        runtimeHandler: config['cri.runtime_handler'],
        usernsHandler: config['cri.userns_runtime_handler'],
        usernsPool: usernsPool.bounds,
        statusInfo: () => ({ rootDir: config.root, stateDir: config.state, shim: shimBinary, cniConfDir: config['network.conf_dir'], podCidr: defaultNetwork.podCidr ?? '', metricsAddress, checkpoint: checkpointStatus }),
      }),
      log,
      (method, code, seconds) => metrics.observeCall(method, code, seconds),
    );
    metrics.watch(sandboxes, containers, images);
    const metricsServer = config['metrics.address'] ? await serveMetrics(metrics, config['metrics.address'], log) : undefined;
    const bound = metricsServer?.address();
    if (bound && typeof bound === 'object') metricsAddress = `${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`;
    serveAdmin(server, images);
    // Before serving: loading the Kubernetes client blocks for a few hundred ms.
    const stopEvents = startIsolationEvents(config['events.kubeconfig'], { containers, pods: sandboxes }, log);
    await server.listen(config['cri.socket'], parseInt(config['cri.socket_mode'], 8));
    phase('serve');
    void sandboxes.afterStart();
    log.info('skiffd serving', { socket: config['cri.socket'], root: config.root, state: config.state, pods: sandboxes.list().length, containers: containers.list().length, startMs: phase.all() });
    return new Daemon(config, images, sandboxes, containers, server, streaming, metricsServer, log, stopEvents);
  }

  /** Stop serving. Pods keep running: their shims do not depend on skiffd. */
  async stop(): Promise<void> {
    this.stopEvents?.();
    await this.server.close();
    await this.streaming.close();
    await new Promise((resolve) => (this.metricsServer ? this.metricsServer.close(resolve) : resolve(undefined)));
    this.sandboxes.detach();
    await this.images.close();
    this.log.info('skiffd stopped');
  }
}
