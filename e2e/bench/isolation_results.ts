// The isolation benchmark's figures from its samples: each probe's latencies in a window,
// their percentiles as ratios to the victim alone, the table, the JSON result line and
// the plots' data. Pure: the suite (isolation.ts) measures, this file reckons.
import type { Box, ChartSpec, Group, Rgb } from './png_plot';
import type { KernelCounters } from './isolation_cgroup';
import { fmt, median, percentile, round } from './stats';

export const NEIGHBOURS = ['cpu', 'mem', 'fork', 'disk', 'net', 'cache'] as const;
export type Neighbour = (typeof NEIGHBOURS)[number];
export const MODES = ['limited', 'unlimited'] as const;
export type Mode = (typeof MODES)[number];
export const SUBJECTS = ['skiff', 'containerd'] as const;
export type SubjectName = (typeof SUBJECTS)[number];
/** The victim's probes: HTTP request latency from the host, a 1 ms wake-up's lateness, one
 * round of its allocation and file work. */
export const PROBES = ['http', 'sched', 'work'] as const;
export type Probe = (typeof PROBES)[number];

/** A sample: when it was taken (CLOCK_MONOTONIC ns) and what it measured (ms). */
export interface Sample {
  t: number;
  ms: number;
}

/** What one window measured: the victim's probes and the runtime's CRI calls (ms). */
export interface WindowSamples {
  probes: Record<Probe, number[]>;
  cri: number[];
}

/** One neighbour case on one runtime: its storm window and what the kernel counted. */
export interface CaseResult {
  subject: SubjectName;
  neighbour: Neighbour;
  mode: Mode;
  storm: WindowSamples;
  kernel: KernelCounters | null;
  /** Why the case has no figures (it failed); its samples are then empty. */
  error?: string;
  /** Which round of the run (0 first); absent in a run of one round. */
  round?: number;
}

/** Everything the run measured: per runtime the victim alone (windows pooled), and the cases. */
export interface IsolationRun {
  seconds: number;
  /** How many times every case ran (interleaved: round 2 starts after round 1 ends). */
  rounds?: number;
  neighbours: Neighbour[];
  /** The runtimes measured; one absent from here is "not measured" (null). */
  subjects: SubjectName[];
  alone: Partial<Record<SubjectName, WindowSamples>>;
  cases: CaseResult[];
  peers: Record<string, string | null>;
}

export const emptyWindow = (): WindowSamples => ({ probes: { http: [], sched: [], work: [] }, cri: [] });

/** The victim's GET /samples answer: "<kind> <t ns> <value ns>" lines; kind s is the sleep
 * probe, w the work probe. */
export function parseVictimSamples(text: string): { sched: Sample[]; work: Sample[] } {
  const out = { sched: [] as Sample[], work: [] as Sample[] };
  for (const line of text.split('\n')) {
    const m = /^([sw]) (\d+) (\d+)$/.exec(line);
    if (!m) continue;
    (m[1] === 's' ? out.sched : out.work).push({ t: Number(m[2]), ms: Number(m[3]) / 1e6 });
  }
  return out;
}

/** The host sampler's output: "<due ns> <latency ns>" lines. */
export function parseClientLines(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = /^(\d+) (\d+)$/.exec(line);
    if (m) out.push({ t: Number(m[1]), ms: Number(m[2]) / 1e6 });
  }
  return out;
}

/** The values of the samples taken in [from, to]. */
export function within(samples: readonly Sample[], from: number, to: number): number[] {
  return samples.filter((s) => s.t >= from && s.t <= to).map((s) => s.ms);
}

/** A percentile of a case's samples over the same percentile of the victim alone; null
 * when either has no samples (not measured), never zero. */
export function ratio(during: readonly number[], alone: readonly number[], p: number): number | null {
  if (!during.length || !alone.length) return null;
  const base = percentile(alone, p);
  if (!(base > 0)) return null;
  return percentile(during, p) / base;
}

export const caseKey = (s: SubjectName, m: Mode) => `${s}_${m}`;

const roundsOf = (run: IsolationRun) => run.rounds ?? 1;

/** The rounds of one case, in order (failed ones included). */
function roundsOfCase(run: IsolationRun, n: Neighbour, s: SubjectName, m: Mode): CaseResult[] {
  return run.cases.filter((c) => c.neighbour === n && c.subject === s && c.mode === m);
}

/** One case over all its rounds: the storm windows of the rounds that ran, pooled, and each
 * kernel count's median over them (a count is per window); undefined when no round ran. */
export function pooledCase(run: IsolationRun, n: Neighbour, s: SubjectName, m: Mode): CaseResult | undefined {
  const ran = roundsOfCase(run, n, s, m).filter((c) => !c.error);
  if (ran.length <= 1) return ran[0];
  const storm = emptyWindow();
  for (const c of ran) {
    for (const p of PROBES) storm.probes[p].push(...c.storm.probes[p]);
    storm.cri.push(...c.storm.cri);
  }
  const ks = ran.map((c) => c.kernel).filter((k): k is KernelCounters => k !== null);
  const med = (f: (k: KernelCounters) => number) => median(ks.map(f));
  const kernel = ks.length
    ? { oomKills: med((k) => k.oomKills), throttledPeriods: med((k) => k.throttledPeriods), throttledMs: med((k) => k.throttledMs), pidsRefused: med((k) => k.pidsRefused), pidsAtEnd: med((k) => k.pidsAtEnd) }
    : null;
  return { subject: s, neighbour: n, mode: m, storm, kernel };
}

/** The p99 ratio of one probe in each round of a case, null for a round that failed. */
function ratiosByRound(run: IsolationRun, n: Neighbour, s: SubjectName, m: Mode, probe: Probe): (number | null)[] {
  const alone = run.alone[s];
  return roundsOfCase(run, n, s, m).map((c) => (c.error || !alone ? null : ratio(c.storm.probes[probe], alone.probes[probe], 99)));
}

/** { "<neighbour>": { "skiff_limited": x, ... } } of f over each case; null where not measured. */
function perCase<T>(run: IsolationRun, f: (c: CaseResult, alone: WindowSamples) => T | null): Record<string, Record<string, T | null>> {
  const out: Record<string, Record<string, T | null>> = {};
  for (const n of run.neighbours) {
    out[n] = {};
    for (const s of SUBJECTS) for (const m of MODES) {
      const c = pooledCase(run, n, s, m);
      const alone = run.alone[s];
      out[n][caseKey(s, m)] = c && alone && run.subjects.includes(s) ? f(c, alone) : null;
    }
  }
  return out;
}

/** The JSON result line's object. */
export function resultObject(run: IsolationRun, plots: string[]): Record<string, unknown> {
  const probeRatio = (probe: Probe, p: number) => perCase(run, (c, a) => round(ratio(c.storm.probes[probe], a.probes[probe], p)));
  const criDuring: Record<string, Record<string, number | null>> = perCase(run, (c) => (c.storm.cri.length ? round(percentile(c.storm.cri, 99)) : null));
  criDuring.alone = Object.fromEntries(SUBJECTS.map((s) => [s, run.alone[s]?.cri.length ? round(percentile(run.alone[s]!.cri, 99)) : null]));
  return {
    suite: 'isolation',
    peers: run.peers,
    seconds: run.seconds,
    rounds: roundsOf(run),
    victim_p99_ratio: probeRatio('http', 99),
    victim_p50_ratio: probeRatio('http', 50),
    sched_p99_ratio: probeRatio('sched', 99),
    work_p99_ratio: probeRatio('work', 99),
    cri_p99_ms_during: criDuring,
    victim_alone_ms: Object.fromEntries(
      SUBJECTS.map((s) => {
        const a = run.alone[s];
        return [s, a ? Object.fromEntries(PROBES.map((p) => [p, { p50: round(percentile(a.probes[p], 50)), p99: round(percentile(a.probes[p], 99)), n: a.probes[p].length }])) : null];
      }),
    ),
    kernel: perCase(run, (c) =>
      c.kernel ? { oom_kills: c.kernel.oomKills, throttled_periods: c.kernel.throttledPeriods, throttled_ms: round(c.kernel.throttledMs), pids_refused: c.kernel.pidsRefused, pids_at_end: c.kernel.pidsAtEnd } : null,
    ),
    // A starved probe takes fewer samples: the counts say how much each figure rests on.
    samples: perCase(run, (c) => ({ http: c.storm.probes.http.length, sched: c.storm.probes.sched.length, work: c.storm.probes.work.length, cri: c.storm.cri.length })),
    // With rounds, how far each round's figure strays from the pooled one.
    ...(roundsOf(run) > 1 ? { victim_p99_ratio_by_round: perCase(run, (c) => ratiosByRound(run, c.neighbour, c.subject, c.mode, 'http').map((r) => round(r))) } : {}),
    failed: run.cases.filter((c) => c.error).map((c) => ({ case: `${c.neighbour}/${caseKey(c.subject, c.mode)}`, ...(c.round !== undefined && roundsOf(run) > 1 ? { round: c.round + 1 } : {}), error: c.error })),
    plots,
  };
}

/** The table: a row per case and the victim alone, ratios to the victim alone. */
export function tableRows(run: IsolationRun): { header: string[]; rows: string[][] } {
  const byRound = roundsOf(run) > 1;
  const header = ['neighbour', 'runtime', 'limits', 'http p50', 'http p99', ...(byRound ? ['http p99 by round'] : []), 'sched p99', 'work p99', 'cri p99 ms', 'oom kills', 'throttled', 'pids refused', 'pids at end'];
  const blank = header.map(() => '');
  const rows: string[][] = [];
  for (const s of run.subjects) {
    const a = run.alone[s];
    if (!a) continue;
    const ms = (p: Probe, q: number) => `${fmt(percentile(a.probes[p], q), 2)}ms`;
    rows.push(['alone', s, '-', ms('http', 50), ms('http', 99), ...(byRound ? [''] : []), ms('sched', 99), ms('work', 99), fmt(percentile(a.cri, 99)), '', '', '', '']);
  }
  const x = (v: number | null) => (v === null ? 'n/m' : `${fmt(v)}x`);
  for (const n of run.neighbours) for (const m of MODES) for (const s of SUBJECTS) {
    if (!run.subjects.includes(s)) {
      rows.push([n, s, m, 'not measured', ...blank.slice(4)]);
      continue;
    }
    const all = roundsOfCase(run, n, s, m);
    const c = pooledCase(run, n, s, m);
    const a = run.alone[s];
    if (!all.length || !a) continue;
    if (!c) {
      rows.push([n, s, m, `failed: ${all[0].error!.slice(0, 60)}`, ...blank.slice(4)]);
      continue;
    }
    const r = (p: Probe, q: number) => x(ratio(c.storm.probes[p], a.probes[p], q));
    const k = c.kernel;
    rows.push([
      n, s, m, r('http', 50), r('http', 99), ...(byRound ? [ratiosByRound(run, n, s, m, 'http').map((v) => (v === null ? 'failed' : fmt(v, 1))).join(' ')] : []), r('sched', 99), r('work', 99),
      c.storm.cri.length ? fmt(percentile(c.storm.cri, 99)) : '-',
      k ? String(k.oomKills) : '-',
      k ? `${k.throttledPeriods} (${fmt(k.throttledMs, 0)} ms)` : '-',
      k ? String(k.pidsRefused) : '-',
      k ? String(k.pidsAtEnd) : '-',
    ]);
  }
  return { header, rows };
}

/** Colours of the four series: skiff blue, containerd orange; limited dark, unlimited light. */
export const SERIES: { name: string; color: Rgb }[] = [
  { name: 'skiff limited', color: [31, 90, 160] },
  { name: 'skiff unlimited', color: [120, 170, 225] },
  { name: 'containerd limited', color: [200, 100, 20] },
  { name: 'containerd unlimited', color: [245, 180, 110] },
];
const seriesName = (s: SubjectName, m: Mode) => `${s} ${m}`;

/** The bar chart of one probe's p99 as a ratio to the victim alone, a group per neighbour. */
export function ratioChart(run: IsolationRun, probe: Probe, title: string): ChartSpec {
  const groups: Group[] = run.neighbours.map((n) => ({
    label: n,
    items: SUBJECTS.flatMap((s) => MODES.map((m) => {
      const c = pooledCase(run, n, s, m);
      const a = run.alone[s];
      return { series: seriesName(s, m), value: c && a ? ratio(c.storm.probes[probe], a.probes[probe], 99) : null };
    })),
  }));
  return { title, yLabel: 'x alone', series: SERIES, groups, reference: 1 };
}

/** Whiskers at p1 and p99, the box from p25 to p75; null without samples. */
export function boxOf(samples: readonly number[]): Box | null {
  if (!samples.length) return null;
  return { low: percentile(samples, 1), q1: percentile(samples, 25), median: percentile(samples, 50), q3: percentile(samples, 75), high: percentile(samples, 99) };
}

/** The box plot of one probe's latencies (ms): the victim alone, then a group per neighbour. */
export function latencyChart(run: IsolationRun, probe: Probe, title: string): ChartSpec {
  const alone: Group = { label: 'alone', items: SUBJECTS.map((s) => ({ series: seriesName(s, 'limited'), value: boxOf(run.alone[s]?.probes[probe] ?? []) })) };
  const groups: Group[] = run.neighbours.map((n) => ({
    label: n,
    items: SUBJECTS.flatMap((s) => MODES.map((m) => ({ series: seriesName(s, m), value: boxOf(pooledCase(run, n, s, m)?.storm.probes[probe] ?? []) }))),
  }));
  return { title, yLabel: 'ms', series: SERIES, groups: [alone, ...groups] };
}
