// The `shim` suite: container start latency of skiff-shim against `crun run` and
// `runc run` on one bundle running /bin/true, and the memory of an idle shim.
import { spawn, execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { runtimeDefaultProfile } from '../../src/container/seccomp';
import type { LinuxSeccomp } from '../../src/oci/runtime_spec';
import { ShimClient } from '../../src/shim/client';
import type { BenchOptions, Suite } from './index';
import type { PeerBinary } from './peers';
import { fmt, lapTimer, median, printTable, round, summarize, type Summary } from './stats';
import { Cleanups, errText, isExecutable, sleep, withTimeout } from './util';

const DEFAULT_RUNS = 200;
const IDLE_WAIT_MS = 3000;
const WARMUP_RUNS = 3;
const CGROUP_PARENT = 'skiff-bench';
const CGROUP_ROOT = '/sys/fs/cgroup';
const CGROUP2_MAGIC = 0x63677270;
const CGROUP1_MAGIC = 0x27e0eb;
const TMPFS_MAGIC = 0x01021994;

const REPO = path.resolve(__dirname, '..', '..', '..'); // dist/e2e/bench -> repo root
const SHIM_BINARY = process.env.SKIFF_SHIM ?? path.join(REPO, 'shim', 'build', 'skiff-shim');
const BUSYBOX = '/bin/busybox';

interface Peer {
  name: 'crun' | 'runc';
  bin: string;
  version: string | null; // what `<rt> --version` says, e.g. "runc 1.3.6"
  root: string; // --root state dir
  extra: string[]; // global flags before `run`
  samples: number[];
  reason: string | null; // why it cannot run here (null: it runs)
}

export const shimSuite: Suite = {
  name: 'shim',
  description: 'create+start+wait of /bin/true: skiff-shim vs crun run vs runc run; idle shim RSS',
  run: runShimBench,
};

const log = (line: string) => console.log(line);

async function runShimBench(opts: BenchOptions): Promise<void> {
  const runs = opts.runs ?? DEFAULT_RUNS;
  if (process.getuid?.() !== 0) throw new Error('must run as root (it creates namespaces, cgroups and mounts)');
  if (!isExecutable(SHIM_BINARY)) throw new Error(`${SHIM_BINARY} is missing: build it with make -C shim`);
  if (!fs.existsSync(BUSYBOX)) throw new Error(`${BUSYBOX} is missing: apt-get install busybox-static`);

  const tag = `${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`;
  const cleanups = new Cleanups();
  let result: Record<string, unknown> | null = null;

  log(`shim: skiff-shim vs crun run vs runc run, /bin/true, ${runs} runs each, interleaved`);
  try {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-bench-'));
    cleanups.add('remove temp dir', () => fs.rmSync(tmp, { recursive: true, force: true }));

    const bundle = path.join(tmp, 'bundle');
    const idleBundle = path.join(tmp, 'idle-bundle'); // the sleeping container keeps its own config
    buildRootfs(path.join(bundle, 'rootfs'));
    buildRootfs(path.join(idleBundle, 'rootfs'));

    const peers: Peer[] = [
      makePeer('crun', opts.peers.crun, path.join(tmp, 'crun-root'), ['--cgroup-manager=cgroupfs']),
      makePeer('runc', opts.peers.runc, path.join(tmp, 'runc-root'), []),
    ];
    for (const p of peers) log(p.reason ? `peer ${p.name}: not measured (${p.reason})` : `peer ${p.name}: ${p.version} (${p.bin})`);

    // Order matters for the undo: cgroups are removed after the shim is gone and
    // before a v1 hierarchy we mounted is unmounted.
    const crun = peers[0];
    if (!crun.reason) {
      const undo = freeCgroup2ControllersForCrun(crun);
      if (undo) cleanups.add('restore cgroup2 controllers', undo);
    }
    cleanups.add('remove cgroups', () => removeBenchCgroups());

    // One shim serves the pod for the whole run, as skiffd uses it.
    const stateDir = path.join(tmp, 'shim-state');
    const client = await ShimClient.spawn({ binary: SHIM_BINARY, stateDir });
    const shimPid = Number(fs.readFileSync(path.join(stateDir, 'shim.pid'), 'utf8').trim());
    let infraPid = 0;
    cleanups.add('shut the shim down', async () => {
      try {
        await withTimeout(client.shutdown(), 15000, 'shutdown');
      } catch (e) {
        // A shim that does not shut down must not outlive the benchmark.
        for (const pid of [shimPid, infraPid]) if (pid > 0) killQuietly(pid);
        throw e;
      } finally {
        client.close();
      }
    });
    const pod = await client.pod({ hostname: 'skiff-bench', network: 'new', ipc: 'new', uts: 'new', pid: 'host' });
    const podNs = (['network', 'ipc', 'uts'] as const).map((type) => {
      const p = pod.namespaces[type === 'network' ? 'net' : type];
      if (!p) throw new Error(`pod result has no ${type} namespace: ${JSON.stringify(pod)}`);
      return { type, path: p };
    });
    infraPid = pod.pid;

    // Memory of an idle shim holding a pod with one sleeping container.
    const idleId = `idle-${tag}`;
    writeConfig(idleBundle, idleId, ['/bin/sleep', '3600'], podNs);
    try {
      await client.create({ id: idleId, bundle: idleBundle });
      await client.start({ id: idleId });
    } catch (e) {
      throw new Error(`skiff-shim, container ${idleId} (sleep 3600): ${errText(e)}`);
    }
    await sleep(200);
    const shimRssBusy = vmRssKiB(shimPid);
    // An idle shim gives back its start-up pages after IDLE_TRIM_MS
    // (shim/src/loop.c); measure it idle, as it spends a pod's life.
    await sleep(IDLE_WAIT_MS);
    const shimRss = vmRssKiB(shimPid);
    const shimUss = ussKiB(shimPid);
    const infraRss = vmRssKiB(pod.pid);

    const skiffSamples: number[] = [];
    // The same with skiffd's RuntimeDefault seccomp profile, as most pods run: its
    // filter is compiled once per shim and profile.
    const seccompSamples: number[] = [];
    const seccomp = runtimeDefaultProfile(BENCH_CAPS);
    const skiffPhases: number[][] = [[], [], [], []]; // create, start, wait, delete
    const baseline: number[] = [];
    // The physical floor: the namespaces skiff makes for each container here (mount and
    // pid; net, ipc and uts are the pod's) and an exec of the same binary, with no
    // runtime at all (util-linux unshare, chrooted into the same rootfs).
    const floor: number[] = [];
    const floorArgs = ['--mount', '--pid', '--fork', `--root=${path.join(bundle, 'rootfs')}`, '/bin/true'];
    const skiffRun = async (id: string, withSeccomp = false) => {
      writeConfig(bundle, id, ['/bin/true'], podNs, withSeccomp ? seccomp : undefined);
      let created = false;
      try {
        // crun/runc `run` return after the process exited and the container was
        // removed, so delete is inside the timed part here too.
        const lap = lapTimer();
        const ms: number[] = [];
        await client.create({ id, bundle });
        created = true;
        ms.push(lap());
        await client.start({ id });
        ms.push(lap());
        const exit = await client.wait({ id });
        ms.push(lap());
        if (exit.exitCode !== 0) throw new Error(`exit code ${exit.exitCode} (signal ${exit.signal})`);
        await client.delete({ id });
        created = false;
        ms.push(lap());
        return ms;
      } catch (e) {
        if (created) await client.delete({ id, force: true }).catch(() => undefined);
        throw new Error(`skiff-shim, container ${id}: ${errText(e)}`);
      }
    };
    const peerRun = async (peer: Peer, id: string) => {
      writeConfig(bundle, id, ['/bin/true'], null);
      try {
        return await runPeer(peer, id, bundle);
      } catch (e) {
        peer.reason = `${peer.name} run ${id} failed: ${errText(e)}`;
        log(`  ${peer.reason}`);
        forceDeletePeer(peer, id);
        return null;
      }
    };

    log(`  warm-up: ${WARMUP_RUNS} untimed runs each`);
    for (let i = 0; i < WARMUP_RUNS + runs; i++) {
      if (opts.signal.aborted) throw opts.signal.reason;
      const warm = i < WARMUP_RUNS;
      const n = warm ? `w${i}` : `${i - WARMUP_RUNS}`;
      const phases = await skiffRun(`skiff-${tag}-${n}`);
      if (!warm) {
        skiffSamples.push(phases.reduce((a, b) => a + b, 0));
        phases.forEach((ms, p) => skiffPhases[p].push(ms));
      }
      const sec = await skiffRun(`skiff-${tag}-s${n}`, true);
      if (!warm) seccompSamples.push(sec.reduce((a, b) => a + b, 0));
      for (const peer of peers) {
        if (peer.reason) continue;
        const pms = await peerRun(peer, `${peer.name}-${tag}-${n}`);
        if (pms !== null && !warm) peer.samples.push(pms);
      }
      // What spawning any program costs this process, included in crun/runc figures.
      const base = await runTimed('/bin/true', []);
      if (!warm) baseline.push(base);
      const bare = await runTimed('unshare', floorArgs);
      if (!warm) floor.push(bare);
      const done = i + 1 - WARMUP_RUNS;
      if (done > 0 && done % 50 === 0 && done < runs) log(`  ${done}/${runs} runs`);
    }
    const shimRssAfter = vmRssKiB(shimPid);

    log('');
    log('timed: skiff = create+start+wait+delete over the shim socket (one shim, pod with new net/ipc/uts);');
    log('       skiff + seccomp = the same with skiffd\'s RuntimeDefault seccomp profile;');
    log('       crun/runc = `<rt> run --bundle B ID` from spawn until it exits (new pid/mount/net/ipc/uts);');
    log('       (spawn /bin/true) = what any spawn from this process costs, part of the crun/runc figures;');
    log('       (floor) = `unshare --mount --pid --fork --root` + exec of the same /bin/true (the namespaces skiff');
    log('       makes per container here): the kernel work alone, spawn cost included.');
    const skiff = summarize(skiffSamples);
    const skiffSeccomp = summarize(seccompSamples);
    const stats = peers.map((p) => ({ peer: p, s: p.reason ? null : summarize(p.samples) }));
    const base = summarize(baseline);
    const bare = summarize(floor);
    const row = (name: string, s: Summary | null) =>
      s ? [name, String(s.n), fmt(s.median), fmt(s.p99), fmt(s.min), fmt(s.max)] : [name, '0', '-', '-', '-', '-'];
    printTable(
      ['runtime', 'runs', 'median ms', 'p99 ms', 'min ms', 'max ms'],
      [row('skiff-shim', skiff), row('skiff-shim + seccomp', skiffSeccomp), ...stats.map(({ peer, s }) => row(peer.name, s)), row('(spawn /bin/true)', base), row('(floor: unshare+exec)', bare)],
    );
    const ph = skiffPhases.map((xs) => fmt(median(xs)));
    log(`skiff-shim phases (medians, ms): create ${ph[0]}, start ${ph[1]}, wait ${ph[2]}, delete ${ph[3]}`);
    const ratio = (i: number) => {
      const s = stats[i].s;
      return s ? skiff.median / s.median : null;
    };
    for (const [i, { peer }] of stats.entries()) {
      if (peer.reason) log(`${peer.name}: not measured: ${peer.reason}`);
      else {
        const net = skiff.median / (stats[i].s!.median - base.median);
        log(`ratio skiff/${peer.name} (medians): ${fmt(ratio(i), 3)}; ${fmt(net, 3)} without the spawn cost`);
      }
    }
    log(`floor without the spawn cost: ${fmt(bare.median - base.median)} ms; skiff-shim is ${fmt(skiff.median - (bare.median - base.median))} ms above it`);
    log(`ratio skiff/floor (medians, this run): ${fmt(skiff.median / bare.median, 3)} (target: at most 2)`);
    log('');
    log(`memory: skiff-shim pid ${shimPid} VmRSS ${shimRss} KiB idle (pod + one sleeping container, ${IDLE_WAIT_MS / 1000} s without requests; private ${shimUss} KiB)`);
    log(`        ${shimRssBusy} KiB right after the container started; infra pid ${pod.pid} VmRSS ${infraRss} KiB; shim right after the runs: ${shimRssAfter} KiB`);

    result = {
      suite: 'shim',
      peers: Object.fromEntries(stats.map(({ peer, s }) => [peer.name, s ? peer.version : null])),
      skiff_ms: round(skiff.median),
      crun_ms: stats[0].s ? round(stats[0].s.median) : null,
      runc_ms: stats[1].s ? round(stats[1].s.median) : null,
      skiff_p99_ms: round(skiff.p99),
      skiff_seccomp_ms: round(skiffSeccomp.median),
      ratio_crun: round(ratio(0)),
      ratio_runc: round(ratio(1)),
      floor_ms: round(bare.median),
      ratio_floor: round(skiff.median / bare.median),
      phases_ms: { create: round(median(skiffPhases[0])), start: round(median(skiffPhases[1])), wait: round(median(skiffPhases[2])), delete: round(median(skiffPhases[3])) },
      shim_rss_kib: shimRss,
    };
  } finally {
    await cleanups.run(log);
  }
  console.log(JSON.stringify(result));
}

function makePeer(name: Peer['name'], found: PeerBinary, root: string, extra: string[]): Peer {
  const peer: Peer = { name, bin: found.found ? found.path : name, version: found.found ? found.version : null, root, extra, samples: [], reason: found.found ? null : found.why };
  if (!peer.reason) fs.mkdirSync(root, { recursive: true, mode: 0o700 });
  return peer;
}

/** Runs `<rt> run` to completion; resolves with the ms from spawn to exit. */
function runPeer(peer: Peer, id: string, bundle: string): Promise<number> {
  return runTimed(peer.bin, ['--root', peer.root, ...peer.extra, 'run', '--bundle', bundle, id]);
}

/** Spawns a command; resolves with the ms from spawn to exit if it exits 0. */
function runTimed(bin: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    let ms = 0;
    let stderr = '';
    const child = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child.on('exit', () => (ms = Number(process.hrtime.bigint() - t0) / 1e6));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) resolve(ms);
      else reject(new Error(`exit ${code ?? signal}: ${stderr.trim() || '(no stderr)'}`));
    });
  });
}

function forceDeletePeer(peer: Peer, id: string): void {
  try {
    execFileSync(peer.bin, ['--root', peer.root, ...peer.extra, 'delete', '--force', id], { stdio: 'ignore' });
  } catch {
    // not there: `run` removed it already
  }
}

/**
 * crun refuses a hybrid host whose cgroup2 mount holds controllers. Binding
 * those controllers to v1 hierarchies of their own moves them off cgroup2 (only
 * possible while no cgroup2 group uses them). Returns the undo, or null.
 */
export function freeCgroup2ControllersForCrun(crun: { reason: string | null }): (() => Promise<void>) | null {
  const unified = path.join(CGROUP_ROOT, 'unified');
  if (fsType(CGROUP_ROOT) === CGROUP2_MAGIC || fsType(unified) !== CGROUP2_MAGIC) return null;
  const held = fs.readFileSync(path.join(unified, 'cgroup.controllers'), 'utf8').split(/\s+/).filter(Boolean);
  if (held.length === 0) return null;
  if (fsType(CGROUP_ROOT) !== TMPFS_MAGIC) {
    crun.reason = `cgroup2 at ${unified} holds ${held.join(',')} and ${CGROUP_ROOT} is not a tmpfs to mount v1 hierarchies on`;
    return null;
  }
  const mounted: Array<{ controller: string; dir: string; created: boolean }> = [];
  const backOnCgroup2 = (c: string) =>
    fs.readFileSync(path.join(unified, 'cgroup.controllers'), 'utf8').split(/\s+/).includes(c);
  const undo = async () => {
    for (const m of mounted.reverse()) {
      // The kernel frees an unmounted v1 hierarchy (giving the controller back to
      // cgroup2) only if it had no child groups at umount time, and removed
      // groups leave the hierarchy asynchronously: wait for them to be gone.
      for (let i = 0; i < 50 && v1GroupCount(m.controller) > 1; i++) await sleep(100);
      let back = false;
      for (let attempt = 0; ; attempt++) {
        execFileSync('umount', [m.dir]);
        for (let i = 0; i < 30 && !(back = backOnCgroup2(m.controller)); i++) await sleep(100);
        if (back || attempt === 2) break;
        // Still held by the detached hierarchy: mounting it again and unmounting
        // it once it is empty releases it.
        execFileSync('mount', ['-t', 'cgroup', '-o', m.controller, 'cgroup', m.dir]);
        for (let i = 0; i < 50 && v1GroupCount(m.controller) > 1; i++) await sleep(100);
      }
      if (m.created) fs.rmdirSync(m.dir);
      log(`host: unmounted ${m.dir}${m.created ? ' and removed it' : ''}`);
      if (back) log(`host: ${m.controller} is back on cgroup2 (${unified}/cgroup.controllers)`);
      else log(`host: WARNING: ${m.controller} is not back in ${unified}/cgroup.controllers`);
    }
  };
  try {
    for (const c of held) {
      const dir = path.join(CGROUP_ROOT, c);
      const created = !fs.existsSync(dir);
      if (created) fs.mkdirSync(dir);
      try {
        execFileSync('mount', ['-t', 'cgroup', '-o', c, 'cgroup', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
      } catch (e) {
        if (created) fs.rmdirSync(dir);
        const why = String((e as { stderr?: Buffer }).stderr ?? errText(e)).split('\n')[0].trim();
        // EBUSY when some cgroup2 group has the controller enabled below it.
        const users = fs.readFileSync(path.join(unified, 'cgroup.subtree_control'), 'utf8').split(/\s+/).includes(c)
          ? ` (${unified}/cgroup.subtree_control enables ${c}: cgroup2 groups use it)`
          : '';
        throw new Error(`mounting a v1 ${c} hierarchy failed${users}: ${why}`);
      }
      mounted.push({ controller: c, dir, created });
      log(`host: cgroup2 (${unified}) held the ${c} controller, which crun refuses on a hybrid host;`);
      log(`      mounted the v1 ${c} hierarchy at ${dir} to move it off cgroup2 (undone at the end)`);
    }
  } catch (e) {
    crun.reason = `crun refuses a hybrid host whose cgroup2 holds controllers (${held.join(',')}); ${errText(e)}`;
    log(`host: crun will not be measured: ${crun.reason}`);
  }
  return mounted.length ? undo : null;
}

/** Number of groups in the v1 hierarchy of a controller (/proc/cgroups). */
function v1GroupCount(controller: string): number {
  const line = fs
    .readFileSync('/proc/cgroups', 'utf8')
    .split('\n')
    .find((l) => l.split('\t')[0] === controller);
  return line ? Number(line.split('\t')[2]) : 0;
}

/** Removes <hierarchy>/skiff-bench in every cgroup hierarchy, leaves first. */
function removeBenchCgroups(): void {
  const roots =
    fsType(CGROUP_ROOT) === CGROUP2_MAGIC
      ? [CGROUP_ROOT]
      : fs
          .readdirSync(CGROUP_ROOT)
          .map((d) => path.join(CGROUP_ROOT, d))
          .filter((d) => [CGROUP1_MAGIC, CGROUP2_MAGIC].includes(fsType(d)));
  const seen = new Set<string>();
  for (const root of roots) {
    const dir = path.join(fs.realpathSync(root), CGROUP_PARENT);
    if (seen.has(dir) || !fs.existsSync(dir)) continue;
    seen.add(dir);
    removeCgroupTree(dir);
  }
}

function removeCgroupTree(dir: string): void {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) removeCgroupTree(path.join(dir, e.name));
  }
  for (let attempt = 0; ; attempt++) {
    try {
      fs.rmdirSync(dir);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EBUSY' || attempt >= 20) throw e;
      // Left over from a failed run: everything under skiff-bench is ours.
      for (const pid of readPids(dir)) killQuietly(pid);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50); // sync sleep
    }
  }
}

function readPids(dir: string): number[] {
  try {
    return fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** A busybox rootfs with the mount points the config uses. */
export function buildRootfs(rootfs: string): void {
  for (const d of ['bin', 'proc', 'dev', 'sys', 'tmp', 'etc']) fs.mkdirSync(path.join(rootfs, d), { recursive: true });
  fs.copyFileSync(BUSYBOX, path.join(rootfs, 'bin', 'busybox'));
  fs.chmodSync(path.join(rootfs, 'bin', 'busybox'), 0o755);
  for (const l of ['true', 'sh', 'sleep']) fs.symlinkSync('busybox', path.join(rootfs, 'bin', l));
}

const BENCH_CAPS = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];

/**
 * config.json as `runc spec` / `crun spec` write it, running args. With podNs the
 * container joins the pod's namespaces; without, the runtime makes new ones of
 * the same kinds. No hostname: a container joining the pod's UTS namespace has
 * the pod's. seccomp: a profile for linux.seccomp (none by default, as `runc spec`).
 */

export function writeConfig(
  bundle: string,
  id: string,
  args: string[],
  podNs: Array<{ type: string; path: string }> | null,
  seccomp?: LinuxSeccomp,
): void {
  const caps = BENCH_CAPS;
  const config = {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args,
      env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      cwd: '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps, ambient: caps },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: 'rootfs', readonly: true },
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      {
        destination: '/dev/pts',
        type: 'devpts',
        source: 'devpts',
        options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
      },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] },
    ],
    linux: {
      cgroupsPath: `/${CGROUP_PARENT}/${id}`,
      resources: { devices: [{ allow: false, access: 'rwm' }] },
      namespaces: [{ type: 'pid' }, { type: 'mount' }, ...(podNs ?? [{ type: 'network' }, { type: 'ipc' }, { type: 'uts' }])],
      maskedPaths: [
        '/proc/acpi',
        '/proc/asound',
        '/proc/kcore',
        '/proc/keys',
        '/proc/latency_stats',
        '/proc/timer_list',
        '/proc/timer_stats',
        '/proc/sched_debug',
        '/sys/firmware',
        '/proc/scsi',
      ],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
      ...(seccomp ? { seccomp } : {}),
    },
  };
  fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(config, null, 2));
}

/** Private (unshared) resident memory: what this process alone costs. */
function ussKiB(pid: number): number {
  const smaps = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  let kib = 0;
  for (const m of smaps.matchAll(/^Private_(?:Clean|Dirty):\s+(\d+) kB$/gm)) kib += Number(m[1]);
  return kib;
}

export function vmRssKiB(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  if (!m) throw new Error(`/proc/${pid}/status has no VmRSS line`);
  return Number(m[1]);
}

function fsType(p: string): number {
  try {
    return Number(fs.statfsSync(p).type);
  } catch {
    return -1;
  }
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

