// The `stats` suite, skiff against containerd+runc (the run's peers) through the same CRI client:
// - the cost of an empty call (Version) against its floor, one HTTP/2 round trip on a
//   unix socket with Node's own http2 (http2_floor.ts);
// - ListContainerStats and ListPodSandboxStats with 100 running containers (10 pods of
//   10), and the latency of a scrape of skiffd's /metrics;
// - then, with 100 more pods (no containers), ListPodSandbox over 110 pods and
//   ListContainers over 100 containers, whole and filtered as kubelet filters them (by a
//   pod's uid label, by state, by pod), and ListImages. `--pods N` makes those N - 10
//   pods of two `sleep` containers each instead (500: 500 pods, 1,080 containers). These
//   pods are in the node's network.
import * as fs from 'fs';
import * as path from 'path';
import { NamespaceMode } from '../../src/cri/gen/cri';
import { TestRegistry } from '../fixtures/registry';
import { removeCgroupTree } from '../fixtures/cleanup';
import { Http2Floor } from './http2_floor';
import type { BenchOptions, Suite } from './index';
import { pushBenchImages, startContainerdPeers, startSkiff, Subject } from './lifecycle';
import { PeerReport } from './peers';
import { fmt, printTable, round, summarize, timeMs } from './stats';
import { Cleanups, errText } from './util';

const DEFAULT_RUNS = 30;
const PODS = 10;
const CONTAINERS_PER_POD = 10;
/** Pods without containers added for the listing calls, unless --pods says otherwise. */
const EMPTY_PODS = 100;
/** Containers in each pod that --pods adds. */
const CONTAINERS_PER_LIST_POD = 2;
/** Empty calls timed one after the other in each run (they take well under a ms). */
const CALLS_PER_RUN = 50;
/** List calls likewise (a few ms at most). */
const LIST_CALLS_PER_RUN = 10;
/** The pod uid label kubelet gives every pod, and filters by. */
const POD_UID = 'io.kubernetes.pod.uid';
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
        labels: { [POD_UID]: `stats-${p}` },
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

/** `count` more pods, ten at a time, each with `containers` sleeping containers. */
async function addListPods(s: Subject, count: number, containers: number): Promise<void> {
  for (let b = 0; b < count; b += 10)
    await Promise.all(
      Array.from({ length: Math.min(10, count - b) }, async (_, i) => {
        const n = b + i;
        const config = {
          metadata: { name: `list${n}`, namespace: 'bench', uid: `list-${n}`, attempt: 0 },
          labels: { [POD_UID]: `list-${n}` },
          // In the node's network (so with no hostname of their own): the benchmark's /24
          // networks hold 253 pods, and lists show no network.
          linux: { cgroup_parent: `${CGROUP_ROOT}/${s.name}/list${n}`, security_context: { namespace_options: { network: NamespaceMode.NODE } } },
        };
        const { pod_sandbox_id } = await s.client.runtime('RunPodSandbox', { config });
        for (let c = 0; c < containers; c++) {
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

/**
 * Version on each subject and the floor's round trip, CALLS_PER_RUN calls in a row each,
 * interleaved run by run. Samples in ms, by subject name and "floor".
 */
async function timeEmptyCalls(subjects: Subject[], floor: Http2Floor, runs: number, signal: AbortSignal): Promise<Record<string, number[]>> {
  const targets: [string, () => Promise<unknown>][] = [['floor', () => floor.call()], ...subjects.map((s): [string, () => Promise<unknown>] => [s.name, () => s.client.runtime('Version', {})])];
  const samples: Record<string, number[]> = {};
  // Warm-up: connections made, code paths compiled (the client's and the daemons').
  for (const [, call] of targets) for (let i = 0; i < 200; i++) await call();
  for (let r = 0; r < runs && !signal.aborted; r++)
    for (const [name, call] of targets) for (let i = 0; i < CALLS_PER_RUN; i++) (samples[name] ??= []).push(await timeMs(call));
  return samples;
}

/** Time each call `runs` times `repeat` times in a row on each subject, interleaved; a
 * failing call is reported once (warm-up) and not timed. */
async function timeCalls(subjects: Subject[], calls: Record<string, (s: Subject) => Promise<unknown>>, runs: number, signal: AbortSignal, between?: () => Promise<void>, repeat = 1) {
  const samples: Record<string, Record<string, number[]>> = {};
  const failed: Record<string, string> = {};
  for (const s of subjects) for (const [key, call] of Object.entries(calls)) await call(s).catch((e) => (failed[`${key}/${s.name}`] = errText(e)));
  for (let i = 0; i < runs && !signal.aborted; i++) {
    for (const [key, call] of Object.entries(calls))
      for (const s of subjects) {
        if (failed[`${key}/${s.name}`]) continue;
        for (let r = 0; r < repeat; r++) ((samples[key] ??= {})[s.name] ??= []).push(await timeMs(() => call(s)));
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
    const floor = await Http2Floor.start(path.join(work, 'floor.sock'));
    cleanups.add('stop the http2 floor server', () => floor.stop());
    log(`empty calls: Version on ${subjects.map((s) => s.name).join(', ')} and the http2 floor, ${CALLS_PER_RUN} calls a run`);
    const empty = await timeEmptyCalls(subjects, floor, runs, opts.signal);
    await floor.stop();

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

    const listPods = (opts.pods ?? PODS + EMPTY_PODS) - PODS;
    const perListPod = opts.pods === undefined ? 0 : CONTAINERS_PER_LIST_POD;
    const totalPods = PODS + listPods;
    const totalContainers = PODS * CONTAINERS_PER_POD + listPods * perListPod;
    for (const s of subjects) {
      log(`${s.name}: adding ${listPods} pods with ${perListPod} containers each (${totalPods} pods, ${totalContainers} containers)`);
      await addListPods(s, listPods, perListPod);
    }
    const expect = (s: Subject, what: string, got: number, want: number) => {
      if (got !== want) throw new Error(`${s.name}: ${what} gave ${got}, expected ${want}`);
    };
    // A pod of the stats part: ten containers.
    const statsPod = new Map<string, string>();
    for (const s of subjects) {
      const r = await s.client.runtime('ListPodSandbox', { filter: { label_selector: { [POD_UID]: 'stats-0' } } });
      statsPod.set(s.name, r.items[0]?.id ?? '');
    }
    const listCalls: Record<string, (s: Subject) => Promise<unknown>> = {
      list_pods_ms: async (s) => expect(s, 'ListPodSandbox', (await s.client.runtime('ListPodSandbox', {})).items.length, totalPods),
      // As kubelet finds a pod's sandboxes: by its uid label.
      list_pods_label_ms: async (s) => expect(s, 'ListPodSandbox by label', (await s.client.runtime('ListPodSandbox', { filter: { label_selector: { [POD_UID]: 'list-7' } } })).items.length, 1),
      list_pods_state_ms: async (s) => expect(s, 'ListPodSandbox by state', (await s.client.runtime('ListPodSandbox', { filter: { state: { state: 0 } } })).items.length, totalPods),
      list_containers_ms: async (s) => expect(s, 'ListContainers', (await s.client.runtime('ListContainers', {})).containers.length, totalContainers),
      list_containers_pod_ms: async (s) => expect(s, 'ListContainers by pod', (await s.client.runtime('ListContainers', { filter: { pod_sandbox_id: statsPod.get(s.name) } })).containers.length, CONTAINERS_PER_POD),
      list_containers_state_ms: async (s) => expect(s, 'ListContainers by state', (await s.client.runtime('ListContainers', { filter: { state: { state: 1 } } })).containers.length, totalContainers),
      list_images_ms: async (s) => {
        const r = await s.client.image('ListImages', {});
        if (r.images.length < 1) throw new Error(`${s.name}: ListImages gave no image`);
      },
    };
    const lists = await timeCalls(subjects, listCalls, runs, opts.signal, undefined, LIST_CALLS_PER_RUN);
    const samples = { ...stats.samples, ...lists.samples };
    const failed = { ...stats.failed, ...lists.failed };

    const res: Record<string, Record<string, number | null>> = {};
    const rows: string[][] = [];
    const fl = summarize(empty.floor ?? []);
    rows.push(['http2_floor_ms', 'node http2', String(fl.n), fmt(fl.median, 3), fmt(fl.p99, 3), '']);
    res.version_ms = {};
    for (const s of subjects) {
      const v = summarize(empty[s.name] ?? []);
      res.version_ms[s.name === 'skiff' ? 'skiff' : 'containerd'] = round(v.median);
      rows.push(['version_ms', s.name, String(v.n), fmt(v.median, 3), fmt(v.p99, 3), s.name === 'skiff' ? '' : fmt(empty.skiff ? summarize(empty.skiff).median / v.median : null)]);
    }
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
        rows.push([key, s.name, String(sum.n), fmt(sum.median, 3), fmt(sum.p99, 3), s.name === 'skiff' || base === null || base === undefined ? '' : fmt(base / sum.median)]);
      }
    const sc = summarize(scrapes);
    rows.push(['metrics_scrape_ms', 'skiff', String(sc.n), fmt(sc.median), fmt(sc.p99), '']);
    log('');
    printTable(['metric', 'subject', 'n', 'median ms', 'p99 ms', 'skiff/peer'], rows);
    if (!peers.measured('containerd_runc')) for (const key of Object.keys(res)) res[key].containerd = null;
    log(`skiff's Version: ${fmt(summarize(empty.skiff ?? []).median / fl.median)}x the http2 floor; lists over ${totalPods} pods and ${totalContainers} containers`);
    console.log(JSON.stringify({ suite: 'stats', peers: peers.json(), pods: totalPods, containers: totalContainers, ...res, http2_floor_ms: round(fl.median), metrics_scrape_ms: round(sc.median) }));
  } finally {
    await cleanups.run(log);
  }
}

export const statsSuite: Suite = {
  name: 'stats',
  description: 'Version against the http2 floor, ListContainerStats / ListPodSandboxStats with 100 running containers, /metrics scrape, ListPodSandbox / ListContainers (filtered too) / ListImages over 110 pods (--pods N): skiff vs containerd',
  run: runStatsBench,
};
