// The `scale` suite: a node at 500 pods. Each runtime (skiff, then containerd through the
// same CRI client) gets 500 pods of two busybox `sleep` containers, made 20 at a time; then
// at 500 pods: a PLEG relist, ListContainerStats, skiffd's /metrics, the daemons' and shims'
// RSS, and the time the daemon takes to come back after a SIGKILL (and a graceful stop)
// with every pod running; then the pods are removed, 20 at a time.
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { CriClient } from '../../src/cri/client';
import { ContainerState, PodSandboxState } from '../../src/cri/gen/cri';
import { removeCgroupTree } from '../fixtures/cleanup';
import { TestRegistry } from '../fixtures/registry';
import type { BenchOptions, Suite } from './index';
import { pushBenchImages, startContainerd, startSkiff, Subject } from './lifecycle';
import { PeerReport } from './peers';
import { vmRssKiB } from './shim';
import { fmt, median, printTable, round, summarize, timeMs } from './stats';
import { Cleanups, errText, sleep } from './util';

const DEFAULT_PODS = 500;
const CONTAINERS_PER_POD = 2;
const CONCURRENCY = 20;
/** The pods whose start times are compared: the first and the last this many. */
const EDGE = 50;
/** Pods started one at a time on the empty node and again on the full one: a call's own
 * cost at each size, without the 20 in flight competing for the CPUs. */
const SERIAL = 10;
/** Relists timed at full size (`--runs` overrides). */
const DEFAULT_RELISTS = 20;
/** ListContainerStats and /metrics scrapes timed at full size. */
const STATS_RUNS = 10;
/** Pods get a cgroup_parent under this root, as kubelet gives them; removed at the end. */
const CGROUP_ROOT = '/skiff-bench-scale';
/** How long a restarted daemon gets to list every pod ready and every container running. */
const RECONNECT_DEADLINE_MS = 300_000;
const IMAGE = 'docker.io/bench/busybox:1';
const log = (s: string) => console.log(`${new Date().toISOString().slice(11, 19)} ${s}`);
const hostMounts = () => fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean).length;

/** The summed seconds of every CNI plugin's ADD, from skiffd's /metrics. */
async function cniAddSeconds(url: string): Promise<number> {
  const res = await fetch(url);
  if (res.status !== 200) throw new Error(`GET ${url}: HTTP ${res.status}`);
  let sum = 0;
  for (const line of (await res.text()).split('\n'))
    if (line.startsWith('skiff_cni_operation_duration_seconds_sum{') && line.includes('command="ADD"')) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

/** What one runtime measured; null where it was not measured or failed. */
interface Figures {
  runPod: { first: number[]; last: number[] };
  ctrStart: { first: number[]; last: number[] };
  /** The SERIAL pods' Create+Start, one pod at a time, before the node fills and once full. */
  serialCtrStart: { empty: number[]; full: number[] };
  /** The same pods' RunPodSandbox. */
  serialRunPod: { empty: number[]; full: number[] };
  /** Of it, the CNI plugins' ADD per pod (mean ms), from skiffd's metrics; null for a peer. */
  serialCniAdd: { empty: number | null; full: number | null };
  removePod: number[];
  relist: number[];
  relistFiltered: number[];
  listContainerStats: number[];
  metricsScrape: number[];
  daemonRssMiB: number | null;
  shimRssSumMiB: number | null;
  shims: number;
  /** SIGKILL and start again: until the CRI answers Version, until every pod is listed ready
   * and every container running. */
  restartKill: { criS: number; allS: number } | null;
  restartGraceful: { criS: number; allS: number } | null;
  daemonRssAfterRestartMiB: number | null;
  notMeasured: string[];
}

const newFigures = (): Figures => ({
  runPod: { first: [], last: [] },
  ctrStart: { first: [], last: [] },
  serialCtrStart: { empty: [], full: [] },
  serialRunPod: { empty: [], full: [] },
  serialCniAdd: { empty: null, full: null },
  removePod: [],
  relist: [],
  relistFiltered: [],
  listContainerStats: [],
  metricsScrape: [],
  daemonRssMiB: null,
  shimRssSumMiB: null,
  shims: 0,
  restartKill: null,
  restartGraceful: null,
  daemonRssAfterRestartMiB: null,
  notMeasured: [],
});

/** How the suite restarts a runtime: kill or stop its daemon, start it again on the same
 * state; `client` is one that reaches the new daemon. */
interface Restartable {
  stop(graceful: boolean): Promise<void>;
  start(): void;
  socket: string;
  client(): CriClient;
  pid(): number;
}

/** A /22 for the pods (a /24 holds 253): TestNetwork's config, rewritten before the first
 * pod, from 10.200-249.x (TestNetwork picks its /24s from 10.100-199). */
function widenPodNetwork(confDir: string): string {
  const file = path.join(confDir, '10-test.conflist');
  const conf = JSON.parse(fs.readFileSync(file, 'utf8')) as { plugins: { ipam?: { ranges: { subnet: string }[][] } }[] };
  const subnet = `10.${200 + Math.floor(Math.random() * 50)}.${4 * Math.floor(Math.random() * 64)}.0/22`;
  const ipam = conf.plugins[0].ipam;
  if (!ipam) throw new Error(`${file}: no ipam in its first plugin`);
  ipam.ranges = [[{ subnet }]];
  fs.writeFileSync(file, JSON.stringify(conf));
  return subnet;
}

/** `--network host` puts every pod in the node's network namespace (NODE), without CNI:
 * what the runtime itself costs at N pods, apart from the bridge plugin and the kernel's
 * work for a bridge of N ports. Set as a run starts. */
let HOST_NETWORK = false;
const NAMESPACE_MODE_NODE = 2;

function podConfig(s: Subject, i: number, tag: string) {
  return {
    metadata: { name: `${tag}${i}`, namespace: 'bench', uid: `${tag}-${s.name}-${i}`, attempt: 0 },
    // In the node's namespaces the pod keeps the node's hostname: runc refuses to set one
    // without a UTS namespace of the pod's own, and containerd would ask it to.
    ...(HOST_NETWORK ? {} : { hostname: `${tag}${i}` }),
    linux: {
      cgroup_parent: `${CGROUP_ROOT}/${s.name}/${tag}${i}`,
      ...(HOST_NETWORK ? { security_context: { namespace_options: { network: NAMESPACE_MODE_NODE } } } : {}),
    },
  };
}

async function runPod(s: Subject, i: number, tag: string): Promise<{ id: string; podMs: number; ctrMs: number[] }> {
  const config = podConfig(s, i, tag);
  const t0 = process.hrtime.bigint();
  const { pod_sandbox_id } = await s.client.runtime('RunPodSandbox', { config });
  const podMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const ctrMs: number[] = [];
  for (let c = 0; c < CONTAINERS_PER_POD; c++) {
    const t1 = process.hrtime.bigint();
    const { container_id } = await s.client.runtime('CreateContainer', {
      pod_sandbox_id,
      config: { metadata: { name: `c${c}`, attempt: 0 }, image: { image: IMAGE }, command: ['sleep', '1000000'] },
      sandbox_config: config,
    });
    await s.client.runtime('StartContainer', { container_id });
    ctrMs.push(Number(process.hrtime.bigint() - t1) / 1e6);
  }
  return { id: pod_sandbox_id, podMs, ctrMs };
}

async function removePod(s: Subject, id: string): Promise<number> {
  return timeMs(async () => {
    await s.client.runtime('StopPodSandbox', { pod_sandbox_id: id });
    await s.client.runtime('RemovePodSandbox', { pod_sandbox_id: id });
  });
}

/** Run job(0..n-1) on CONCURRENCY workers, each taking the next index when done; stops
 * taking new ones once aborted, and after the first failure (then rethrown). */
async function workers(n: number, signal: AbortSignal, job: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: unknown;
  await Promise.all(
    Array.from({ length: Math.min(CONCURRENCY, n) }, async () => {
      while (!signal.aborted && failure === undefined) {
        const i = next++;
        if (i >= n) return;
        try {
          await job(i);
        } catch (e) {
          failure ??= e;
        }
      }
    }),
  );
  if (failure !== undefined) throw failure;
  signal.throwIfAborted();
}

/** Counts of pods ready and containers running, as one relist sees them. */
async function relistCounts(client: CriClient, timeoutMs = 60_000): Promise<{ ready: number; running: number }> {
  const [pods, ctrs] = await Promise.all([client.runtime('ListPodSandbox', {}, { timeoutMs }), client.runtime('ListContainers', {}, { timeoutMs })]);
  return {
    ready: pods.items.filter((p) => p.state === PodSandboxState.SANDBOX_READY).length,
    running: ctrs.containers.filter((c) => c.state === ContainerState.CONTAINER_RUNNING).length,
  };
}

/** Kill (or stop) the daemon, start it on the same state and time it back: until Version
 * answers, then until it lists every pod ready and every container running. A fresh client
 * with short reconnect backoff probes, so grpc-js's backoff (1 s and up) is not measured. */
async function timeRestart(r: Restartable, pods: number, graceful: boolean): Promise<{ criS: number; allS: number }> {
  await r.stop(graceful);
  const probe = new CriClient(r.socket, 'runtime.v1', { 'grpc.initial_reconnect_backoff_ms': 5, 'grpc.max_reconnect_backoff_ms': 20, 'grpc.min_reconnect_backoff_ms': 5 } as object);
  try {
    const t0 = process.hrtime.bigint();
    const since = () => Number(process.hrtime.bigint() - t0) / 1e9;
    r.start();
    let criS = NaN;
    for (;;) {
      if (since() * 1000 > RECONNECT_DEADLINE_MS) throw new Error(`no answer to Version ${RECONNECT_DEADLINE_MS / 1000} s after the restart`);
      try {
        await probe.runtime('Version', {}, { timeoutMs: 500 });
        criS = since();
        break;
      } catch {
        await sleep(5);
      }
    }
    let last = { ready: 0, running: 0 };
    for (;;) {
      try {
        last = await relistCounts(probe, 10_000);
        if (last.ready >= pods && last.running >= pods * CONTAINERS_PER_POD) return { criS, allS: since() };
      } catch {
        /* not serving the lists yet (containerd answers before it is initialized) */
      }
      if (since() * 1000 > RECONNECT_DEADLINE_MS) throw new Error(`${RECONNECT_DEADLINE_MS / 1000} s after the restart only ${last.ready} pods ready and ${last.running} containers running`);
      await sleep(10);
    }
  } finally {
    probe.close();
  }
}

function rssMiB(pids: number[]): number {
  let kib = 0;
  for (const p of pids) {
    try {
      kib += vmRssKiB(p);
    } catch {
      /* gone meanwhile */
    }
  }
  return kib / 1024;
}

/** Everything the suite measures on one runtime, its pods removed at the end. */
async function measure(s: Subject, r: Restartable, n: number, runs: number, opts: BenchOptions, metricsUrl: (() => Promise<string>) | null): Promise<Figures> {
  const f = newFigures();
  const { signal } = opts;
  await s.client.image('PullImage', { image: { image: IMAGE } });
  // Warm-up: the pause image (containerd), plugins and caches; then gone again.
  for (let i = 0; i < 3; i++) await removePod(s, (await runPod(s, i, 'warm')).id);
  const url = await metricsUrl?.();
  // One pod at a time, each removed before the next: the node as empty as it gets. With
  // skiffd's metrics, what the CNI plugins' ADD took of each RunPodSandbox.
  const serial = async (when: 'empty' | 'full') => {
    const before = url ? await cniAddSeconds(url) : null;
    let pods = 0;
    for (let i = 0; i < SERIAL && !signal.aborted; i++) {
      const p = await runPod(s, i, `serial-${when}`);
      f.serialRunPod[when].push(p.podMs);
      f.serialCtrStart[when].push(...p.ctrMs);
      pods++;
      await removePod(s, p.id);
    }
    if (before !== null && pods) f.serialCniAdd[when] = ((await cniAddSeconds(url!)) - before) * 1000 / pods;
  };
  await serial('empty');

  log(`${s.name}: starting ${n} pods of ${CONTAINERS_PER_POD} containers, ${CONCURRENCY} at a time`);
  const ids: string[] = [];
  const t0 = Date.now();
  try {
    await workers(n, signal, async (i) => {
      const p = await runPod(s, i, 'scale');
      ids.push(p.id);
      if (i < EDGE) {
        f.runPod.first.push(p.podMs);
        f.ctrStart.first.push(...p.ctrMs);
      }
      if (i >= n - EDGE) {
        f.runPod.last.push(p.podMs);
        f.ctrStart.last.push(...p.ctrMs);
      }
      // The host's mount table, which a container's mount namespace copied before the
      // mount template (api/shim/PROTOCOL.md), grows with the pods: say how much.
      if ((i + 1) % 100 === 0) log(`${s.name}: ${i + 1} pods started (${((Date.now() - t0) / 1000).toFixed(1)} s; ${hostMounts()} mounts on the host)`);
    });
    log(`${s.name}: ${n} pods in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    await serial('full');
    const counts = await relistCounts(s.client);
    if (counts.ready < n || counts.running < n * CONTAINERS_PER_POD) throw new Error(`${s.name}: lists ${counts.ready} pods ready and ${counts.running} containers running, not ${n} and ${n * CONTAINERS_PER_POD}`);

    // One PLEG relist: both lists unfiltered (kubelet's GenericPLEG); then as kubelet's
    // GetPods of running pods asks, with state filters.
    for (let i = 0; i < runs && !signal.aborted; i++) {
      f.relist.push(
        await timeMs(async () => {
          await s.client.runtime('ListPodSandbox', {});
          await s.client.runtime('ListContainers', {});
        }),
      );
      f.relistFiltered.push(
        await timeMs(async () => {
          await s.client.runtime('ListPodSandbox', { filter: { state: { state: PodSandboxState.SANDBOX_READY } } });
          await s.client.runtime('ListContainers', { filter: { state: { state: ContainerState.CONTAINER_RUNNING } } });
        }),
      );
    }
    const scrape = async () => {
      const res = await fetch(url!);
      if (res.status !== 200) throw new Error(`GET ${url}: HTTP ${res.status}`);
      await res.text();
    };
    // The first stats call walks every writable layer (then cached).
    await s.client.runtime('ListContainerStats', {}, { timeoutMs: 300_000 });
    if (url) await scrape();
    for (let i = 0; i < STATS_RUNS && !signal.aborted; i++) {
      f.listContainerStats.push(
        await timeMs(async () => {
          const st = await s.client.runtime('ListContainerStats', {}, { timeoutMs: 300_000 });
          if (st.stats.length < n * CONTAINERS_PER_POD) throw new Error(`${s.name}: ListContainerStats gave ${st.stats.length} containers`);
        }),
      );
      if (url) f.metricsScrape.push(await timeMs(scrape));
    }

    // Memory once the lists' garbage has had time to go (V8 collects it a few s later).
    await sleep(5000);
    f.daemonRssMiB = rssMiB([s.pid()]);
    const shimPids = s.shimPids();
    f.shims = shimPids.length;
    f.shimRssSumMiB = rssMiB(shimPids);
    log(`${s.name}: daemon RSS ${fmt(f.daemonRssMiB)} MiB, ${f.shims} shims ${fmt(f.shimRssSumMiB)} MiB`);

    signal.throwIfAborted();
    log(`${s.name}: restart after SIGKILL with ${n} pods`);
    f.restartKill = await timeRestart(r, n, false);
    s.client = r.client();
    log(`${s.name}: CRI back in ${fmt(f.restartKill.criS, 3)} s, every pod and container in ${fmt(f.restartKill.allS, 3)} s`);
    await sleep(5000);
    f.daemonRssAfterRestartMiB = rssMiB([r.pid()]);
    signal.throwIfAborted();
    log(`${s.name}: restart after a graceful stop with ${n} pods`);
    f.restartGraceful = await timeRestart(r, n, true);
    s.client = r.client();
    log(`${s.name}: CRI back in ${fmt(f.restartGraceful.criS, 3)} s, every pod and container in ${fmt(f.restartGraceful.allS, 3)} s`);
  } finally {
    // Removed here and timed; after a failure, what is left goes with the run's cleanups.
    if (!signal.aborted) {
      log(`${s.name}: removing ${ids.length} pods, ${CONCURRENCY} at a time`);
      s.client = r.client();
      const t1 = Date.now();
      await workers(ids.length, signal, async (i) => void f.removePod.push(await removePod(s, ids[i]))).then(
        () => log(`${s.name}: removed in ${((Date.now() - t1) / 1000).toFixed(1)} s`),
        (e: unknown) => log(`${s.name}: removing the pods: ${errText(e)} (the cleanup removes what is left)`),
      );
    }
  }
  return f;
}

function skiffRestartable(sk: Awaited<ReturnType<typeof startSkiff>>): Restartable {
  const d = sk.skiffd;
  let starting: Promise<void> | undefined;
  return {
    socket: d.socket,
    stop: async (graceful) => {
      await starting;
      await (graceful ? d.stop() : d.kill());
    },
    // TestSkiffd's own wait for Version (its client backs off) runs beside the probe.
    start: () => void (starting = d.restart().catch((e: Error) => log(`skiffd restart: ${e.message}`))),
    client: () => d.client,
    pid: () => d.pid!,
  };
}

/** containerd restarted by hand: the fixture starts it once; the same binary and config
 * start it again on the same root and state (its shims outlive it). The process started here is
 * the caller's to kill (`kill`). */
function containerdRestartable(s: Subject, confDir: string, binary = 'containerd'): (Restartable & { kill(): Promise<void> }) | string {
  const dir = path.dirname(confDir);
  const config = path.join(dir, 'config.toml');
  if (!fs.existsSync(config)) return `no config.toml beside ${confDir}`;
  let proc: ChildProcess | undefined;
  let client: CriClient | undefined;
  const pid = () => proc?.pid ?? s.pid();
  const stopPid = async (p: number, sig: NodeJS.Signals) => {
    try {
      process.kill(p, sig);
    } catch {
      return;
    }
    for (const end = Date.now() + 20_000; Date.now() < end; await sleep(10)) if (!fs.existsSync(`/proc/${p}`) || /\) Z /.test(fs.readFileSync(`/proc/${p}/stat`, 'utf8'))) return;
    if (sig !== 'SIGKILL') await stopPid(p, 'SIGKILL');
  };
  return {
    socket: s.client.socket,
    stop: (graceful) => stopPid(pid(), graceful ? 'SIGTERM' : 'SIGKILL'),
    start: () => {
      const logFd = fs.openSync(path.join(dir, 'containerd.log'), 'a');
      proc = spawn(binary, ['--config', config], { stdio: ['ignore', logFd, logFd] });
      fs.closeSync(logFd);
      client?.close();
      client = new CriClient(s.client.socket);
    },
    client: () => client ?? s.client,
    pid,
    kill: async () => {
      client?.close();
      if (proc && proc.exitCode === null && proc.signalCode === null) await stopPid(proc.pid!, 'SIGTERM');
    },
  };
}

const med = (xs: number[]) => (xs.length ? round(median(xs)) : null);

async function runScaleBench(opts: BenchOptions): Promise<void> {
  const n = opts.pods ?? DEFAULT_PODS;
  const runs = opts.runs ?? DEFAULT_RELISTS;
  const network = opts.suiteFlags.get('--network') ?? 'cni';
  if (network !== 'cni' && network !== 'host') throw new Error(`--network: expected cni or host, got "${network}"`);
  HOST_NETWORK = network === 'host';
  log(`scale: pods ${HOST_NETWORK ? "in the node's network namespace (--network host), no CNI" : 'on the CNI bridge'}`);
  if (n < 2 * EDGE) log(`scale: ${n} pods: the first and last ${EDGE} overlap`);
  const work = fs.mkdtempSync('/tmp/skb-scale-');
  const cleanups = new Cleanups();
  cleanups.add('remove the work dir', () => fs.rmSync(work, { recursive: true, force: true }));
  cleanups.add('remove the pod cgroups', () => removeCgroupTree(CGROUP_ROOT));
  const figures: Record<string, Figures> = {};
  const versions: Record<string, string> = {};
  const failures: string[] = [];
  try {
    const reg = await TestRegistry.start();
    cleanups.add('stop the registry', () => reg.stop());
    await pushBenchImages(reg, work);

    const peers: { name: string; start: () => Promise<{ s: Subject; r: Restartable | string; metrics: (() => Promise<string>) | null }> }[] = [
      {
        name: 'skiff',
        start: async () => {
          const sk = await startSkiff(reg.host, cleanups);
          log(`skiff: pods on ${widenPodNetwork(path.join(sk.skiffd.dir, 'net.d'))}`);
          const metrics = async () => {
            const status = await sk.skiffd.client.runtime('Status', { verbose: true });
            return `http://${(JSON.parse(status.info.config) as { metricsAddress: string }).metricsAddress}/metrics`;
          };
          return { s: sk, r: skiffRestartable(sk), metrics };
        },
      },
    ];
    const peerReport = new PeerReport();
    const { containerd, runc } = opts.peers;
    // add() reports a missing part; the found checks are what narrow the types.
    if (peerReport.add('containerd_runc', containerd, runc) && containerd.found && runc.found)
      peers.push({
        name: 'containerd_runc',
        start: async () => {
          const { subject, net } = await startContainerd('containerd_runc', work, reg.host, runc.path, containerd.path);
          const r = containerdRestartable(subject, net.confDir, containerd.path);
          cleanups.add(`stop ${subject.name}`, async () => {
            await subject.stop();
            if (typeof r !== 'string') await r.kill();
          });
          log(`containerd_runc: pods on ${widenPodNetwork(net.confDir)}`);
          await sleep(2000); // containerd reloads its CNI config when the dir changes
          return { s: subject, r, metrics: null };
        },
      });
    if (opts.peers.crio.found) peerReport.notMeasured('crio', 'this suite drives containerd only; the lifecycle suite drives CRI-O');
    for (const line of peerReport.lines()) log(line);

    for (const p of peers) {
      if (opts.signal.aborted) break;
      try {
        const { s, r, metrics } = await p.start();
        const v = await s.client.runtime('Version', {});
        versions[p.name] = `${v.runtime_name} ${v.runtime_version}`;
        if (typeof r === 'string') throw new Error(`cannot restart it: ${r}`);
        figures[p.name] = await measure(s, r, n, runs, opts, metrics);
      } catch (e) {
        failures.push(`${p.name}: ${errText(e)}`);
        log(`${p.name}: FAILED: ${errText(e)}`);
        if (p.name !== 'skiff') peerReport.notMeasured(p.name, errText(e).slice(0, 500));
      }
    }
    report(n, figures, versions, peerReport);
    if (failures.length) throw new Error(failures.join('; '));
  } finally {
    await cleanups.run(log);
  }
}

function report(n: number, figures: Record<string, Figures>, versions: Record<string, string>, peers: PeerReport): void {
  const sk = figures.skiff;
  const peer = figures.containerd_runc;
  const rows: string[][] = [];
  const row = (metric: string, name: string, xs: number[]) => {
    const sum = summarize(xs);
    const base = sk ? summarize(pick(sk, metric)).median : NaN;
    rows.push([`${metric}_ms`, name, String(sum.n), fmt(sum.median), fmt(sum.p99), name === 'skiff' ? '' : fmt(base / sum.median)]);
  };
  const pick = (f: Figures, metric: string): number[] =>
    ({
      run_pod_first50: f.runPod.first,
      run_pod_last50: f.runPod.last,
      ctr_start_first50: f.ctrStart.first,
      ctr_start_last50: f.ctrStart.last,
      ctr_start_serial_empty: f.serialCtrStart.empty,
      ctr_start_serial_full: f.serialCtrStart.full,
      run_pod_serial_empty: f.serialRunPod.empty,
      run_pod_serial_full: f.serialRunPod.full,
      relist: f.relist,
      relist_filtered: f.relistFiltered,
      list_container_stats: f.listContainerStats,
      metrics_scrape: f.metricsScrape,
      remove_pod: f.removePod,
    })[metric] ?? [];
  for (const metric of ['run_pod_first50', 'run_pod_last50', 'ctr_start_first50', 'ctr_start_last50', 'ctr_start_serial_empty', 'ctr_start_serial_full', 'run_pod_serial_empty', 'run_pod_serial_full', 'relist', 'relist_filtered', 'list_container_stats', 'metrics_scrape', 'remove_pod'])
    for (const [name, f] of Object.entries(figures)) if (pick(f, metric).length) row(metric, name, pick(f, metric));
  console.log('');
  for (const [name, v] of Object.entries(versions)) console.log(`${name}: ${v}`);
  printTable(['metric', 'subject', 'n', 'median ms', 'p99 ms', 'skiff/peer'], rows);
  console.log('');
  for (const [name, f] of Object.entries(figures)) {
    // Growth from the first pods to the last beyond noise: the medians' ratio against the
    // spread (p99/median) the first pods already show.
    for (const [what, x] of [['RunPodSandbox', f.runPod], ['Create+Start', f.ctrStart]] as const) {
      const a = summarize(x.first);
      const b = summarize(x.last);
      const ratio = b.median / a.median;
      const noise = a.p99 / a.median;
      console.log(`${name}: ${what} last ${EDGE} / first ${EDGE}: ${fmt(ratio)} (medians ${fmt(a.median)} -> ${fmt(b.median)} ms; the first pods' p99/median is ${fmt(noise)}): ${ratio > 1.25 && ratio > Math.sqrt(noise) ? 'slower beyond noise' : 'within noise'}`);
    }
    const se = summarize(f.serialCtrStart.empty);
    const sf = summarize(f.serialCtrStart.full);
    if (se.n && sf.n) console.log(`${name}: Create+Start one pod at a time, at ${n} pods / on the empty node: ${fmt(sf.median / se.median)} (medians ${fmt(se.median)} -> ${fmt(sf.median)} ms)`);
    const re = summarize(f.serialRunPod.empty);
    const rf = summarize(f.serialRunPod.full);
    const cni = f.serialCniAdd;
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const own =
      cni.empty !== null && cni.full !== null
        ? `; means ${fmt(mean(f.serialRunPod.empty))} -> ${fmt(mean(f.serialRunPod.full))} ms, of which the CNI plugins' ADD ${fmt(cni.empty)} -> ${fmt(cni.full)} ms and the rest ${fmt(mean(f.serialRunPod.empty) - cni.empty)} -> ${fmt(mean(f.serialRunPod.full) - cni.full)} ms`
        : '';
    if (re.n && rf.n) console.log(`${name}: RunPodSandbox one pod at a time, at ${n} pods / on the empty node: ${fmt(rf.median / re.median)} (medians ${fmt(re.median)} -> ${fmt(rf.median)} ms${own})`);
    console.log(`${name}: daemon RSS at ${n} pods ${fmt(f.daemonRssMiB)} MiB (after the restarts ${fmt(f.daemonRssAfterRestartMiB)} MiB); ${f.shims} shims, ${fmt(f.shimRssSumMiB)} MiB in all`);
    for (const [how, r] of [['SIGKILL', f.restartKill], ['graceful stop', f.restartGraceful]] as const)
      console.log(`${name}: restart after ${how}: ${r ? `CRI answers in ${fmt(r.criS, 3)} s, all ${n} pods ready and ${n * CONTAINERS_PER_POD} containers running in ${fmt(r.allS, 3)} s` : 'not measured'}`);
  }
  const pair = (k: (f: Figures) => number[]) => ({ skiff: sk ? med(k(sk)) : null, containerd: peer ? med(k(peer)) : null });
  console.log(
    JSON.stringify({
      suite: 'scale',
      peers: peers.json(),
      pods: n,
      network: HOST_NETWORK ? 'host' : 'cni',
      run_pod_ms: { first50: sk ? med(sk.runPod.first) : null, last50: sk ? med(sk.runPod.last) : null },
      ctr_start_ms: { first50: sk ? med(sk.ctrStart.first) : null, last50: sk ? med(sk.ctrStart.last) : null },
      ctr_start_serial_ms: { empty: sk ? med(sk.serialCtrStart.empty) : null, full: sk ? med(sk.serialCtrStart.full) : null },
      run_pod_serial_ms: { empty: sk ? med(sk.serialRunPod.empty) : null, full: sk ? med(sk.serialRunPod.full) : null },
      cni_add_serial_mean_ms: { empty: sk ? round(sk.serialCniAdd.empty) : null, full: sk ? round(sk.serialCniAdd.full) : null },
      relist_ms: pair((f) => f.relist),
      list_container_stats_ms: pair((f) => f.listContainerStats),
      metrics_scrape_ms: sk ? med(sk.metricsScrape) : null,
      skiffd_rss_mib: sk ? round(sk.daemonRssMiB) : null,
      shim_rss_sum_mib: sk ? round(sk.shimRssSumMiB) : null,
      restart_s: sk?.restartKill ? round(sk.restartKill.allS) : null,
      restart_cri_s: sk?.restartKill ? round(sk.restartKill.criS) : null,
      restart_graceful_s: sk?.restartGraceful ? round(sk.restartGraceful.allS) : null,
      run_pod_p99_ms: { first50: sk ? round(summarize(sk.runPod.first).p99) : null, last50: sk ? round(summarize(sk.runPod.last).p99) : null },
      ctr_start_p99_ms: { first50: sk ? round(summarize(sk.ctrStart.first).p99) : null, last50: sk ? round(summarize(sk.ctrStart.last).p99) : null },
      relist_filtered_ms: pair((f) => f.relistFiltered),
      remove_pod_ms: pair((f) => f.removePod),
      containerd: peer
        ? {
            run_pod_ms: { first50: med(peer.runPod.first), last50: med(peer.runPod.last) },
            ctr_start_ms: { first50: med(peer.ctrStart.first), last50: med(peer.ctrStart.last) },
            ctr_start_serial_ms: { empty: med(peer.serialCtrStart.empty), full: med(peer.serialCtrStart.full) },
            run_pod_serial_ms: { empty: med(peer.serialRunPod.empty), full: med(peer.serialRunPod.full) },
            daemon_rss_mib: round(peer.daemonRssMiB),
            shim_rss_sum_mib: round(peer.shimRssSumMiB),
            restart_s: peer.restartKill ? round(peer.restartKill.allS) : null,
            restart_cri_s: peer.restartKill ? round(peer.restartKill.criS) : null,
            restart_graceful_s: peer.restartGraceful ? round(peer.restartGraceful.allS) : null,
          }
        : null,
    }),
  );
}

export const scaleSuite: Suite = {
  name: 'scale',
  description: `a node at ${DEFAULT_PODS} pods (--pods N): pod and container start first/last ${EDGE}, relist, stats, RSS, restart: skiff vs containerd`,
  run: runScaleBench,
  flags: {
    '--network': 'cni (default: the pods on the CNI bridge) or host (in the node\'s network namespace, no CNI)',
  },
};
