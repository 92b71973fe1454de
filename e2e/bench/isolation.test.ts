// The isolation benchmark's reckoning: the probes' output parsed, windows cut, ratios to
// the victim alone (null, never zero, where a runtime was not measured), the JSON line, the
// pod cgroup files kubelet would write and the kernel counters read back, and the plots.
import * as assert from 'assert';
import { PNG } from 'pngjs';
import { burstableOomScoreAdj, parseIsolationFlags } from './isolation';
import { controllerMounts, countersOf, limitFiles, parseKeyed, sharesToWeight } from './isolation_cgroup';
import {
  boxOf, CaseResult, emptyWindow, IsolationRun, latencyChart, parseClientLines, parseVictimSamples, ratio, ratioChart, resultObject, SERIES, tableRows, within,
} from './isolation_results';
import { Canvas, groupedChart, logTicks, textWidth } from './png_plot';

const range = (n: number, f: (i: number) => number) => Array.from({ length: n }, (_, i) => f(i));

function window(http: number[], cri: number[] = [1, 2, 3]) {
  const w = emptyWindow();
  w.probes.http = http;
  w.probes.sched = http.map((v) => v / 10);
  w.probes.work = http.map((v) => v * 2);
  w.cri = cri;
  return w;
}

function aCase(subject: 'skiff' | 'containerd', mode: 'limited' | 'unlimited', http: number[], over: Partial<CaseResult> = {}): CaseResult {
  return { subject, neighbour: 'cpu', mode, storm: window(http, [5, 50]), kernel: { oomKills: 0, throttledPeriods: 7, throttledMs: 12.5, pidsRefused: 0, pidsAtEnd: 3 }, ...over };
}

/** A run of the cpu neighbour on skiff alone: containerd was not measured. */
function skiffOnlyRun(): IsolationRun {
  return {
    seconds: 3,
    neighbours: ['cpu'],
    subjects: ['skiff'],
    alone: { skiff: window(range(100, (i) => 1 + i / 100)) },
    cases: [aCase('skiff', 'limited', range(100, (i) => 2 + i / 50)), aCase('skiff', 'unlimited', [], { error: 'the neighbour exited (code 1)' })],
    peers: { containerd_runc: null },
  };
}

describe('bench isolation: samples', () => {
  it('reads the victim\'s samples by probe, in ms, and skips what is not a sample', () => {
    const s = parseVictimSamples('s 1000 2500000\nw 2000 40000000\nx 1 2\ns 3000\n\ns 4000 0\n');
    assert.deepStrictEqual(s, { sched: [{ t: 1000, ms: 2.5 }, { t: 4000, ms: 0 }], work: [{ t: 2000, ms: 40 }] });
  });

  it('reads the host sampler\'s lines and cuts a window by time, both ends included', () => {
    const s = parseClientLines('10 1000000\n20 2000000\n30 3000000\nisoload: noise\n');
    assert.deepStrictEqual(s.map((x) => x.ms), [1, 2, 3]);
    assert.deepStrictEqual(within(s, 20, 30), [2, 3]);
    assert.deepStrictEqual(within(s, 31, 40), []);
  });

  it('gives a percentile as a ratio to the victim alone, and null (not zero) without samples', () => {
    const alone = range(100, (i) => i + 1); // p50 50, p99 99
    const during = range(100, (i) => 2 * (i + 1));
    assert.strictEqual(ratio(during, alone, 99), 2);
    assert.strictEqual(ratio(during, alone, 50), 2);
    assert.strictEqual(ratio([], alone, 99), null);
    assert.strictEqual(ratio(during, [], 99), null);
    assert.strictEqual(ratio(during, [0, 0], 99), null);
  });

  it('boxes samples at p1, p25, p50, p75 and p99', () => {
    assert.deepStrictEqual(boxOf(range(100, (i) => i + 1)), { low: 1, q1: 25, median: 50, q3: 75, high: 99 });
    assert.strictEqual(boxOf([]), null);
  });
});

describe('bench isolation: result line and table', () => {
  it('puts every case of every neighbour in the JSON line, null for a peer not measured and a failed case', () => {
    const r = resultObject(skiffOnlyRun(), ['/out/a.png']);
    assert.strictEqual(r.suite, 'isolation');
    const p99 = r.victim_p99_ratio as Record<string, Record<string, number | null>>;
    assert.deepStrictEqual(Object.keys(p99.cpu), ['skiff_limited', 'skiff_unlimited', 'containerd_limited', 'containerd_unlimited']);
    // nearest rank: alone p99 = 1.98 (the 99th of 1.00..1.99), during p99 = 3.96
    assert.strictEqual(p99.cpu.skiff_limited, Math.round((3.96 / 1.98) * 1000) / 1000);
    assert.strictEqual(p99.cpu.skiff_unlimited, null);
    assert.strictEqual(p99.cpu.containerd_limited, null);
    assert.strictEqual(p99.cpu.containerd_unlimited, null);
    const cri = r.cri_p99_ms_during as Record<string, Record<string, number | null>>;
    assert.deepStrictEqual(cri.cpu, { skiff_limited: 50, skiff_unlimited: null, containerd_limited: null, containerd_unlimited: null });
    assert.deepStrictEqual(cri.alone, { skiff: 3, containerd: null });
    const kernel = r.kernel as Record<string, Record<string, unknown>>;
    assert.deepStrictEqual(kernel.cpu.skiff_limited, { oom_kills: 0, throttled_periods: 7, throttled_ms: 12.5, pids_refused: 0, pids_at_end: 3 });
    assert.deepStrictEqual((r.samples as Record<string, Record<string, unknown>>).cpu.skiff_limited, { http: 100, sched: 100, work: 100, cri: 2 });
    assert.deepStrictEqual(((r.victim_alone_ms as Record<string, Record<string, unknown>>).skiff.http), { p50: 1.49, p99: 1.98, n: 100 });
    assert.deepStrictEqual(r.failed, [{ case: 'cpu/skiff_unlimited', error: 'the neighbour exited (code 1)' }]);
    assert.deepStrictEqual((r.victim_alone_ms as Record<string, unknown>).containerd, null);
    // One line of JSON that reads back the same.
    const line = JSON.stringify(r);
    assert.ok(!line.includes('\n'));
    assert.deepStrictEqual(JSON.parse(line), r);
  });

  it('tabulates the victim alone in ms and each case as ratios, naming failures and peers not measured', () => {
    const { header, rows } = tableRows(skiffOnlyRun());
    assert.strictEqual(header.length, 12);
    assert.deepStrictEqual(rows[0].slice(0, 5), ['alone', 'skiff', '-', '1.49ms', '1.98ms']);
    assert.deepStrictEqual(rows[1].slice(0, 5), ['cpu', 'skiff', 'limited', '2.00x', '2.00x']);
    assert.deepStrictEqual(rows[1].slice(8), ['0', '7 (13 ms)', '0', '3']);
    assert.deepStrictEqual(rows[2].slice(0, 4), ['cpu', 'containerd', 'limited', 'not measured']);
    assert.deepStrictEqual(rows[3].slice(0, 4), ['cpu', 'skiff', 'unlimited', 'failed: the neighbour exited (code 1)']);
    assert.strictEqual(rows.length, 5);
  });
});

describe('bench isolation: rounds', () => {
  /** Three rounds of the cpu neighbour on skiff: the middle one failed, the others differ. */
  function threeRounds(): IsolationRun {
    const k = (pidsAtEnd: number) => ({ oomKills: 0, throttledPeriods: pidsAtEnd, throttledMs: 1, pidsRefused: 0, pidsAtEnd });
    return {
      ...skiffOnlyRun(),
      rounds: 3,
      cases: [
        aCase('skiff', 'limited', range(100, () => 2), { round: 0, kernel: k(10) }),
        aCase('skiff', 'limited', [], { round: 1, error: 'the neighbour exited (code 1)' }),
        aCase('skiff', 'limited', range(100, () => 8), { round: 2, kernel: k(30) }),
      ],
    };
  }

  it('pools the rounds that ran, takes the kernel counts\' median, and keeps each round\'s figure', () => {
    const r = resultObject(threeRounds(), []);
    assert.strictEqual(r.rounds, 3);
    // pooled: 100 samples of 2 and 100 of 8, p99 8; alone p99 1.98
    assert.strictEqual((r.victim_p99_ratio as Record<string, Record<string, number | null>>).cpu.skiff_limited, Math.round((8 / 1.98) * 1000) / 1000);
    const byRound = (r.victim_p99_ratio_by_round as Record<string, Record<string, unknown>>).cpu;
    assert.deepStrictEqual(byRound.skiff_limited, [Math.round((2 / 1.98) * 1000) / 1000, null, Math.round((8 / 1.98) * 1000) / 1000]);
    assert.strictEqual(byRound.containerd_limited, null);
    assert.deepStrictEqual((r.kernel as Record<string, Record<string, unknown>>).cpu.skiff_limited, { oom_kills: 0, throttled_periods: 20, throttled_ms: 1, pids_refused: 0, pids_at_end: 20 });
    assert.deepStrictEqual((r.samples as Record<string, Record<string, unknown>>).cpu.skiff_limited, { http: 200, sched: 200, work: 200, cri: 4 });
    assert.deepStrictEqual(r.failed, [{ case: 'cpu/skiff_limited', round: 2, error: 'the neighbour exited (code 1)' }]);
  });

  it('shows each round\'s http p99 in the table, "failed" for a round that did not run', () => {
    const { header, rows } = tableRows(threeRounds());
    assert.strictEqual(header[5], 'http p99 by round');
    assert.strictEqual(rows[0].length, header.length);
    const cpu = rows.find((row) => row[0] === 'cpu' && row[1] === 'skiff' && row[2] === 'limited')!;
    assert.strictEqual(cpu[5], '1.0 failed 4.0');
    assert.strictEqual(cpu.length, header.length);
    // One round alone keeps the table as it was: no by-round column.
    assert.ok(!tableRows(skiffOnlyRun()).header.includes('http p99 by round'));
  });
});

describe('bench isolation: kubelet\'s figures and flags', () => {
  it('gives a Burstable container kubelet\'s oom_score_adj', () => {
    const gib = 1024 ** 3;
    assert.strictEqual(burstableOomScoreAdj(gib / 4, 24 * gib), 990);
    assert.strictEqual(burstableOomScoreAdj(24 * gib, 24 * gib), 3); // all the node's memory: not below a Guaranteed pod's
    assert.strictEqual(burstableOomScoreAdj(1, 24 * gib), 999); // never a BestEffort pod's 1000
  });

  it('takes --seconds, --neighbours (in the suite\'s order) and --out, and names a bad one', () => {
    const now = new Date('2026-12-07T12:30:05Z');
    const f = parseIsolationFlags(new Map([['--seconds', '3'], ['--neighbours', 'fork,cpu'], ['--out', '/tmp/x']]), now);
    assert.deepStrictEqual(f, { seconds: 3, rounds: 1, neighbours: ['cpu', 'fork'], out: '/tmp/x' });
    assert.strictEqual((parseIsolationFlags(new Map(), now, 4) as { rounds: number }).rounds, 4);
    assert.match(String(parseIsolationFlags(new Map(), now, 21)), /^--runs: the isolation suite runs every case at most 20 times, got 21/);
    const d = parseIsolationFlags(new Map(), now);
    assert.ok(typeof d !== 'string' && d.seconds === 5 && d.neighbours.length === 6 && d.out.endsWith('bench-results/isolation-20261207-123005'), JSON.stringify(d));
    assert.match(String(parseIsolationFlags(new Map([['--seconds', '0']]))), /^--seconds: expected an integer from 1 to 120/);
    assert.match(String(parseIsolationFlags(new Map([['--seconds', '2.5']]))), /^--seconds/);
    assert.match(String(parseIsolationFlags(new Map([['--neighbours', 'cpu,gpu']]))), /^--neighbours: expected some of cpu,mem,fork,disk,net,cache, got "cpu,gpu"/);
  });
});

describe('bench isolation: pod cgroups', () => {
  const HYBRID = [
    '25 24 0:23 / /sys/fs/cgroup/cpu rw,relatime shared:9 - cgroup cgroup rw,cpu',
    '26 24 0:24 / /sys/fs/cgroup/memory rw,relatime shared:10 - cgroup cgroup rw,memory',
    '27 24 0:25 / /sys/fs/cgroup/pids rw,relatime shared:11 - cgroup cgroup rw,pids',
    '28 24 0:26 / /sys/fs/cgroup/unified rw,relatime shared:12 - cgroup2 cgroup2 rw',
    '',
  ].join('\n');
  const V2 = '30 24 0:27 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n';

  it('finds each controller in its v1 hierarchy, else on cgroup2 where the root offers it', () => {
    assert.deepStrictEqual(controllerMounts(HYBRID, () => ['hugetlb']), {
      cpu: { root: '/sys/fs/cgroup/cpu', v2: false },
      memory: { root: '/sys/fs/cgroup/memory', v2: false },
      pids: { root: '/sys/fs/cgroup/pids', v2: false },
    });
    assert.deepStrictEqual(controllerMounts(V2, () => ['cpuset', 'cpu', 'io', 'memory', 'pids']), {
      cpu: { root: '/sys/fs/cgroup', v2: true },
      memory: { root: '/sys/fs/cgroup', v2: true },
      pids: { root: '/sys/fs/cgroup', v2: true },
    });
    assert.deepStrictEqual(controllerMounts(V2, () => ['cpu']).memory, null);
  });

  it('writes kubelet\'s pod limits in v1 and v2 terms, and leaves unset what is not limited', () => {
    const l = { cpuShares: 256, cpuQuotaUs: 100000, cpuPeriodUs: 100000, memoryBytes: 268435456, pidsMax: 1024 };
    assert.deepStrictEqual(limitFiles('cpu', false, l), [['cpu.shares', '256'], ['cpu.cfs_period_us', '100000'], ['cpu.cfs_quota_us', '100000']]);
    assert.deepStrictEqual(limitFiles('cpu', true, { ...l, cpuQuotaUs: null }), [['cpu.weight', '10'], ['cpu.max', 'max 100000']]);
    assert.deepStrictEqual(limitFiles('memory', false, l), [['memory.limit_in_bytes', '268435456']]);
    assert.deepStrictEqual(limitFiles('memory', true, { ...l, memoryBytes: null }), []);
    assert.deepStrictEqual(limitFiles('pids', true, l), [['pids.max', '1024']]);
    assert.strictEqual(sharesToWeight(2), 1);
    assert.strictEqual(sharesToWeight(1024), 39);
    assert.strictEqual(sharesToWeight(262144), 10000);
  });

  it('reads OOM kills, throttling and refused forks from v1 and v2 files', () => {
    const v1: Record<string, string> = {
      'memory.oom_control': 'oom_kill_disable 0\nunder_oom 0\noom_kill 4\n',
      'cpu.stat': 'nr_periods 30\nnr_throttled 28\nthrottled_time 2500000000\nnr_bursts 0\n',
      'pids.events': 'max 731\n',
    };
    const v2: Record<string, string> = {
      'memory.events': 'low 0\nhigh 0\nmax 90\noom 5\noom_kill 5\noom_group_kill 0\n',
      'cpu.stat': 'usage_usec 1\nnr_periods 30\nnr_throttled 29\nthrottled_usec 2900000\n',
      'pids.events': 'max 12\n',
      'pids.current': '1024\n',
    };
    const read = (files: Record<string, string>) => (f: string) => files[f] ?? null;
    assert.deepStrictEqual(countersOf(read(v1), 'memory', false), { oomKills: 4 });
    assert.deepStrictEqual(countersOf(read(v1), 'cpu', false), { throttledPeriods: 28, throttledMs: 2500 });
    assert.deepStrictEqual(countersOf(read(v1), 'pids', false), { pidsRefused: 731, pidsAtEnd: 0 });
    assert.deepStrictEqual(countersOf(read(v2), 'memory', true), { oomKills: 5 });
    assert.deepStrictEqual(countersOf(read(v2), 'cpu', true), { throttledPeriods: 29, throttledMs: 2900 });
    assert.deepStrictEqual(countersOf(read(v2), 'pids', true), { pidsRefused: 12, pidsAtEnd: 1024 });
    assert.deepStrictEqual(countersOf(read({}), 'pids', true), { pidsRefused: 0, pidsAtEnd: 0 });
    assert.deepStrictEqual([...parseKeyed('a 1\nb x\n c  2 \n')], [['a', 1], ['c', 2]]);
  });
});

describe('bench isolation: plots', () => {
  it('draws text from the bitmap font, lower case as upper case', () => {
    const a = new Canvas(40, 20);
    const b = new Canvas(40, 20);
    assert.strictEqual(a.text(0, 0, 'ok', [0, 0, 0], 1), textWidth('ok', 1));
    b.text(0, 0, 'OK', [0, 0, 0], 1);
    assert.ok(a.png.data.equals(b.png.data));
    assert.ok(a.png.data.includes(0), 'some pixel was drawn');
  });

  it('puts ticks at 1, 2 and 5 times the powers of ten', () => {
    assert.deepStrictEqual(logTicks(0.1, 100), [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100]);
  });

  it('writes a PNG with a bar in its series\' colour per case measured, none for a failed case or a peer not measured', () => {
    const png = PNG.sync.read(groupedChart(ratioChart(skiffOnlyRun(), 'http', 'HTTP P99')));
    assert.strictEqual(png.height, 520);
    assert.ok(colourSeen(png, SERIES[0].color), 'the skiff limited bar');
    for (const s of SERIES.slice(1)) assert.ok(!colourSeen(png, s.color), `no ${s.name} bar`);
  });

  it('draws the latency boxes of the victim alone and of each case measured', () => {
    const png = PNG.sync.read(groupedChart(latencyChart(skiffOnlyRun(), 'work', 'WORK')));
    assert.ok(colourSeen(png, SERIES[0].color), 'the skiff boxes');
    for (const s of SERIES.slice(1)) assert.ok(!colourSeen(png, s.color), `no ${s.name} box`);
  });
});

function colourSeen(png: PNG, c: [number, number, number]): boolean {
  // The legend shows every series: look above it only.
  for (let y = 0; y < png.height - 40; y++) for (let x = 0; x < png.width; x++) {
    const i = (y * png.width + x) * 4;
    if (png.data[i] === c[0] && png.data[i + 1] === c[1] && png.data[i + 2] === c[2]) return true;
  }
  return false;
}
