// The `stats` suite: ListContainerStats and ListPodSandboxStats with 100 running
// containers (10 pods of 10), skiff against containerd+runc (the run's peers) through the same
// CRI client, and the latency of a scrape of skiffd's /metrics. Then, with 100 more pods
// (no containers), ListPodSandbox over 110 pods and ListContainers over 100 containers.
import * as fs from 'fs';
import { TestRegistry } from '../fixtures/registry';
import { removeCgroupTree } from '../fixtures/cleanup';
import type { BenchOptions, Suite } from './index';
import { pushBenchImages, startContainerdPeers, startSkiff, Subject } from './lifecycle';
import { PeerReport } from './peers';
import { fmt, printTable, round, summarize, timeMs } from './stats';
import { Cleanups, errText } from './util';

const DEFAULT_RUNS = 30;
const PODS = 10;
const CONTAINERS_PER_POD = 10;
/** Pods without containers added for the listing calls. */
const EMPTY_PODS = 100;
const log = (s: string) => console.log(s);
/** Pods get a cgroup_parent, as kubelet gives them: containerd's pod stats need one. */
const CGROUP_ROOT = '/skiff-bench-stats';

async function fill(s: Subject): Promise<void> {
  await s.client.image('PullImage', { image: { image: 'docker.io/bench/busybox:1' } });
  await Promise.all(
    Array.from({ length: PODS }, async (_, p) => {
      const config = {
        metadata: { name: `stats${p}`, namespace: 'bench', uid: `stats-${p}`, attempt: 0 },
        hostname: `s${p}`,
        linux: { cgroup_parent: `${CGROUP_ROOT}/${s.name}/pod${p}` },
      };
      const { pod_sandbox_id } = await s.client.runtime('RunPodSandbox', { config });
      for (let c = 0; c < CONTAINERS_PER_POD; c++) {
        const { container_id } = await s.client.runtime('CreateContainer', {
          pod_sandbox_id,
          config: { metadata: { name: `c${c}`, attempt: 0 }, image: { image: 'docker.io/bench/busybox:1' }, command: ['sleep', '100000'] },
          sandbox_config: config,
        });
        await s.client.runtime('StartContainer', { container_id });
      }
    }),
  );
}

/** EMPTY_PODS more pods, ten at a time. */
async function addEmptyPods(s: Subject): Promise<void> {
  for (let b = 0; b < EMPTY_PODS; b += 10)
    await Promise.all(
      Array.from({ length: Math.min(10, EMPTY_PODS - b) }, (_, i) =>
        s.client.runtime('RunPodSandbox', {
          config: { metadata: { name: `list${b + i}`, namespace: 'bench', uid: `list-${b + i}`, attempt: 0 }, hostname: `l${b + i}`, linux: { cgroup_parent: `${CGROUP_ROOT}/${s.name}/list${b + i}` } },
        }),
      ),
    );
}

/** Time each call `runs` times on each subject, interleaved; a failing call is reported
 * once (warm-up) and not timed. */
async function timeCalls(subjects: Subject[], calls: Record<string, (s: Subject) => Promise<unknown>>, runs: number, signal: AbortSignal, between?: () => Promise<void>) {
  const samples: Record<string, Record<string, number[]>> = {};
  const failed: Record<string, string> = {};
  for (const s of subjects) for (const [key, call] of Object.entries(calls)) await call(s).catch((e) => (failed[`${key}/${s.name}`] = errText(e)));
  for (let i = 0; i < runs && !signal.aborted; i++) {
    for (const [key, call] of Object.entries(calls))
      for (const s of subjects) {
        if (failed[`${key}/${s.name}`]) continue;
        ((samples[key] ??= {})[s.name] ??= []).push(await timeMs(() => call(s)));
      }
    await between?.();
  }
  return { samples, failed };
}

async function runStatsBench(opts: BenchOptions): Promise<void> {
  const runs = opts.runs ?? DEFAULT_RUNS;
  const work = fs.mkdtempSync('/tmp/skb-stats-');
  const cleanups = new Cleanups();
  cleanups.add('remove the work dir', () => fs.rmSync(work, { recursive: true, force: true }));
  cleanups.add('remove the pod cgroups', () => removeCgroupTree(CGROUP_ROOT));
  try {
    const reg = await TestRegistry.start();
    cleanups.add('stop the registry', () => reg.stop());
    await pushBenchImages(reg, work);
    const skiff = await startSkiff(reg.host, cleanups);
    const subjects: Subject[] = [skiff];
    const peers = new PeerReport();
    subjects.push(...(await startContainerdPeers(opts.peers, [['containerd_runc', opts.peers.runc]], work, reg.host, cleanups, peers)));
    if (opts.peers.crio.found) peers.notMeasured('crio', 'this suite drives containerd only; the lifecycle suite drives CRI-O');
    for (const line of peers.lines()) log(line);
    for (const s of subjects) {
      log(`${s.name}: starting ${PODS * CONTAINERS_PER_POD} containers in ${PODS} pods`);
      await fill(s);
    }
    const status = await skiff.client.runtime('Status', { verbose: true });
    const metricsUrl = `http://${(JSON.parse(status.info.config) as { metricsAddress: string }).metricsAddress}/metrics`;
    const scrape = async () => {
      const res = await fetch(metricsUrl);
      if (res.status !== 200) throw new Error(`GET ${metricsUrl}: HTTP ${res.status}`);
      await res.text();
    };

    const calls: Record<string, (s: Subject) => Promise<unknown>> = {
      list_container_stats_ms: async (s) => {
        const r = await s.client.runtime('ListContainerStats', {});
        if (r.stats.length < PODS * CONTAINERS_PER_POD) throw new Error(`${s.name}: ListContainerStats gave ${r.stats.length} containers`);
      },
      list_pod_stats_ms: async (s) => {
        const r = await s.client.runtime('ListPodSandboxStats', {});
        if (r.stats.length < PODS) throw new Error(`${s.name}: ListPodSandboxStats gave ${r.stats.length} pods`);
      },
    };
    // The first stats call walks every writable layer (then cached) and fills caches.
    await scrape();
    const scrapes: number[] = [];
    const stats = await timeCalls(subjects, calls, runs, opts.signal, async () => void scrapes.push(await timeMs(scrape)));

    for (const s of subjects) {
      log(`${s.name}: adding ${EMPTY_PODS} pods without containers`);
      await addEmptyPods(s);
    }
    const listCalls: Record<string, (s: Subject) => Promise<unknown>> = {
      list_pods_ms: async (s) => {
        const r = await s.client.runtime('ListPodSandbox', {});
        if (r.items.length < PODS + EMPTY_PODS) throw new Error(`${s.name}: ListPodSandbox gave ${r.items.length} pods`);
      },
      list_containers_ms: async (s) => {
        const r = await s.client.runtime('ListContainers', {});
        if (r.containers.length < PODS * CONTAINERS_PER_POD) throw new Error(`${s.name}: ListContainers gave ${r.containers.length} containers`);
      },
    };
    const lists = await timeCalls(subjects, listCalls, runs, opts.signal);
    const samples = { ...stats.samples, ...lists.samples };
    const failed = { ...stats.failed, ...lists.failed };

    const res: Record<string, Record<string, number | null>> = {};
    const rows: string[][] = [];
    for (const key of [...Object.keys(calls), ...Object.keys(listCalls)])
      for (const s of subjects) {
        const why = failed[`${key}/${s.name}`];
        if (why) {
          log(`${key} ${s.name}: not measured: ${why}`);
          (res[key] ??= {})[s.name === 'skiff' ? 'skiff' : 'containerd'] = null;
          continue;
        }
        const sum = summarize(samples[key]?.[s.name] ?? []);
        (res[key] ??= {})[s.name === 'skiff' ? 'skiff' : 'containerd'] = round(sum.median);
        const base = res[key].skiff;
        rows.push([key, s.name, String(sum.n), fmt(sum.median), fmt(sum.p99), s.name === 'skiff' || base === null || base === undefined ? '' : fmt(base / sum.median)]);
      }
    const sc = summarize(scrapes);
    rows.push(['metrics_scrape_ms', 'skiff', String(sc.n), fmt(sc.median), fmt(sc.p99), '']);
    log('');
    printTable(['metric', 'subject', 'n', 'median ms', 'p99 ms', 'skiff/peer'], rows);
    if (!peers.measured('containerd_runc')) for (const key of Object.keys(res)) res[key].containerd = null;
    console.log(JSON.stringify({ suite: 'stats', peers: peers.json(), ...res, metrics_scrape_ms: round(sc.median) }));
  } finally {
    await cleanups.run(log);
  }
}

export const statsSuite: Suite = {
  name: 'stats',
  description: 'ListContainerStats / ListPodSandboxStats with 100 running containers, /metrics scrape, ListPodSandbox / ListContainers over 110 pods: skiff vs containerd',
  run: runStatsBench,
};
