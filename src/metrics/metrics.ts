// skiffd's Prometheus metrics (prom-client) and the HTTP endpoint that serves them:
// `/metrics` in the Prometheus text format, or OpenMetrics when the scraper asks for
// it. Names follow Prometheus conventions (skiff_ prefix, base units, _total for
// counters); no label ever carries an id, so series stay bounded. Gauges of what
// skiffd holds (pods, containers, shims, images) are read at scrape time.
import { promises as fsp } from 'fs';
import * as http from 'http';
import * as path from 'path';
import * as client from 'prom-client';
import type { ContainerService } from '../container/container_service';
import { GrpcCode } from '../errors';
import type { ImageService } from '../image/image_service';
import type { Logger } from '../log';
import type { SandboxService } from '../sandbox/sandbox_service';
import { PodRecord, shimDir } from '../sandbox/pod_registry';
import { readProcFile } from '../sys/proc_file';
import { IsolationFamily } from './isolation_family';

/** CRI calls whose latency is a lifecycle step, by the step's name. */
const LIFECYCLE: Record<string, string> = {
  RunPodSandbox: 'run_pod',
  StopPodSandbox: 'stop_pod',
  RemovePodSandbox: 'remove_pod',
  CreateContainer: 'create_container',
  StartContainer: 'start_container',
  StopContainer: 'stop_container',
  RemoveContainer: 'remove_container',
};

/** Exit reasons as ContainerStatus reports them; anything else counts as "other". */
const EXIT_REASONS = new Set(['Completed', 'Error', 'OOMKilled', 'StartError', 'Unknown', 'ContainerCannotRun']);

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
const PULL_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

async function rssBytes(pid: number): Promise<number> {
  try {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(await readProcFile(`/proc/${pid}/status`));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Each connected shim's pid, read from its pid file once per connection (a scrape at 500
 * pods read 500 pid files before). */
const shimPids = new WeakMap<object, Promise<number>>();

function shimPid(pod: PodRecord, shim: object | undefined): Promise<number> {
  if (!shim) return Promise.resolve(0);
  let pid = shimPids.get(shim);
  if (!pid) {
    pid = fsp.readFile(path.join(shimDir(pod), 'shim.pid'), 'utf8').then(Number, () => 0);
    shimPids.set(shim, pid);
    // Only a pid is kept: a read that failed is tried again at the next scrape.
    void pid.then((n) => n > 0 || shimPids.delete(shim));
  }
  return pid;
}

export class Metrics {
  readonly registry = new client.Registry<client.RegistryContentType>();
  private readonly criRequests: client.Counter<'method' | 'code'>;
  private readonly criDuration: client.Histogram<'method'>;
  private readonly lifecycle: client.Histogram<'operation'>;
  /** Each method and status's series, found once: prom-client hashes and checks the labels
   * on every inc/observe given by label, as much CPU as the rest of an empty call's path. */
  private readonly callSeries = new Map<string, { requests: client.Counter.Internal; duration: client.Histogram.Internal<'method'>; lifecycle?: client.Histogram.Internal<'operation'> }>();
  private readonly containerStarts: client.Counter;
  private readonly containerExits: client.Counter<'reason'>;
  private readonly pulls: client.Counter<'result'>;
  private readonly pullBytes: client.Counter;
  private readonly pullDuration: client.Histogram;
  private readonly cniDuration: client.Histogram<'command' | 'plugin'>;
  private readonly cniErrors: client.Counter<'command' | 'plugin'>;
  private readonly shimLosses: client.Counter;
  private readonly recoveries: client.Counter<'kind'>;
  private scraping: Promise<unknown> = Promise.resolve();
  /** skiff_container_isolation, formatted by skiff (see isolation_family.ts). */
  private isolation: IsolationFamily | null = null;

  constructor() {
    const registers = [this.registry];
    client.collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 10 });
    this.criRequests = new client.Counter({ name: 'skiff_cri_requests_total', help: 'CRI calls served, by method and gRPC status code.', labelNames: ['method', 'code'], registers });
    this.criDuration = new client.Histogram({ name: 'skiff_cri_request_duration_seconds', help: 'Time to serve a CRI call, by method.', labelNames: ['method'], buckets: LATENCY_BUCKETS, registers });
    this.lifecycle = new client.Histogram({
      name: 'skiff_lifecycle_duration_seconds',
      help: 'Time of successful pod and container lifecycle steps (run_pod, create_container, start_container, stop_container, ...).',
      labelNames: ['operation'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.containerStarts = new client.Counter({ name: 'skiff_container_starts_total', help: 'Containers started.', registers });
    this.containerExits = new client.Counter({ name: 'skiff_container_exits_total', help: 'Containers that exited, by reason (Completed, Error, OOMKilled, ...).', labelNames: ['reason'], registers });
    this.pulls = new client.Counter({ name: 'skiff_image_pulls_total', help: 'Image pulls run, by result (success, failure).', labelNames: ['result'], registers });
    this.pullBytes = new client.Counter({ name: 'skiff_image_pull_bytes_total', help: 'Content size (config and compressed layers) of the images pulled.', registers });
    this.pullDuration = new client.Histogram({ name: 'skiff_image_pull_duration_seconds', help: 'Time of successful image pulls.', buckets: PULL_BUCKETS, registers });
    this.cniDuration = new client.Histogram({ name: 'skiff_cni_operation_duration_seconds', help: 'Time of CNI plugin runs, by command (ADD, DEL, CHECK) and plugin.', labelNames: ['command', 'plugin'], buckets: LATENCY_BUCKETS, registers });
    this.cniErrors = new client.Counter({ name: 'skiff_cni_operation_errors_total', help: 'CNI plugin runs that failed, by command and plugin.', labelNames: ['command', 'plugin'], registers });
    this.shimLosses = new client.Counter({ name: 'skiff_shim_losses_total', help: 'Pod shims whose connection was lost while their pod was ready (killed or crashed).', registers });
    this.recoveries = new client.Counter({
      name: 'skiff_recovered_total',
      help: 'What start-up recovery finished, undid or removed: interrupted operations (op_<name>) and leftovers no record owned (shim, netns, shm_mount, pod_dir, cni, cgroup, rootfs, writable_layer, ingest).',
      labelNames: ['kind'],
      registers,
    });
  }

  /** One thing start-up recovery finished, undid or removed. */
  observeRecovery(kind: string): void {
    this.recoveries.inc({ kind });
  }

  /** The CriServer's call observer. */
  observeCall(method: string, code: GrpcCode | 0, seconds: number): void {
    const key = `${method} ${code}`;
    let series = this.callSeries.get(key);
    if (!series) {
      const op = LIFECYCLE[method];
      series = {
        requests: this.criRequests.labels({ method, code: code === 0 ? 'OK' : GrpcCode[code] ?? String(code) }),
        duration: this.criDuration.labels({ method }),
        lifecycle: op && code === 0 ? this.lifecycle.labels({ operation: op }) : undefined,
      };
      this.callSeries.set(key, series);
    }
    series.requests.inc();
    series.duration.observe(seconds);
    series.lifecycle?.observe(seconds);
  }

  observePull(p: { ok: boolean; seconds: number; bytes: number }): void {
    this.pulls.inc({ result: p.ok ? 'success' : 'failure' });
    if (!p.ok) return;
    this.pullBytes.inc(p.bytes);
    this.pullDuration.observe(p.seconds);
  }

  observeCni(o: { command: string; plugin: string; seconds: number; ok: boolean }): void {
    this.cniDuration.observe({ command: o.command, plugin: o.plugin }, o.seconds);
    if (!o.ok) this.cniErrors.inc({ command: o.command, plugin: o.plugin });
  }

  /** Gauges read at scrape time, and counters fed by the services' change events. */
  watch(pods: SandboxService, containers: ContainerService, images: ImageService): void {
    const registers = [this.registry];
    this.isolation = new IsolationFamily(pods, containers);
    containers.onChange((change, r) => {
      if (change === 'started') this.containerStarts.inc();
      if (change === 'stopped') this.containerExits.inc({ reason: EXIT_REASONS.has(r.reason) ? r.reason : 'other' });
    });
    pods.onShimLost(() => this.shimLosses.inc());
    new client.Gauge({
      name: 'skiff_pods',
      help: 'Pod sandboxes skiffd holds, by state (ready, notready).',
      labelNames: ['state'],
      registers,
      collect() {
        const n = { ready: 0, notready: 0 };
        for (const p of pods.list()) n[p.state === 'ready' ? 'ready' : 'notready']++;
        for (const [state, v] of Object.entries(n)) this.set({ state }, v);
      },
    });
    new client.Gauge({
      name: 'skiff_containers',
      help: 'Containers skiffd holds, by state (created, running, exited).',
      labelNames: ['state'],
      registers,
      collect() {
        const n: Record<string, number> = { created: 0, running: 0, exited: 0 };
        for (const c of containers.list()) n[c.state] = (n[c.state] ?? 0) + 1;
        for (const [state, v] of Object.entries(n)) this.set({ state }, v);
      },
    });
    new client.Gauge({
      name: 'skiff_images',
      help: 'Images in the image store.',
      registers,
      collect() {
        this.set(images.list().length);
      },
    });
    new client.Gauge({
      name: 'skiff_image_store_content_bytes',
      help: 'Content size (config and compressed layers) of the images in the store.',
      registers,
      collect() {
        this.set(images.list().reduce((n, r) => n + r.size, 0));
      },
    });
    new client.Gauge({
      name: 'skiff_shims',
      help: 'Pod shims skiffd is connected to.',
      registers,
      collect() {
        this.set(pods.list().filter((p) => pods.shim(p.id)).length);
      },
    });
    new client.Gauge({
      name: 'skiff_shim_resident_memory_bytes',
      help: 'Resident memory of all pod shims together (see skiff_shims for how many).',
      registers,
      async collect() {
        const pids = await Promise.all(pods.list().map((p) => shimPid(p, pods.shim(p.id))));
        this.set((await Promise.all(pids.filter((p) => p > 0).map(rssBytes))).reduce((a, b) => a + b, 0));
      },
    });
  }

  /** The exposition, in OpenMetrics when `accept` asks for it. One scrape at a time:
   * the registry's format is switched for an OpenMetrics scrape and back. */
  scrape(accept: string | undefined): Promise<{ contentType: string; body: string }> {
    const openMetrics = !!accept && accept.includes('application/openmetrics-text');
    const run = this.scraping.then(async () => {
      this.registry.setContentType(openMetrics ? client.Registry.OPENMETRICS_CONTENT_TYPE : client.Registry.PROMETHEUS_CONTENT_TYPE);
      try {
        const [registry, isolation] = await Promise.all([this.registry.metrics(), this.isolation?.text() ?? '']);
        // OpenMetrics ends with "# EOF": the family goes before it.
        const eof = openMetrics ? registry.lastIndexOf('# EOF') : -1;
        const body = eof >= 0 ? registry.slice(0, eof) + isolation + registry.slice(eof) : registry + isolation;
        return { contentType: this.registry.contentType, body };
      } finally {
        this.registry.setContentType(client.Registry.PROMETHEUS_CONTENT_TYPE);
      }
    });
    this.scraping = run.catch(() => undefined);
    return run;
  }
}

/** Serves GET /metrics on host:port; returns the server, listening. */
export async function serveMetrics(metrics: Metrics, address: string, log: Logger): Promise<http.Server> {
  const i = address.lastIndexOf(':');
  const host = address.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(address.slice(i + 1));
  const server = http.createServer((req, res) => {
    const url = (req.url ?? '').split('?')[0];
    if (url !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: skiffd serves /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    metrics.scrape(req.headers.accept).then(
      ({ contentType, body }) => res.writeHead(200, { 'content-type': contentType }).end(req.method === 'HEAD' ? undefined : body),
      (e: Error) => {
        log.error('metrics scrape failed', { error: e.message });
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`${e.message}\n`);
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}
