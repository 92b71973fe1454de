// The `pull` suite: cold pulls of one ~200 MB multi-layer image, built here and served
// by a loopback registry, by skiff (an ImageService in a worker process, as skiffd
// pulls) and by containerd (`ctr images pull`), and a floor (the same blobs stored and
// untarred by plain tools from the page cache), interleaved; times and RSS growth.
import { ChildProcess, execFile, execFileSync, spawn } from 'child_process';
import { createHash, randomBytes, randomFillSync } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as readline from 'readline';
import { Transform } from 'stream';
import { pipeline } from 'stream/promises';
import * as tar from 'tar-stream';
import { promisify } from 'util';
import { createGzip } from 'zlib';
import { hostPlatform } from '../../src/image/registry';
import { chainIds } from '../../src/image/snapshotter';
import { busyboxLayer } from '../fixtures/images';
import { sha256, TestRegistry } from '../fixtures/registry';
import { unmountUnder } from '../fixtures/cleanup';
import type { BenchOptions, Suite } from './index';
import type { PullWorkerError, PullWorkerReady, PullWorkerResult } from './pull_worker';
import { fmt, median, printTable, round, summarize, type Summary } from './stats';
import { Cleanups, isExecutable, sleep, withTimeout } from './util';

const DEFAULT_RUNS = 5;
const REPOSITORY = 'bench/big';
const WARMUP_REPOSITORY = 'bench/warmup';
const TAG = 'latest';
const GZIP_LEVEL = 6;
const LAYER_MEDIA = 'application/vnd.oci.image.layer.v1.tar+gzip';
const RSS_TARGET_MIB = 50;
/** skiff's pull time may be at most this many times the floor's. */
const FLOOR_TARGET = 1.3;
const CONTAINERD_NS = 'bench';
/** The run's containerd and its ctr (peers.ts), set as a run starts. */
let CONTAINERD = '';
let CTR = '';
const BUSYBOX = '/bin/busybox';
/** The floor's decompressor: pigz when installed (its inflate is faster than gzip's), else gzip. */
const PIGZ = '/usr/bin/pigz';
const GZIP = '/bin/gzip';
const TAR = '/bin/tar';
const BASH = '/bin/bash';
const WORKER = path.join(__dirname, 'pull_worker.js');
const START_TIMEOUT_MS = 30_000;
const PULL_TIMEOUT_MS = 600_000;
const STOP_TIMEOUT_MS = 10_000;
const REGISTRY_STOP_MS = 3000;
const KiB = 1024;
const MiB = 1024 * KiB;

const execFileAsync = promisify(execFile);
const log = (line: string) => console.log(line);

export const pullSuite: Suite = {
  name: 'pull',
  description: 'cold pull of a ~200 MB 8-layer image from a loopback registry: skiff vs containerd (ctr); RSS growth',
  run: runPullBench,
};

/** What the runs share: where things are and what the pull must produce. */
interface Bench {
  tmp: string;
  ref: string;
  /** A one-layer busybox image each daemon pulls first, untimed (as the pause image). */
  warmupRef: string;
  /** skiff's registry config dir (containerd's hosts.toml layout). */
  hostsDir: string;
  /** The chain id of the image's top layer: both pullers must end with it. */
  topChainId: string;
  /** The layer blobs as built (the registry holds the same bytes), base first. */
  layers: BuiltLayer[];
  /** Each blob gunzipped once, untimed, for the storage floor. */
  tars: string[];
  /** The registry's storage, read into the page cache before each pull. */
  registryStorage: string;
}

interface Sample {
  seconds: number;
  /** The same pull again, the image already there. */
  warmSeconds: number;
  /** Peak RSS during the pull minus RSS right before it. */
  growthMiB: number;
  peakMiB: number;
  /** containerd only: the peak RSS of the ctr client, which does the fetching. */
  clientPeakMiB?: number;
}

async function runPullBench(opts: BenchOptions): Promise<void> {
  const runs = opts.runs ?? DEFAULT_RUNS;
  if (process.getuid?.() !== 0) throw new Error('must run as root (it drops the page cache and containerd mounts)');
  const { containerd: containerdPeer, ctr: ctrPeer } = opts.peers;
  // Without containerd (or its ctr) skiff and the floor are still measured; containerd's
  // figures are null.
  const peer = containerdPeer.found && ctrPeer.found ? { version: containerdPeer.version, ctrVersion: ctrPeer.version } : null;
  const absent = !containerdPeer.found ? containerdPeer.why : !ctrPeer.found ? `${ctrPeer.why}; this suite drives containerd with ctr` : '';
  if (containerdPeer.found && ctrPeer.found) [CONTAINERD, CTR] = [containerdPeer.path, ctrPeer.path];
  for (const bin of [GZIP, TAR, BASH]) if (!isExecutable(bin)) throw new Error(`${bin} is missing (the floor runs it)`);
  if (!fs.existsSync(BUSYBOX)) throw new Error(`${BUSYBOX} is missing: apt-get install busybox-static`);
  if (!fs.existsSync(WORKER)) throw new Error(`${WORKER} is missing: build with npx tsc -p tsconfig.json`);

  const cleanups = new Cleanups();
  let result: Record<string, unknown> | null = null;
  log(`pull: skiff vs containerd (ctr images pull), cold caches, ${runs} runs each, interleaved`);
  log(peer ? `peer containerd: ${peer.version} (${CONTAINERD}), ${peer.ctrVersion} (${CTR})` : `peer containerd: not measured (${absent})`);
  try {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-bench-pull-'));
    cleanups.add('remove temp dir', () => fs.rmSync(tmp, { recursive: true, force: true }));
    cleanups.add('unmount leftovers', () => unmountUnder(tmp));

    const registry = await startRegistryUnder(tmp);
    // The fixture's stop() waits forever for a registry that a terminal's SIGINT
    // killed already; its files are under tmp, removed anyway.
    cleanups.add('stop the registry', () => withTimeout(registry.stop(), REGISTRY_STOP_MS, 'registry stop'));
    const t0 = process.hrtime.bigint();
    const image = await buildAndPushImage(registry, path.join(tmp, 'blobs'), opts.signal);
    const buildS = Number(process.hrtime.bigint() - t0) / 1e9;
    const compressed = image.layers.reduce((n, l) => n + l.size, 0);
    const unpacked = image.layers.reduce((n, l) => n + l.tarSize, 0);
    log(`  image ${registry.host}/${REPOSITORY}:${TAG}: ${image.layers.length} gzip layers, ${mb(compressed)} MB compressed, ${mb(unpacked)} MB of tar (built and pushed in ${buildS.toFixed(1)} s)`);
    for (const l of image.layers) log(`    ${mb(l.size).padStart(6)} MB  ${l.description}`);

    await registry.pushImage(WARMUP_REPOSITORY, TAG, [busyboxLayer(tmp)], hostPlatform());

    const hostsDir = path.join(tmp, 'hosts');
    fs.mkdirSync(path.join(hostsDir, registry.host), { recursive: true });
    fs.writeFileSync(path.join(hostsDir, registry.host, 'hosts.toml'), `server = "http://${registry.host}"\n`);
    const bench: Bench = {
      tmp,
      ref: `${registry.host}/${REPOSITORY}:${TAG}`,
      warmupRef: `${registry.host}/${WARMUP_REPOSITORY}:${TAG}`,
      hostsDir,
      topChainId: chainIds(image.layers.map((l) => l.diffId)).at(-1) as string,
      layers: image.layers,
      tars: await inflateOnce(image.layers, path.join(tmp, 'tars')),
      registryStorage: registry.storageDir,
    };
    log(`  floor: the ${image.layers.length} blobs from the page cache, each \`tee <copy> | ${path.basename(floorGunzip())} -dc | tar -x\` into a fresh dir on the same disk, all at once; then \`sync <copies>\` (skiff fsyncs the blobs it keeps, not the unpacked files)`);

    const skiff: Sample[] = [];
    const containerd: Sample[] = [];
    const floor: number[] = [];
    const storeFloor: number[] = [];
    const untarFloor: number[] = [];
    for (let i = 0; i < runs; i++) {
      // A terminal's SIGINT reaches the daemons too: the run then fails, for that reason.
      const interrupted = (e: unknown) => (opts.signal.aborted ? opts.signal.reason : e);
      if (opts.signal.aborted) throw opts.signal.reason;
      const s = await skiffRun(bench, i).catch((e: unknown) => Promise.reject(interrupted(e)));
      skiff.push(s);
      if (opts.signal.aborted) throw opts.signal.reason;
      const c = peer ? await containerdRun(bench, i).catch((e: unknown) => Promise.reject(interrupted(e))) : null;
      if (c) containerd.push(c);
      if (opts.signal.aborted) throw opts.signal.reason;
      const f = await floorRun(bench, i, 'inflate');
      floor.push(f);
      const sf = await floorRun(bench, i, 'store');
      storeFloor.push(sf);
      const uf = await floorRun(bench, i, 'untar');
      untarFloor.push(uf);
      log(`  run ${i + 1}/${runs}: skiff ${s.seconds.toFixed(2)} s (+${s.growthMiB.toFixed(1)} MiB; warm ${s.warmSeconds.toFixed(3)} s), ${c ? `containerd ${c.seconds.toFixed(2)} s (+${c.growthMiB.toFixed(1)} MiB, ctr peak ${fmt(c.clientPeakMiB, 1)} MiB; warm ${c.warmSeconds.toFixed(3)} s)` : 'containerd not measured'}, floor ${f.toFixed(2)} s, storage floor ${sf.toFixed(2)} s, gunzip+untar ${uf.toFixed(2)} s`);
    }

    log('');
    log('timed: skiff = ImageService.pull in a worker process (fetch, verify, unpack), as skiffd does it;');
    log('       containerd = `ctr images pull --plain-http` from spawn to exit (1.x: ctr fetches into containerd, which unpacks');
    log('       into its overlayfs snapshotter; 2.x: containerd\'s transfer service fetches and unpacks). Each run: fresh roots, a fresh daemon that first pulls a small');
    log('       busybox image (untimed, as a running daemon has pulled its pause image), page cache dropped.');
    log('       warm = the same pull again right after, the image already there (skiff: same worker; containerd: ctr again).');
    log('       floor = the blobs (read once after the cache drop, so from the page cache) copied to the same disk and');
    log(`       gunzipped and untarred by ${path.basename(floorGunzip())} and GNU tar, ${image.layers.length} layers at once, into fresh dirs; then the copies fsynced.`);
    log('       storage floor = the same with no inflate at all: each blob copied while GNU tar untars the layer gunzipped');
    log('       beforehand (untimed; both read from the page cache), then the copies fsynced: what no inflate, however fast, goes below.');
    log('       gunzip+untar = the blobs gunzipped and untarred only, no copy kept and nothing synced (a puller that keeps no blob).');
    log('RSS growth = peak RSS during the pull (VmHWM, reset before it) - RSS before it (skiff: after a full GC).');
    const st = { skiff: summarize(skiff.map((s) => s.seconds)), floor: summarize(floor), storeFloor: summarize(storeFloor), untarFloor: summarize(untarFloor) };
    const growth = { skiff: median(skiff.map((s) => s.growthMiB)) };
    const peak = { skiff: median(skiff.map((s) => s.peakMiB)) };
    const warm = { skiff: summarize(skiff.map((s) => s.warmSeconds)) };
    const cd = containerd.length
      ? {
          st: summarize(containerd.map((s) => s.seconds)),
          growth: median(containerd.map((s) => s.growthMiB)),
          peak: median(containerd.map((s) => s.peakMiB)),
          warm: summarize(containerd.map((s) => s.warmSeconds)),
          clientPeak: median(containerd.map((s) => s.clientPeakMiB ?? NaN)),
        }
      : null;
    const row = (name: string, s: Summary, g: number, p: number) => [name, String(s.n), fmt(s.median), fmt(s.p99), fmt(s.min), fmt(s.max), fmt(g, 1), fmt(p, 1)];
    printTable(
      ['puller', 'runs', 'median s', 'p99 s', 'min s', 'max s', 'RSS growth MiB', 'peak RSS MiB'],
      [
        row('skiff (worker)', st.skiff, growth.skiff, peak.skiff),
        ...(cd ? [row('containerd', cd.st, cd.growth, cd.peak)] : []),
        [...row('floor', st.floor, NaN, NaN).slice(0, 6), '-', '-'],
        [...row('storage floor', st.storeFloor, NaN, NaN).slice(0, 6), '-', '-'],
        [...row('gunzip+untar', st.untarFloor, NaN, NaN).slice(0, 6), '-', '-'],
      ],
    );
    const ratio = cd ? st.skiff.median / cd.st.median : null;
    const floorRatio = st.skiff.median / st.floor.median;
    const mbps = (s: number) => (compressed / 1e6 / s).toFixed(0);
    if (cd && ratio !== null) log(`ratio skiff/containerd (medians): ${fmt(ratio, 3)}  (${mbps(st.skiff.median)} vs ${mbps(cd.st.median)} MB/s of compressed image)`);
    else log(`containerd: not measured (${absent})`);
    log(`ratio skiff/floor (medians): ${fmt(floorRatio, 3)}  (floor ${mbps(st.floor.median)} MB/s${cd ? `; containerd/floor ${fmt(cd.st.median / st.floor.median, 3)}` : ''})`);
    const warmRatio = cd ? warm.skiff.median / cd.warm.median : null;
    log(`warm pull (medians): skiff ${fmt(warm.skiff.median * 1000)} ms (p99 ${fmt(warm.skiff.p99 * 1000)})${cd && warmRatio !== null ? `, containerd ${fmt(cd.warm.median * 1000)} ms (p99 ${fmt(cd.warm.p99 * 1000)}; ctr's start included): ratio ${fmt(warmRatio, 3)}` : ''}`);
    if (cd) log(`ctr client peak RSS: median ${fmt(cd.clientPeak, 1)} MiB`);
    // The floors are plain tools in pipes (tee, gzip, tar: a process and two pipe copies per
    // layer), not a bound: a puller may come in under them, as skiff-unpack does.
    if (cd) log(`half of containerd's time is ${fmt(cd.st.median / 2)} s; the storage floor (no inflate) is ${fmt(st.storeFloor.median)} s, gunzip+untar ${fmt(st.untarFloor.median)} s`);
    log(`targets: pull time <= half of containerd's: ${ratio === null ? 'not measured' : ratio <= 0.5 ? 'met' : 'MISSED'}; within ${FLOOR_TARGET}x the floor: ${floorRatio <= FLOOR_TARGET ? 'met' : 'MISSED'}; skiff RSS growth < ${RSS_TARGET_MIB} MiB: ${growth.skiff < RSS_TARGET_MIB ? 'met' : 'MISSED'}`);

    result = {
      suite: 'pull',
      peers: { containerd: peer?.version ?? null },
      skiff_s: round(st.skiff.median),
      containerd_s: cd ? round(cd.st.median) : null,
      ratio: ratio === null ? null : round(ratio),
      floor_s: round(st.floor.median),
      floor_ratio: round(floorRatio),
      store_floor_s: round(st.storeFloor.median),
      gunzip_untar_s: round(st.untarFloor.median),
      skiff_warm_s: round(warm.skiff.median, 4),
      containerd_warm_s: cd ? round(cd.warm.median, 4) : null,
      warm_ratio: warmRatio === null ? null : round(warmRatio),
      skiffd_rss_growth_mib: round(growth.skiff, 1),
    };
  } finally {
    await cleanups.run(log);
  }
  console.log(JSON.stringify(result));
}

/** TestRegistry.start() with its throwaway storage inside dir (it takes os.tmpdir() as it starts). */
function startRegistryUnder(dir: string): Promise<TestRegistry> {
  const saved = process.env.TMPDIR;
  process.env.TMPDIR = dir;
  try {
    return TestRegistry.start();
  } finally {
    if (saved === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = saved;
  }
}

// ---- the image ----------------------------------------------------------

/** One tar entry of a bench layer: a header and, for a regular file, its bytes. */
interface LayerEntry {
  header: Partial<tar.Header> & { name: string };
  body?: Buffer;
}

interface LayerSpec {
  description: string;
  entries: (c: Content) => Generator<LayerEntry>;
}

interface BuiltLayer {
  description: string;
  file: string;
  digest: string;
  diffId: string;
  size: number;
  tarSize: number;
}

/**
 * File contents that do not compress to nothing: random bytes, copies of the
 * busybox binary (compresses about 2:1, like real executables), a mix of both,
 * and text. Sizes come from a seeded generator so the image's shape is stable.
 */
class Content {
  private seed = 0x5eed;
  constructor(readonly busybox: Buffer, readonly applets: string[]) {}

  /** A uniform number in [0, 1) (mulberry32). */
  next(): number {
    this.seed = (this.seed + 0x6d2b79f5) | 0;
    let t = Math.imul(this.seed ^ (this.seed >>> 15), 1 | this.seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  between(lo: number, hi: number): number {
    return Math.floor(lo + this.next() * (hi - lo));
  }

  random(n: number): Buffer {
    return randomBytes(n);
  }

  binary(n: number, offset = 0): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let o = 0; o < n; ) {
      const from = (offset + o) % this.busybox.length;
      o += this.busybox.copy(b, o, from, Math.min(this.busybox.length, from + n - o));
    }
    return b;
  }

  /** 16 KiB runs of busybox and random bytes, alternating. */
  mixed(n: number): Buffer {
    const b = this.binary(n, this.between(0, this.busybox.length));
    for (let o = 16 * KiB; o < n; o += 32 * KiB) randomFillSync(b, o, Math.min(16 * KiB, n - o));
    return b;
  }

  text(n: number): Buffer {
    const words = ['listen', 'timeout', 'worker', 'cache', 'path', 'enabled', 'level', 'max', 'retry', 'buffer'];
    let s = '';
    while (s.length < n) s += `${words[this.between(0, words.length)]}_${this.between(0, 1000)} = ${this.random(6).toString('hex')}\n`;
    return Buffer.from(s.slice(0, n));
  }
}

const dir = (name: string): LayerEntry => ({ header: { name: `${name}/`, type: 'directory', mode: 0o755 } });
const file = (name: string, body: Buffer, mode = 0o644): LayerEntry => ({ header: { name, type: 'file', mode, size: body.length }, body });
const symlink = (name: string, target: string): LayerEntry => ({ header: { name, type: 'symlink', linkname: target, mode: 0o777 } });
const hardlink = (name: string, target: string): LayerEntry => ({ header: { name, type: 'link', linkname: target, mode: 0o644 } });
const whiteout = (name: string): LayerEntry => file(name, Buffer.alloc(0));

// About 200 MB compressed over 8 layers of varied size, one of them ~80 MB.
const LAYERS: LayerSpec[] = [
  {
    description: 'base: busybox, its applet links, 8 libraries',
    *entries(c) {
      for (const d of ['bin', 'etc', 'lib', 'usr', 'usr/bin', 'usr/lib', 'tmp', 'root', 'var', 'var/log']) yield dir(d);
      yield file('bin/busybox', c.busybox, 0o755);
      for (const a of c.applets) yield symlink(`bin/${a}`, 'busybox');
      yield file('etc/passwd', Buffer.from('root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n'));
      yield file('etc/group', Buffer.from('root:x:0:\nnogroup:x:65534:\n'));
      for (let i = 0; i < 8; i++) yield file(`usr/lib/libbench${i}.so.1`, c.mixed(c.between(384 * KiB, 768 * KiB)), 0o755);
    },
  },
  {
    description: 'big: 10 data files of 8 MiB',
    *entries(c) {
      yield dir('opt');
      yield dir('opt/data');
      for (let i = 0; i < 9; i++) yield file(`opt/data/part-${i}.bin`, c.random(8 * MiB));
      yield file('opt/data/part-9.bin', c.mixed(8 * MiB));
    },
  },
  {
    description: 'small files: 3000 of 1-16 KiB in 60 directories',
    *entries(c) {
      yield dir('usr/share');
      yield dir('usr/share/bench');
      for (let d = 0; d < 60; d++) {
        const dn = `usr/share/bench/d${String(d).padStart(2, '0')}`;
        yield dir(dn);
        for (let f = 0; f < 50; f++) {
          const n = c.between(KiB, 16 * KiB);
          yield file(`${dn}/f${String(f).padStart(3, '0')}`, f % 3 === 0 ? c.binary(n, c.between(0, c.busybox.length)) : c.random(n));
        }
      }
    },
  },
  {
    description: 'libraries: 40 of 0.6-1.2 MiB',
    *entries(c) {
      yield dir('usr/lib/bench');
      for (let i = 0; i < 40; i++) yield file(`usr/lib/bench/lib${i}.so`, i % 4 === 0 ? c.mixed(c.between(600 * KiB, 1200 * KiB)) : c.random(c.between(600 * KiB, 1200 * KiB)), 0o755);
    },
  },
  {
    description: 'binaries: 10 busybox copies, 8 data files of 2 MiB',
    *entries(c) {
      for (let i = 0; i < 10; i++) yield file(`usr/bin/tool${i}`, c.busybox, 0o755);
      yield dir('usr/share/data');
      for (let i = 0; i < 8; i++) yield file(`usr/share/data/blob${i}`, c.random(2 * MiB));
    },
  },
  {
    description: 'assets: 12 files of 2 MiB',
    *entries(c) {
      yield dir('srv');
      yield dir('srv/assets');
      for (let i = 0; i < 12; i++) yield file(`srv/assets/asset${i}.dat`, c.random(2 * MiB));
    },
  },
  {
    description: 'update: whiteouts, an opaque dir, hard links, 7 MiB',
    *entries(c) {
      yield dir('usr/share/bench/d00');
      yield whiteout('usr/share/bench/d00/.wh.f000');
      yield whiteout('usr/share/bench/d00/.wh.f001');
      yield dir('usr/share/bench/d01');
      yield whiteout('usr/share/bench/d01/.wh..wh..opq');
      yield file('usr/share/bench/d01/replaced', c.random(MiB));
      yield dir('opt/update');
      yield file('opt/update/data.bin', c.random(6 * MiB));
      yield hardlink('opt/update/data-link.bin', 'opt/update/data.bin');
    },
  },
  {
    description: 'config: 100 text files',
    *entries(c) {
      yield dir('etc/bench');
      for (let i = 0; i < 100; i++) yield file(`etc/bench/conf${i}.toml`, c.text(c.between(2 * KiB, 20 * KiB)));
    },
  },
];

/** Streams one layer's entries through tar and gzip into file; hashes both. */
async function buildLayer(spec: LayerSpec, content: Content, blobsDir: string, index: number): Promise<BuiltLayer> {
  const file = path.join(blobsDir, `layer-${index}.tar.gz`);
  const diff = createHash('sha256');
  const blob = createHash('sha256');
  let tarSize = 0;
  let size = 0;
  const pack = tar.pack();
  const writing = pipeline(
    pack,
    new Transform({
      transform(chunk: Buffer, _e, cb) {
        diff.update(chunk);
        tarSize += chunk.length;
        cb(null, chunk);
      },
    }),
    createGzip({ level: GZIP_LEVEL }),
    new Transform({
      transform(chunk: Buffer, _e, cb) {
        blob.update(chunk);
        size += chunk.length;
        cb(null, chunk);
      },
    }),
    fs.createWriteStream(file),
  );
  const failed = writing.then(() => new Promise<never>(() => undefined)); // rejects with the pipeline
  const mtime = new Date('2025-01-01T00:00:00Z');
  for (const e of spec.entries(content)) {
    const header = { uid: 0, gid: 0, mtime, ...e.header };
    await Promise.race([failed, new Promise<void>((res, rej) => pack.entry(header, e.body ?? Buffer.alloc(0), (err) => (err ? rej(err) : res())))]);
  }
  pack.finalize();
  await writing;
  return { description: spec.description, file, digest: `sha256:${blob.digest('hex')}`, diffId: `sha256:${diff.digest('hex')}`, size, tarSize };
}

/** Builds the image's layers and config, pushes them; returns the layers. */
async function buildAndPushImage(registry: TestRegistry, blobsDir: string, signal: AbortSignal): Promise<{ layers: BuiltLayer[] }> {
  fs.mkdirSync(blobsDir, { recursive: true });
  const applets = execFileSync(BUSYBOX, ['--list']).toString().split('\n').filter((a) => a && a !== 'busybox');
  const content = new Content(fs.readFileSync(BUSYBOX), applets);
  // Two at a time: gzip runs in libuv's pool while the next layer's bytes are made.
  const layers: BuiltLayer[] = new Array(LAYERS.length);
  let next = 0;
  await Promise.all(
    [0, 1].map(async () => {
      while (next < LAYERS.length && !signal.aborted) {
        const i = next++;
        layers[i] = await buildLayer(LAYERS[i], content, blobsDir, i);
      }
    }),
  );
  if (signal.aborted) throw signal.reason;

  const platform = hostPlatform();
  const config = Buffer.from(
    JSON.stringify({
      created: '2025-01-01T00:00:00Z',
      architecture: platform.architecture,
      ...(platform.variant ? { variant: platform.variant } : {}),
      os: platform.os,
      config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['/bin/sh'], WorkingDir: '/' },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
      history: layers.map((l) => ({ created: '2025-01-01T00:00:00Z', created_by: `skiff bench: ${l.description}` })),
    }),
  );
  for (const l of layers) {
    const data = fs.readFileSync(l.file);
    const pushed = await registry.pushBlob(REPOSITORY, data);
    if (pushed !== l.digest) throw new Error(`layer ${l.file}: pushed as ${pushed}, built as ${l.digest}`);
  }
  await registry.pushBlob(REPOSITORY, config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: layers.map((l) => ({ mediaType: LAYER_MEDIA, digest: l.digest, size: l.size })),
    }),
  );
  await registry.pushManifest(REPOSITORY, TAG, manifest, 'application/vnd.oci.image.manifest.v1+json');
  return { layers };
}

// ---- skiff ----------------------------------------------------------------

/** The Node.js flags bin/skiffd runs skiffd with, so that the worker pulls as skiffd would. */
function skiffdNodeFlags(): string[] {
  const launcher = fs.readFileSync(path.join(__dirname, '../../../bin/skiffd'), 'utf8');
  const m = /^node_flags="([^"]*)"$/m.exec(launcher);
  if (!m) throw new Error('bin/skiffd: no node_flags line');
  return m[1].split(/\s+/).filter(Boolean);
}

/** One cold pull by an ImageService on a fresh root in a fresh worker process. */
async function skiffRun(bench: Bench, i: number): Promise<Sample> {
  const root = path.join(bench.tmp, `skiff-${i}`);
  const args = ['--expose-gc', ...skiffdNodeFlags(), WORKER, root, bench.ref, bench.hostsDir, bench.warmupRef];
  const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: '131072', ...process.env } });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  child.once('error', () => undefined); // surfaces as a closed stdout below
  child.stdin!.on('error', () => undefined); // EPIPE from a dead worker: reported by the read
  const lines = readline.createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const nextMessage = async (ms: number, what: string): Promise<Record<string, unknown>> => {
    const line = await withTimeout(lines.next(), ms, `skiff worker: ${what}`);
    if (line.done) throw new Error(`skiff worker exited (${child.exitCode ?? child.signalCode}) during ${what}: ${stderr.trim() || '(no stderr)'}`);
    const msg: unknown = JSON.parse(line.value);
    if (typeof msg !== 'object' || msg === null) throw new Error(`skiff worker: unexpected line ${line.value}`);
    if (isWorkerError(msg)) throw new Error(`skiff worker: ${what}: ${msg.error}`);
    return msg as Record<string, unknown>;
  };
  try {
    const ready = await nextMessage(START_TIMEOUT_MS, 'start');
    if (!isWorkerReady(ready)) throw new Error(`skiff worker: expected the ready line, got ${JSON.stringify(ready)}`);
    dropCaches();
    warmRegistry(bench);
    child.stdin!.write('pull\n');
    const res = await nextMessage(PULL_TIMEOUT_MS, 'pull');
    if (!isWorkerResult(res)) throw new Error(`skiff worker: expected the result line, got ${JSON.stringify(res)}`);
    if (res.chainIds.at(-1) !== bench.topChainId) throw new Error(`skiff pulled top layer ${res.chainIds.at(-1)}, the image's is ${bench.topChainId}`);
    child.stdin!.write('pull\n');
    const warm = await nextMessage(PULL_TIMEOUT_MS, 'warm pull');
    if (!isWorkerResult(warm)) throw new Error(`skiff worker: expected the warm result line, got ${JSON.stringify(warm)}`);
    return { seconds: res.seconds, warmSeconds: warm.seconds, growthMiB: (res.hwmKiB - res.rssBeforeKiB) / KiB, peakMiB: res.hwmKiB / KiB };
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      child.stdin!.end();
      await withTimeout(closed, STOP_TIMEOUT_MS, 'skiff worker exit').catch(() => child.kill('SIGKILL'));
    }
    await closed;
    unmountUnder(root);
    fs.rmSync(root, { recursive: true, force: true });
  }
}

function isWorkerReady(m: object): m is PullWorkerReady {
  return (m as PullWorkerReady).ready === true;
}

function isWorkerResult(m: object): m is PullWorkerResult {
  const r = m as PullWorkerResult;
  return typeof r.seconds === 'number' && typeof r.rssBeforeKiB === 'number' && typeof r.hwmKiB === 'number' && Array.isArray(r.chainIds);
}

function isWorkerError(m: object): m is PullWorkerError {
  return typeof (m as PullWorkerError).error === 'string';
}

// ---- containerd -----------------------------------------------------------

interface Containerd {
  proc: ChildProcess;
  pid: number;
  sock: string;
  stop: () => Promise<void>;
}

/** containerd on its own root, state and socket under dir; nothing but what a pull needs. */
async function startContainerd(dir: string): Promise<Containerd> {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const sock = path.join(dir, 'containerd.sock');
  const config = path.join(dir, 'config.toml');
  fs.writeFileSync(
    config,
    `version = 2
root = "${dir}/root"
state = "${dir}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "${sock}"
[ttrpc]
  address = "${sock}.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "${dir}/opt"
`,
  );
  const logFile = path.join(dir, 'containerd.log');
  const logFd = fs.openSync(logFile, 'a');
  const proc = spawn(CONTAINERD, ['--config', config], { stdio: ['ignore', logFd, logFd] });
  fs.closeSync(logFd);
  proc.once('error', () => undefined); // seen as exitCode below
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const alive = () => proc.exitCode === null && proc.signalCode === null;
  const stop = async () => {
    if (alive()) {
      proc.kill('SIGTERM');
      await withTimeout(exited, STOP_TIMEOUT_MS, 'containerd exit').catch(() => proc.kill('SIGKILL'));
      if (proc.pid !== undefined) await exited;
    }
    unmountUnder(dir);
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      if (!alive() || proc.pid === undefined) throw new Error(`containerd exited at start: ${tail(logFile)}`);
      try {
        await execFileAsync(CTR, ['--address', sock, 'version'], { timeout: 2000 });
        break;
      } catch {
        if (Date.now() > deadline) throw new Error(`containerd did not answer on ${sock}: ${tail(logFile)}`);
        await sleep(50);
      }
    }
    return { proc, pid: proc.pid, sock, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** One cold pull by a fresh containerd on a fresh root. */
async function containerdRun(bench: Bench, i: number): Promise<Sample> {
  const d = await startContainerd(path.join(bench.tmp, `containerd-${i}`));
  try {
    await execFileAsync(CTR, ['--address', d.sock, '-n', CONTAINERD_NS, 'images', 'pull', '--plain-http', bench.warmupRef], { timeout: START_TIMEOUT_MS });
    dropCaches();
    warmRegistry(bench);
    // Loads ctr's own pages again, as the skiff worker's are (its process runs): cold image data only.
    await execFileAsync(CTR, ['--address', d.sock, 'version']);
    fs.writeFileSync(`/proc/${d.pid}/clear_refs`, '5'); // peak := current (see pull_worker.ts)
    const rssBefore = statusKiB(d.pid, 'VmRSS');
    const pull = await runCtrPull(d.sock, bench.ref);
    const hwm = statusKiB(d.pid, 'VmHWM');
    // Unpacked: the image's top layer is a committed snapshot named by its chain ID. (2.x's
    // ctr prints the chain ID only with --local, which fetches in ctr instead of the daemon.)
    const { stdout: snapshots } = await execFileAsync(CTR, ['--address', d.sock, '-n', CONTAINERD_NS, 'snapshots', 'ls']);
    if (!snapshots.split('\n').some((l) => l.split(/\s+/)[0] === bench.topChainId))
      throw new Error(`ctr pull ended without the image's top layer ${bench.topChainId} unpacked: ${pull.stdout.slice(-1000)}`);
    const warm = await runCtrPull(d.sock, bench.ref);
    return { seconds: pull.seconds, warmSeconds: warm.seconds, growthMiB: (hwm - rssBefore) / KiB, peakMiB: hwm / KiB, clientPeakMiB: pull.clientHwmKiB / KiB };
  } finally {
    await d.stop();
  }
}

/** `ctr images pull` from spawn to exit; samples the client's peak RSS while it runs. */
function runCtrPull(sock: string, ref: string): Promise<{ seconds: number; stdout: string; clientHwmKiB: number }> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    let seconds = 0;
    let out = '';
    let hwm = 0;
    const child = spawn(CTR, ['--address', sock, '-n', CONTAINERD_NS, 'images', 'pull', '--plain-http', ref], { stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (d: Buffer) => (out = (out + d.toString()).slice(-16000));
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    const sample = () => {
      try {
        if (child.pid !== undefined) hwm = Math.max(hwm, statusKiB(child.pid, 'VmHWM'));
      } catch {
        // exited between two samples
      }
    };
    const timer = setInterval(sample, 20);
    const deadline = setTimeout(() => child.kill('SIGKILL'), PULL_TIMEOUT_MS);
    child.on('exit', () => (seconds = Number(process.hrtime.bigint() - t0) / 1e9));
    child.on('error', (e) => {
      clearInterval(timer);
      clearTimeout(deadline);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearInterval(timer);
      clearTimeout(deadline);
      if (code === 0) resolve({ seconds, stdout: out, clientHwmKiB: hwm });
      else reject(new Error(`ctr images pull: exit ${code ?? signal}: ${out.slice(-2000).trim()}`));
    });
  });
}

// ---- the floor ------------------------------------------------------------

function floorGunzip(): string {
  return isExecutable(PIGZ) ? PIGZ : GZIP;
}

/** Each blob gunzipped into dir, once: the storage floor's input. */
async function inflateOnce(layers: BuiltLayer[], dir: string): Promise<string[]> {
  fs.mkdirSync(dir);
  const tars = layers.map((_, n) => path.join(dir, `layer-${n}.tar`));
  for (const [n, l] of layers.entries()) await execFileAsync(BASH, ['-c', '"$1" -dc < "$2" > "$3"', 'inflate', floorGunzip(), l.file, tars[n]]);
  return tars;
}

/**
 * What a pull cannot do with less: each blob stored on the disk (tee) and gunzipped and
 * untarred into a fresh dir by plain tools, all layers at once (each layer is a dir of
 * its own, as skiff's and containerd's snapshots are), then the stored copies fsynced
 * (`sync FILE...`), as skiff and containerd make every blob they keep durable before
 * they commit it. The blobs come from the page cache: no network, no digest checks.
 * tar runs as root, so it sets owners, modes and times as skiff does. `store` leaves
 * out the inflate too: each blob is copied while tar reads the layer gunzipped
 * beforehand, what storing the blobs and the files alone takes. `untar` keeps no copy
 * and syncs nothing: gunzip and untar alone, the floor of a puller that keeps no blob.
 */
async function floorRun(bench: Bench, i: number, kind: 'inflate' | 'store' | 'untar'): Promise<number> {
  const dir = path.join(bench.tmp, `floor-${kind}-${i}`);
  fs.mkdirSync(dir);
  try {
    const copies = bench.layers.map((_, n) => path.join(dir, `blob-${n}`));
    const dests = bench.layers.map((_, n) => path.join(dir, `layer-${n}`));
    for (const d of dests) fs.mkdirSync(d);
    dropCaches();
    for (const l of bench.layers) readWhole(l.file);
    if (kind === 'store') for (const t of bench.tars) readWhole(t);
    const gunzip = floorGunzip();
    const script = {
      inflate: 'set -o pipefail; tee "$1" < "$2" | "$3" -dc | "$4" -xf - -C "$5"',
      store: 'cat "$2" > "$1" & copy=$!; "$4" -xf "$3" -C "$5" && wait $copy',
      untar: 'set -o pipefail; "$3" -dc < "$2" | "$4" -xf - -C "$5"',
    }[kind];
    const t0 = process.hrtime.bigint();
    await Promise.all(
      bench.layers.map((l, n) =>
        execFileAsync(BASH, ['-c', script, 'floor', copies[n], l.file, kind === 'store' ? bench.tars[n] : gunzip, TAR, dests[n]], {
          timeout: PULL_TIMEOUT_MS,
        }),
      ),
    );
    if (kind !== 'untar') await execFileAsync('sync', copies);
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const busybox = path.join(dests[0], 'bin/busybox');
    if (!fs.existsSync(busybox)) throw new Error(`floor: ${busybox} is missing after the untar`);
    return seconds;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Reads a file to its end (into the page cache), keeping nothing. */
function readWhole(file: string): void {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(MiB);
    while (fs.readSync(fd, buf) > 0);
  } finally {
    fs.closeSync(fd);
  }
}

// ---- host ---------------------------------------------------------------

/**
 * Reads the registry's blobs into the page cache after a drop: the loopback registry
 * shares the puller's disk, and reading its blobs cold would race the puller's writes,
 * which a registry across a network does not. The floor reads its blobs warm too.
 */
function warmRegistry(bench: Bench): void {
  const blobs = fs
    .readdirSync(bench.registryStorage, { recursive: true, encoding: 'utf8' })
    .filter((p) => p.startsWith('docker/registry/v2/blobs/') && path.basename(p) === 'data')
    .map((p) => path.join(bench.registryStorage, p));
  if (blobs.length < bench.layers.length) throw new Error(`the registry's blobs: ${blobs.length} found under ${bench.registryStorage}, ${bench.layers.length} layers pushed`);
  for (const b of blobs) readWhole(b);
}

/** Writes dirty pages back, then drops the page cache, dentries and inodes. */
function dropCaches(): void {
  execFileSync('sync');
  fs.writeFileSync('/proc/sys/vm/drop_caches', '3');
}

function statusKiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB$`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`/proc/${pid}/status has no ${field} line`);
  return Number(m[1]);
}

function tail(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').slice(-2000);
  } catch {
    return '(no log)';
  }
}

const mb = (bytes: number) => (bytes / 1e6).toFixed(1);

