// The `isolation` suite: can one pod hurt another on the node? A victim pod measures itself
// (a 1 ms wake-up's lateness, a round of allocation and file work, and the latency of its
// HTTP server, sampled from the host over the pod bridge) beside one noisy neighbour at a
// time: CPU hog, memory hog, fork bomb, fsync storm, UDP flood, page-cache thrasher; each
// with the limits kubelet sets for a Burstable pod and with none, on skiff and on
// containerd in the same run. The kernel's own counts (OOM kills, throttling, forks
// refused) and the runtime's CRI latency during each storm go beside the victim's figures.
import { ChildProcess, execFileSync, spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { LinuxContainerResources } from '../../src/cri/gen/cri';
import { ContainerState, NamespaceMode } from '../../src/cri/gen/cri';
import type { Reply } from '../../src/cri/server';
import { markedTempDir, removeCgroupTree, testCgroup } from '../fixtures/cleanup';
import { busyboxLayer, layerOf } from '../fixtures/images';
import { TestRegistry } from '../fixtures/registry';
import type { BenchOptions, Suite } from './index';
import { KernelCounters, makePodCgroup, PodCgroupLimits, readKernelCounters } from './isolation_cgroup';
import {
  CaseResult, emptyWindow, IsolationRun, latencyChart, Mode, MODES, Neighbour, NEIGHBOURS, parseClientLines, parseVictimSamples,
  ratioChart, resultObject, Sample, SubjectName, tableRows, WindowSamples, within,
} from './isolation_results';
import { pushBenchImages, startContainerdPeers, startSkiff, Subject } from './lifecycle';
import { PeerReport } from './peers';
import { groupedChart } from './png_plot';
import { printTable } from './stats';
import { Cleanups, errText, sleep } from './util';

const DEFAULT_SECONDS = 5;
const MAX_SECONDS = 120;
const MAX_ROUNDS = 20;
const VICTIM_PORT = 8080;
/** Requests a second from the host's HTTP sampler; CRI calls every this many ms. */
const HTTP_HZ = 100;
const CRI_EVERY_MS = 50;
/** The bounds that keep a neighbour without limits from taking a shared node down: the
 * memory hog allocates at most this much, the fork bomb keeps at most this many processes,
 * the disk hog and the cache thrasher write files of these sizes. */
const MEM_HOG_MIB = 2048;
const FORK_CAP = 3000;
const DISK_FILE_MIB = 256;
const CACHE_FILE_MIB = 1024;
/** A neighbour ends by itself this long after its window, should the benchmark be gone. */
const SELF_DEADLINE_MARGIN_S = 30;
/** A pause after each neighbour is removed, before the victim is measured alone again. */
const SETTLE_MS = 1000;
const STOP_TIMEOUT_MS = 120_000;
const IMAGE = 'docker.io/bench/isoload:1';
const ISOLOAD_SOURCE = path.resolve(__dirname, '../../../e2e/bench/isoload.c');
const MiB = 1024 * 1024;
const log = (s: string) => console.log(`${new Date().toISOString().slice(11, 19)} ${s}`);

/** A pod as kubelet sees it: one container's requests and limits (milli-CPU, bytes). */
interface PodShape {
  cpuRequestMilli: number;
  cpuLimitMilli: number | null;
  memRequest: number;
  memLimit: number | null;
}

/** The victim: Burstable, half a CPU requested and no CPU limit (so that its figures are
 * not its own throttling), a memory limit well above what it uses. */
const VICTIM: PodShape = { cpuRequestMilli: 500, cpuLimitMilli: null, memRequest: 128 * MiB, memLimit: 512 * MiB };
/** A neighbour "limited": Burstable, a quarter CPU requested, one CPU and 256 MiB at most. */
const NEIGHBOUR: PodShape = { cpuRequestMilli: 250, cpuLimitMilli: 1000, memRequest: 64 * MiB, memLimit: 256 * MiB };
/** kubelet's --pod-max-pids for these runs (kubelet's default is none; CRI-O once set 1024). */
const POD_PIDS_LIMIT = 1024;
const CPU_PERIOD_US = 100_000;

/** kubelet's MilliCPUToShares. */
const milliToShares = (m: number) => Math.max(2, Math.floor((m * 1024) / 1000));
/** kubelet's MilliCPUToQuota (1 ms the least). */
const milliToQuota = (m: number) => Math.max(1000, Math.floor((m * CPU_PERIOD_US) / 1000));

/** kubelet's oom_score_adj for a Burstable container (pkg/kubelet/qos/policy.go). */
export function burstableOomScoreAdj(memRequest: number, memCapacity: number): number {
  const adj = 1000 - Math.floor((1000 * memRequest) / memCapacity);
  if (adj < 3) return 3;
  return adj === 1000 ? 999 : adj;
}

/** The CRI LinuxContainerResources kubelet sends for a container of this shape. */
function containerResources(p: PodShape): Reply<LinuxContainerResources> {
  return {
    cpu_shares: milliToShares(p.cpuRequestMilli),
    cpu_period: CPU_PERIOD_US,
    cpu_quota: p.cpuLimitMilli === null ? 0 : milliToQuota(p.cpuLimitMilli),
    memory_limit_in_bytes: p.memLimit ?? 0,
    oom_score_adj: burstableOomScoreAdj(p.memRequest, os.totalmem()),
  };
}

/** What kubelet writes on the pod cgroup of a pod of one such container. */
function podCgroupLimits(p: PodShape): PodCgroupLimits {
  return {
    cpuShares: milliToShares(p.cpuRequestMilli),
    cpuQuotaUs: p.cpuLimitMilli === null ? null : milliToQuota(p.cpuLimitMilli),
    cpuPeriodUs: CPU_PERIOD_US,
    memoryBytes: p.memLimit,
    pidsMax: POD_PIDS_LIMIT,
  };
}

/** The neighbour's command; its own deadline comes first. */
function neighbourCommand(n: Neighbour, seconds: number, victimIp: string): string[] {
  const deadline = String(seconds + SELF_DEADLINE_MARGIN_S);
  const args: Record<Neighbour, string[]> = {
    cpu: [],
    mem: [String(MEM_HOG_MIB)],
    fork: [String(FORK_CAP)],
    disk: [String(DISK_FILE_MIB)],
    net: [victimIp, '9'],
    cache: [String(CACHE_FILE_MIB)],
  };
  return ['/bin/isoload', n, deadline, ...args[n]];
}

/** One runtime under test: its CRI client, its victim, and what the victim measured. */
interface Runtime {
  name: SubjectName;
  subject: Subject;
  victimIp: string;
  /** The victim's own samples, fetched after each case (CLOCK_MONOTONIC ns). */
  sched: Sample[];
  work: Sample[];
  alone: WindowSamples;
}

interface RunningPod {
  id: string;
  containerId: string;
  logPath: string;
}

const hrNow = () => Number(process.hrtime.bigint());

/** The static isoload binary, built here with gcc. */
function buildIsoload(work: string): string {
  const out = path.join(work, 'isoload');
  try {
    execFileSync('gcc', ['-static', '-O2', '-pthread', '-o', out, ISOLOAD_SOURCE], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    throw new Error(`building ${ISOLOAD_SOURCE} (gcc -static, glibc's static libraries): ${errText(e)}`);
  }
  return out;
}

/** docker.io/bench/isoload:1: busybox and /bin/isoload. */
async function pushIsoloadImage(reg: TestRegistry, work: string, binary: string): Promise<void> {
  const root = path.join(work, 'isoload-root');
  fs.mkdirSync(path.join(root, 'bin'), { recursive: true });
  fs.copyFileSync(binary, path.join(root, 'bin/isoload'));
  fs.chmodSync(path.join(root, 'bin/isoload'), 0o755);
  await reg.pushImage('bench/isoload', '1', [busyboxLayer(work), layerOf(root)], undefined, { Cmd: ['/bin/isoload'], Env: ['PATH=/bin'] });
}

let seq = 0;

/** A pod of one container in the pod cgroup `cgroupParent`, as kubelet runs one: its own
 * PID namespace, the container's resources (none: nothing said). */
async function runPod(s: Subject, name: string, cgroupParent: string, logDir: string, resources: Reply<LinuxContainerResources> | null, command: string[]): Promise<RunningPod> {
  const n = ++seq;
  const nsOpts = { namespace_options: { pid: NamespaceMode.CONTAINER } };
  const config = {
    metadata: { name, namespace: 'bench-isolation', uid: `iso-${n}`, attempt: 0 },
    hostname: name,
    log_directory: path.join(logDir, `${name}-${n}`),
    linux: { cgroup_parent: cgroupParent, security_context: nsOpts, ...(resources ? { resources } : {}) },
  };
  fs.mkdirSync(config.log_directory, { recursive: true });
  const { pod_sandbox_id } = await s.client.runtime('RunPodSandbox', { config }, { timeoutMs: STOP_TIMEOUT_MS });
  try {
    const { container_id } = await s.client.runtime('CreateContainer', {
      pod_sandbox_id,
      config: { metadata: { name: 'main', attempt: 0 }, image: { image: IMAGE }, command, log_path: 'main.log', linux: { security_context: nsOpts, ...(resources ? { resources } : {}) } },
      sandbox_config: config,
    });
    await s.client.runtime('StartContainer', { container_id });
    return { id: pod_sandbox_id, containerId: container_id, logPath: path.join(config.log_directory, 'main.log') };
  } catch (e) {
    await removePod(s, pod_sandbox_id).catch(() => {});
    throw e;
  }
}

async function removePod(s: Subject, id: string): Promise<void> {
  await s.client.runtime('StopPodSandbox', { pod_sandbox_id: id }, { timeoutMs: STOP_TIMEOUT_MS });
  await s.client.runtime('RemovePodSandbox', { pod_sandbox_id: id }, { timeoutMs: STOP_TIMEOUT_MS });
}

/** The host's HTTP sampler for `seconds`: a sample per request. Killed when aborted. */
function sampleHttp(binary: string, ip: string, seconds: number, signal: AbortSignal): Promise<Sample[]> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason); // an abort event that has passed does not come again
    const child: ChildProcess = spawn(binary, ['client', ip, String(VICTIM_PORT), String(HTTP_HZ), String(seconds)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const onAbort = () => child.kill('SIGKILL');
    signal.addEventListener('abort', onAbort, { once: true });
    child.once('error', reject);
    child.once('close', (code) => {
      signal.removeEventListener('abort', onAbort);
      if (code === 0) resolve(parseClientLines(out));
      else reject(new Error(`HTTP sampler for ${ip}:${VICTIM_PORT} ended with ${code ?? 'a signal'}: ${err.trim()}`));
    });
  });
}

/** One window: the victim's HTTP latency from the host and the runtime's CRI latency (Version
 * and ListContainers in turn), while whatever runs beside it runs; from and to in ns. */
async function measureWindow(rt: Runtime, binary: string, seconds: number, signal: AbortSignal): Promise<{ from: number; to: number; http: number[]; cri: number[] }> {
  const cri: number[] = [];
  let done = false;
  const criLoop = (async () => {
    for (let i = 0; !done; i++) {
      const t0 = hrNow();
      // An error is an answer too: its latency counts (a timeout counts its 30 s).
      await (i % 2 ? rt.subject.client.runtime('ListContainers', {}, { timeoutMs: 30_000 }) : rt.subject.client.runtime('Version', {}, { timeoutMs: 30_000 })).catch(() => {});
      const ms = (hrNow() - t0) / 1e6;
      cri.push(ms);
      if (!done) await sleep(Math.max(0, CRI_EVERY_MS - ms));
    }
  })();
  const from = hrNow();
  try {
    const http = await sampleHttp(binary, rt.victimIp, seconds, signal);
    return { from, to: hrNow(), http: http.map((s) => s.ms), cri };
  } finally {
    done = true;
    await criLoop;
  }
}

/** What the victim's probes measured since the last fetch, kept on rt. */
async function fetchVictimSamples(rt: Runtime): Promise<void> {
  const res = await fetch(`http://${rt.victimIp}:${VICTIM_PORT}/samples`, { signal: AbortSignal.timeout(30_000) });
  if (res.status !== 200) throw new Error(`victim on ${rt.subject.name}: GET /samples: HTTP ${res.status}`);
  const s = parseVictimSamples(await res.text());
  rt.sched.push(...s.sched);
  rt.work.push(...s.work);
}

function addWindow(into: WindowSamples, rt: Runtime, w: { from: number; to: number; http: number[]; cri: number[] }): void {
  into.probes.http.push(...w.http);
  into.probes.sched.push(...within(rt.sched, w.from, w.to));
  into.probes.work.push(...within(rt.work, w.from, w.to));
  into.cri.push(...w.cri);
}

/** Why a neighbour stopped before its window ended, from its status and log; null: it ran. */
async function stoppedEarly(s: Subject, pod: RunningPod): Promise<string | null> {
  const st = await s.client.runtime('ContainerStatus', { container_id: pod.containerId });
  if (st.status?.state === ContainerState.CONTAINER_RUNNING) return null;
  let tail = '';
  try {
    tail = fs.readFileSync(pod.logPath, 'utf8').slice(-300);
  } catch {
    /* no log */
  }
  return `the neighbour exited (code ${st.status?.exit_code}, ${st.status?.reason}) before its window ended ${tail}`.trim();
}

interface CaseContext {
  binary: string;
  seconds: number;
  cgroupRoot: string;
  logDir: string;
  signal: AbortSignal;
}

/** The victim alone for a window, then beside neighbour n (limits or none) for a window. */
async function runCase(rt: Runtime, n: Neighbour, mode: Mode, ctx: CaseContext): Promise<CaseResult> {
  const result: CaseResult = { subject: rt.name, neighbour: n, mode, storm: emptyWindow(), kernel: null };
  const alone = await measureWindow(rt, ctx.binary, ctx.seconds, ctx.signal);
  ctx.signal.throwIfAborted();
  const podCgroup = `${ctx.cgroupRoot}/${rt.name}/${n}-${mode}`;
  let storm: Awaited<ReturnType<typeof measureWindow>> | null = null;
  let kernel: KernelCounters | null = null;
  try {
    makePodCgroup(podCgroup, mode === 'limited' ? podCgroupLimits(NEIGHBOUR) : null);
    const pod = await runPod(rt.subject, `${n}-${mode}`, podCgroup, ctx.logDir, mode === 'limited' ? containerResources(NEIGHBOUR) : null, neighbourCommand(n, ctx.seconds, rt.victimIp));
    try {
      storm = await measureWindow(rt, ctx.binary, ctx.seconds, ctx.signal);
      kernel = readKernelCounters(podCgroup);
      const early = await stoppedEarly(rt.subject, pod);
      if (early) result.error = early;
    } finally {
      await removePod(rt.subject, pod.id);
    }
  } catch (e) {
    result.error = errText(e);
  } finally {
    removeCgroupTree(podCgroup);
  }
  await fetchVictimSamples(rt);
  addWindow(rt.alone, rt, alone);
  if (storm && !result.error) {
    addWindow(result.storm, rt, storm);
    result.kernel = kernel;
  }
  await sleep(SETTLE_MS);
  return result;
}

/** The runtime's victim pod, answering HTTP on the pod network. */
async function startVictim(s: Subject, name: SubjectName, ctx: CaseContext): Promise<Runtime> {
  const cg = `${ctx.cgroupRoot}/${name}/victim`;
  makePodCgroup(cg, podCgroupLimits(VICTIM));
  const pod = await runPod(s, 'victim', cg, ctx.logDir, containerResources(VICTIM), ['/bin/isoload', 'victim', String(VICTIM_PORT)]);
  const st = await s.client.runtime('PodSandboxStatus', { pod_sandbox_id: pod.id });
  const ip = st.status?.network?.ip;
  if (!ip) throw new Error(`${s.name}: the victim pod has no IP`);
  const rt: Runtime = { name, subject: s, victimIp: ip, sched: [], work: [], alone: emptyWindow() };
  for (const end = Date.now() + 60_000; ; await sleep(100)) {
    try {
      const res = await fetch(`http://${ip}:${VICTIM_PORT}/`, { signal: AbortSignal.timeout(2000) });
      await res.text();
      if (res.status === 200) break;
    } catch (e) {
      if (Date.now() > end) throw new Error(`${s.name}: the victim at ${ip}:${VICTIM_PORT} does not answer: ${errText(e)}`);
    }
  }
  // Its probes settle (the read file is written, caches warm) before the first window.
  await sleep(2000);
  await fetchVictimSamples(rt);
  rt.sched.length = 0;
  rt.work.length = 0;
  return rt;
}

interface IsolationFlags {
  seconds: number;
  rounds: number;
  neighbours: Neighbour[];
  out: string;
}

/** --seconds N, --neighbours a,b, --out DIR, and the bench's --runs N as the rounds; an
 * error names the flag. */
export function parseIsolationFlags(flags: Map<string, string>, now = new Date(), runs?: number): IsolationFlags | string {
  const seconds = Number(flags.get('--seconds') ?? DEFAULT_SECONDS);
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > MAX_SECONDS) return `--seconds: expected an integer from 1 to ${MAX_SECONDS}, got "${flags.get('--seconds')}"`;
  const rounds = runs ?? 1;
  if (rounds > MAX_ROUNDS) return `--runs: the isolation suite runs every case at most ${MAX_ROUNDS} times, got ${rounds}`;
  const names = (flags.get('--neighbours') ?? NEIGHBOURS.join(',')).split(',').map((n) => n.trim()).filter(Boolean);
  const unknown = names.filter((n) => !(NEIGHBOURS as readonly string[]).includes(n));
  if (unknown.length || !names.length) return `--neighbours: expected some of ${NEIGHBOURS.join(',')}, got "${flags.get('--neighbours')}"`;
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return { seconds, rounds, neighbours: NEIGHBOURS.filter((n) => names.includes(n)), out: path.resolve(flags.get('--out') ?? path.join('bench-results', `isolation-${stamp}`)) };
}

function writePlots(run: IsolationRun, out: string): string[] {
  fs.mkdirSync(out, { recursive: true });
  const charts: [string, Parameters<typeof groupedChart>[0]][] = [
    ['isolation-http-p99-ratio.png', ratioChart(run, 'http', 'VICTIM HTTP P99 BESIDE EACH NEIGHBOUR, X ALONE')],
    ['isolation-sched-p99-ratio.png', ratioChart(run, 'sched', 'VICTIM 1 MS WAKE-UP LATENESS P99, X ALONE')],
    ['isolation-http-ms.png', latencyChart(run, 'http', 'VICTIM HTTP LATENCY MS (BOX P25-P75, WHISKERS P1-P99)')],
    ['isolation-work-ms.png', latencyChart(run, 'work', 'VICTIM ALLOC+WRITE+FSYNC+READ ROUND, DUE TO DONE, MS (P1-P25-P50-P75-P99)')],
  ];
  return charts.map(([file, spec]) => {
    const p = path.join(out, file);
    fs.writeFileSync(p, groupedChart(spec));
    return p;
  });
}

async function runIsolationBench(opts: BenchOptions): Promise<void> {
  const flags = parseIsolationFlags(opts.suiteFlags, new Date(), opts.runs);
  if (typeof flags === 'string') throw new Error(flags);
  const work = markedTempDir('/tmp/skb-iso-');
  const cleanups = new Cleanups();
  cleanups.add('remove the work dir', () => fs.rmSync(work, { recursive: true, force: true }));
  const report = new PeerReport();
  const loadBefore = os.loadavg();
  try {
    const binary = buildIsoload(work);
    const reg = await TestRegistry.start();
    cleanups.add('stop the registry', () => reg.stop());
    await pushBenchImages(reg, work);
    await pushIsoloadImage(reg, work, binary);
    const cgroupRoot = testCgroup();
    // Added before the runtimes: cleanups run in reverse, so this goes after their pods.
    cleanups.add('remove the pod cgroups', () => removeCgroupTree(cgroupRoot));
    const ctx: CaseContext = { binary, seconds: flags.seconds, cgroupRoot, logDir: path.join(work, 'logs'), signal: opts.signal };

    const subjects: [SubjectName, Subject][] = [['skiff', await startSkiff(reg.host, cleanups)]];
    for (const s of await startContainerdPeers(opts.peers, [['containerd_runc', opts.peers.runc]], work, reg.host, cleanups, report)) subjects.push(['containerd', s]);
    for (const line of report.lines()) log(line);
    log(`${flags.seconds} s windows, ${flags.rounds} round${flags.rounds > 1 ? 's' : ''}; neighbours ${flags.neighbours.join(', ')}; load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')} on ${os.cpus().length} CPUs`);

    const runtimes: Runtime[] = [];
    for (const [name, s] of subjects) {
      try {
        await s.client.image('PullImage', { image: { image: IMAGE } });
        runtimes.push(await startVictim(s, name, ctx));
      } catch (e) {
        if (name === 'skiff') throw e;
        report.notMeasured('containerd_runc', `its victim pod failed: ${errText(e).slice(0, 500)}`);
        log(report.line('containerd_runc'));
      }
    }

    const run: IsolationRun = { seconds: flags.seconds, rounds: flags.rounds, neighbours: flags.neighbours, subjects: runtimes.map((r) => r.name), alone: {}, cases: [], peers: report.json() };
    // A case can land differently from one window to the next (the fork bomb did, on both
    // runtimes): rounds repeat the whole interleaved sequence, and the figures pool them.
    for (let round = 0; round < flags.rounds; round++) for (const n of flags.neighbours) for (const m of MODES) for (const rt of runtimes) {
      opts.signal.throwIfAborted();
      const c = await runCase(rt, n, m, ctx);
      if (flags.rounds > 1) c.round = round;
      run.cases.push(c);
      const which = flags.rounds > 1 ? ` (round ${round + 1} of ${flags.rounds})` : '';
      log(`${n} ${m} on ${rt.name}${which}: ${c.error ? `failed: ${c.error}` : `${c.storm.probes.http.length} requests, ${c.storm.cri.length} CRI calls`}`);
    }
    for (const rt of runtimes) run.alone[rt.name] = rt.alone;

    const loadAfter = os.loadavg();
    const { header, rows } = tableRows(run);
    console.log('');
    const pooling = flags.rounds > 1 ? `; each case's ${flags.rounds} rounds pooled, kernel counts their median` : '';
    console.log(`victim percentiles beside each neighbour as a ratio to the victim alone (its ${flags.seconds} s windows before each case, pooled)${pooling}; kernel counts of the neighbour's pod`);
    printTable(header, rows);
    const plots = writePlots(run, flags.out);
    const result = { ...resultObject(run, plots), loadavg: { before: loadBefore.map((l) => Number(l.toFixed(2))), after: loadAfter.map((l) => Number(l.toFixed(2))) } };
    fs.writeFileSync(path.join(flags.out, 'isolation.json'), `${JSON.stringify(result, null, 2)}\n`);
    log(`plots and isolation.json in ${flags.out}`);
    console.log(JSON.stringify(result));
  } finally {
    await cleanups.run(log);
  }
}

export const isolationSuite: Suite = {
  name: 'isolation',
  description: 'a victim pod beside a noisy neighbour (cpu, mem, fork, disk, net, cache), with kubelet\'s Burstable limits and with none: skiff vs containerd',
  run: runIsolationBench,
  flags: {
    '--seconds': `length of each window (default ${DEFAULT_SECONDS})`,
    '--neighbours': `some of ${NEIGHBOURS.join(',')} (default: all)`,
    '--out': 'where the JSON and the PNG plots go (default bench-results/isolation-<time>)',
  },
};
