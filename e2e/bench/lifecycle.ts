// The `lifecycle` suite: skiff against containerd (with runc, and with crun when present;
// the binaries of the run's peers) through the same CRI client: RunPodSandbox,
// Create+StartContainer, a full pod lifecycle serial and 20-way concurrent, and the
// daemons' and shims' memory.
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { CriClient } from '../../src/cri/client';
import { removeCgroupTree, unmountUnder } from '../fixtures/cleanup';
import { launchContainerd } from '../fixtures/containerd';
import { busyboxLayer } from '../fixtures/images';
import { TestNetwork } from '../fixtures/network';
import { TestRegistry } from '../fixtures/registry';
import { TestSkiffd } from '../fixtures/skiffd';
import type { BenchOptions, Suite } from './index';
import { listenerPid, PeerBinary, PeerReport, Peers } from './peers';
import { freeCgroup2ControllersForCrun, vmRssKiB } from './shim';
import { fmt, median, printTable, round, summarize } from './stats';
import { Cleanups, errText } from './util';

const DEFAULT_RUNS = 30;
const CONCURRENCY = 20;
const MANY_PODS = 100;
/** `ps` of a node at 500 pods prints more than execFileSync's default 1 MiB buffer holds
 * (ENOBUFS, which cut the containerd subject's cleanup short). */
const PS_OPTIONS = { maxBuffer: 256 * 1024 * 1024 };
const log = (s: string) => console.log(s);
const BUSYBOX = 'docker.io/bench/busybox:1';

export interface Subject {
  name: 'skiff' | 'containerd_runc' | 'containerd_crun' | 'crio';
  client: CriClient;
  /** The busybox image as this subject pulls it, when not through a docker.io mirror. */
  image?: string;
  /** The daemon's pid, for its RSS. */
  pid: () => number;
  shimPids: () => number[];
  stop: () => Promise<void>;
  podStart: number[];
  ctrStart: number[];
  lifecycle: number[];
  concurrent: number[];
}

let seq = 0;
async function lifecycle(s: Subject, prefix: string): Promise<{ pod: number; ctr: number; total: number }> {
  const n = ++seq;
  const config = { metadata: { name: `${prefix}${n}`, namespace: 'bench', uid: `${prefix}-uid-${n}`, attempt: 0 }, hostname: `b${n}`, linux: {} };
  const t0 = process.hrtime.bigint();
  const { pod_sandbox_id } = await s.client.runtime('RunPodSandbox', { config });
  const t1 = process.hrtime.bigint();
  const { container_id } = await s.client.runtime('CreateContainer', {
    pod_sandbox_id,
    config: { metadata: { name: 'c', attempt: 0 }, image: { image: s.image ?? BUSYBOX }, command: ['sleep', '1000'] },
    sandbox_config: config,
  });
  await s.client.runtime('StartContainer', { container_id });
  const t2 = process.hrtime.bigint();
  await s.client.runtime('StopContainer', { container_id, timeout: 0 });
  await s.client.runtime('RemoveContainer', { container_id });
  await s.client.runtime('StopPodSandbox', { pod_sandbox_id });
  await s.client.runtime('RemovePodSandbox', { pod_sandbox_id });
  const t3 = process.hrtime.bigint();
  const ms = (a: bigint, b: bigint) => Number(b - a) / 1e6;
  return { pod: ms(t0, t1), ctr: ms(t1, t2), total: ms(t0, t3) };
}

/** docker.io/bench/busybox:1 and the pause image containerd needs, from busybox-static. */
export async function pushBenchImages(reg: TestRegistry, work: string): Promise<void> {
  const layer = busyboxLayer(work);
  await reg.pushImage('bench/busybox', '1', [layer], undefined, { Cmd: ['sh'], Env: ['PATH=/bin'] });
  await reg.pushImage('bench/pause', '1', [layer], undefined, { Cmd: ['sleep', '2147483647'], Env: ['PATH=/bin'] });
}

/** skiffd with a bridge network of its own, docker.io mirrored to the registry, logging at
 * its default level. */
export async function startSkiff(registryHost: string, cleanups: Cleanups): Promise<Subject & { skiffd: TestSkiffd }> {
  // skiffd as a node runs it: the test fixture's debug log (a line per CRI call, written
  // synchronously) would be measured too; containerd runs at its default level as well.
  const skiffd = await TestSkiffd.start({ args: ['--network.write_default_config', 'false', '--log_level', 'info'] });
  const skiffNet = new TestNetwork(path.join(skiffd.dir, 'net.d'), path.join(skiffd.dir, 'ipam'));
  skiffd.mirror('docker.io', registryHost);
  cleanups.add('remove skiffd and its network', async () => {
    await skiffd.cleanup();
    skiffNet.remove();
  });
  return {
    name: 'skiff',
    skiffd,
    client: skiffd.client,
    pid: () => skiffd.pid!,
    shimPids: () => {
      const dir = path.join(skiffd.state, 'pods');
      return fs.readdirSync(dir).map((id) => Number(fs.readFileSync(path.join(dir, id, 'shim', 'shim.pid'), 'utf8').trim())).filter((p) => p > 0);
    },
    stop: async () => {},
    podStart: [],
    ctrStart: [],
    lifecycle: [],
    concurrent: [],
  };
}

/** containerd (containerdBinary, else the one on $PATH) running runtimeBinary. */
export async function startContainerd(
  name: Subject['name'],
  work: string,
  registryHost: string,
  runtimeBinary: string,
  containerdBinary?: string,
): Promise<{ subject: Subject; net: TestNetwork }> {
  const dir = fs.mkdtempSync(path.join(work, `${name}-`));
  const net = new TestNetwork(path.join(dir, 'net.d'), path.join(dir, 'ipam'));
  const { proc, client, socket: sock } = await launchContainerd({
    dir,
    binary: containerdBinary,
    registryHost,
    mirrors: ['docker.io'],
    cniConfDir: path.join(dir, 'net.d'),
    sandboxImage: 'docker.io/bench/pause:1',
    runtimeBinary,
    cri: { restrict_oom_score_adj: true },
  }).catch((e: unknown) => {
    net.remove();
    fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  });
  const subject: Subject = {
    name,
    client,
    pid: () => proc.pid!,
    shimPids: () =>
      execFileSync('ps', ['-eo', 'pid,args'], PS_OPTIONS).toString().split('\n').filter((l) => l.includes('containerd-shim-runc-v2') && l.includes(sock)).map((l) => Number(l.trim().split(/\s+/)[0])),
    stop: async () => {
      try {
        const pods = await client.runtime('ListPodSandbox', {}, { timeoutMs: 20_000 });
        for (const p of pods.items) {
          await client.runtime('StopPodSandbox', { pod_sandbox_id: p.id }).catch(() => {});
          await client.runtime('RemovePodSandbox', { pod_sandbox_id: p.id }).catch(() => {});
        }
        const imgs = await client.image('ListImages', {});
        for (const i of imgs.images) await client.image('RemoveImage', { image: { image: i.id } }).catch(() => {});
      } catch {
        /* best effort: the daemon is killed below */
      }
      client.close();
      for (const pid of subject.shimPids()) killQuietly(pid);
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
        if (proc.exitCode === null) proc.kill('SIGKILL');
      }
      unmountUnder(dir);
      net.remove();
      removeCgroupTree('/k8s.io');
      fs.rmSync(dir, { recursive: true, force: true });
    },
    podStart: [],
    ctrStart: [],
    lifecycle: [],
    concurrent: [],
  };
  return { subject, net };
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* gone */
  }
}

/** The CRI-O a user runs at socket, never started or stopped here: the benchmark adds its
 * pods (namespace "bench") and removes those it made. It has no mirror of ours, so it
 * pulls busybox from the loopback registry by that registry's name, which it must be
 * allowed to reach over HTTP (registries.conf: location "127.0.0.1", insecure = true);
 * its pause image is its own. */
export async function connectCrio(socket: string, registryHost: string): Promise<Subject> {
  const pid = listenerPid(socket);
  const client = new CriClient(socket);
  const since = BigInt(Date.now()) * 1_000_000n; // created_at is in nanoseconds
  const image = `${registryHost}/bench/busybox:1`;
  return {
    name: 'crio',
    client,
    image,
    pid: () => pid,
    // conmon, one per container, is named after it: k8s_<ctr>_<pod>_<namespace>_<uid>_<attempt>.
    shimPids: () =>
      execFileSync('ps', ['-eo', 'pid,comm,args'], PS_OPTIONS).toString().split('\n').map((l) => l.trim().split(/\s+/)).filter((f) => f[1] === 'conmon' && f.some((a) => a.includes('_bench_'))).map((f) => Number(f[0])),
    stop: async () => {
      try {
        const pods = await client.runtime('ListPodSandbox', {}, { timeoutMs: 20_000 });
        for (const p of pods.items.filter((p) => p.metadata?.namespace === 'bench' && BigInt(p.created_at) >= since)) {
          await client.runtime('StopPodSandbox', { pod_sandbox_id: p.id }).catch(() => {});
          await client.runtime('RemovePodSandbox', { pod_sandbox_id: p.id }).catch(() => {});
        }
        await client.image('RemoveImage', { image: { image } }).catch(() => {});
      } finally {
        client.close();
      }
    },
    podStart: [],
    ctrStart: [],
    lifecycle: [],
    concurrent: [],
  };
}

/** containerd with each OCI runtime given, the run's peers: a subject for each that starts,
 * in order; the report says which version each is, or why it is not measured. */
export async function startContainerdPeers(
  peers: Peers,
  runtimes: [Subject['name'], PeerBinary][],
  work: string,
  registryHost: string,
  cleanups: Cleanups,
  report: PeerReport,
): Promise<Subject[]> {
  const subjects: Subject[] = [];
  for (const [name, runtime] of runtimes) {
    report.add(name, peers.containerd, runtime);
    if (!peers.containerd.found || !runtime.found) continue;
    try {
      const { subject } = await startContainerd(name, work, registryHost, runtime.path, peers.containerd.path);
      cleanups.add(`stop ${subject.name}`, subject.stop);
      subjects.push(subject);
    } catch (e) {
      report.notMeasured(name, `it did not start: ${errText(e).slice(0, 500)}`);
    }
  }
  return subjects;
}

async function runLifecycleBench(opts: BenchOptions): Promise<void> {
  const runs = opts.runs ?? DEFAULT_RUNS;
  const work = fs.mkdtempSync('/tmp/skb-');
  const cleanups = new Cleanups();
  cleanups.add('remove the work dir', () => fs.rmSync(work, { recursive: true, force: true }));
  const subjects: Subject[] = [];
  const report = new PeerReport();
  try {
    const reg = await TestRegistry.start();
    cleanups.add('stop the registry', () => reg.stop());
    await pushBenchImages(reg, work);

    const crunState = { reason: null as string | null };
    const crun = opts.peers.crun.found ? opts.peers.crun.path : undefined;
    let undoHybrid: (() => Promise<void>) | null = null;
    if (crun) {
      // An earlier skiff run may have enabled hugetlb below the cgroup2 root; with no
      // group using it any more it can be given back, so crun can be measured.
      try {
        fs.writeFileSync('/sys/fs/cgroup/unified/cgroup.subtree_control', '-hugetlb');
      } catch {
        /* in use, or not a hybrid host */
      }
      undoHybrid = freeCgroup2ControllersForCrun(crunState);
    }
    if (undoHybrid) cleanups.add('give hugetlb back to cgroup2', undoHybrid);

    subjects.push(await startSkiff(reg.host, cleanups));
    const crunPeer: PeerBinary = crunState.reason ? { found: false, why: crunState.reason } : opts.peers.crun;
    subjects.push(...(await startContainerdPeers(opts.peers, [['containerd_runc', opts.peers.runc], ['containerd_crun', crunPeer]], work, reg.host, cleanups, report)));
    if (report.add('crio', opts.peers.crio) && opts.peers.crio.found) {
      try {
        const crio = await connectCrio(opts.peers.crio.path, reg.host);
        cleanups.add('remove the pods made in CRI-O', crio.stop);
        subjects.push(crio);
      } catch (e) {
        report.notMeasured('crio', errText(e));
      }
    }
    for (const line of report.lines()) log(line);
    for (const s of subjects) await s.client.image('PullImage', { image: { image: s.image ?? BUSYBOX } });
    // Warm-up: the first pods pull the pause image, load plugins, fill caches. A peer whose
    // pods fail here (e.g. a crun older than the runtime spec its containerd writes) is not
    // measured; skiff's failing fails the run.
    for (const s of [...subjects]) {
      try {
        for (let i = 0; i < 3; i++) await lifecycle(s, 'warm');
      } catch (e) {
        if (s.name === 'skiff') throw e;
        report.notMeasured(s.name, `its warm-up pod failed: ${errText(e).slice(0, 500)}`);
        log(report.line(s.name));
        subjects.splice(subjects.indexOf(s), 1);
      }
    }
    // Idle: V8's memory reducer collects what the warm-up left some seconds after the
    // last call (2.5 s after it skiffd still holds about 2 MiB more).
    await new Promise((r) => setTimeout(r, 10_000));
    const idleRss = vmRssKiB(subjects[0].pid());

    for (let i = 0; i < runs && !opts.signal.aborted; i++) {
      for (const s of subjects) {
        const r = await lifecycle(s, 'serial');
        s.podStart.push(r.pod);
        s.ctrStart.push(r.ctr);
        s.lifecycle.push(r.total);
      }
    }
    for (let round = 0; round < 2 && !opts.signal.aborted; round++) {
      for (const s of subjects) {
        const rs = await Promise.all(Array.from({ length: CONCURRENCY }, () => lifecycle(s, 'conc')));
        s.concurrent.push(...rs.map((r) => r.total));
      }
    }

    // Memory with many pods (skiff and the first peer).
    const mem: Record<string, { daemonMiB: number; shimKiB: number }> = {};
    for (const s of subjects.slice(0, 2)) {
      const ids: string[] = [];
      for (let i = 0; i < MANY_PODS && !opts.signal.aborted; i++) {
        const n = ++seq;
        const config = { metadata: { name: `many${n}`, namespace: 'bench', uid: `many-${n}`, attempt: 0 }, linux: {} };
        ids.push((await s.client.runtime('RunPodSandbox', { config })).pod_sandbox_id);
      }
      await new Promise((r) => setTimeout(r, 3000));
      const shims = s.shimPids().map((p) => {
        try {
          return vmRssKiB(p);
        } catch {
          return NaN;
        }
      }).filter(Number.isFinite);
      mem[s.name] = { daemonMiB: vmRssKiB(s.pid()) / 1024, shimKiB: median(shims) };
      for (const id of ids) {
        await s.client.runtime('StopPodSandbox', { pod_sandbox_id: id });
        await s.client.runtime('RemovePodSandbox', { pod_sandbox_id: id });
      }
    }

    const rows: string[][] = [];
    const res: Record<string, Record<string, number | null>> = { pod_start_ms: {}, ctr_start_ms: {}, lifecycle_ms: {}, concurrent20_ms: {} };
    for (const s of subjects) {
      for (const [key, samples] of [['pod_start_ms', s.podStart], ['ctr_start_ms', s.ctrStart], ['lifecycle_ms', s.lifecycle], ['concurrent20_ms', s.concurrent]] as const) {
        const sum = summarize(samples);
        res[key][s.name] = round(sum.median);
        const base = res[key].skiff;
        rows.push([key, s.name, String(sum.n), fmt(sum.median), fmt(sum.p99), s.name === 'skiff' || base === null ? '' : fmt(base / sum.median)]);
      }
    }
    for (const [name, version] of Object.entries(report.json())) if (version === null) for (const key of Object.keys(res)) res[key][name] = null;
    log('');
    printTable(['metric', 'subject', 'n', 'median ms', 'p99 ms', 'skiff/peer'], rows.sort((a, b) => a[0].localeCompare(b[0])));
    log('');
    for (const [k, v] of Object.entries(mem)) log(`${k}: daemon RSS with ${MANY_PODS} pods ${fmt(v.daemonMiB)} MiB; per-pod shim RSS median ${fmt(v.shimKiB, 0)} KiB`);
    log(`skiffd RSS idle (10 s after the warm-up): ${fmt(idleRss / 1024)} MiB`);
    const skiffMem = mem.skiff;
    console.log(
      JSON.stringify({
        suite: 'lifecycle',
        peers: report.json(),
        ...res,
        skiffd_rss_idle_mib: round(idleRss / 1024),
        skiffd_rss_100pods_mib: skiffMem ? round(skiffMem.daemonMiB) : null,
        shim_rss_kib: skiffMem ? round(skiffMem.shimKiB, 0) : null,
        containerd_shim_rss_kib: mem.containerd_runc ? round(mem.containerd_runc.shimKiB, 0) : null,
      }),
    );
  } finally {
    await cleanups.run(log);
  }
}

export const lifecycleSuite: Suite = {
  name: 'lifecycle',
  description: 'pod and container start, full lifecycle, 20-way concurrency, memory: skiff vs containerd (runc, crun)',
  run: runLifecycleBench,
};
