// `npm run e2e:node`: Kubernetes' node conformance suite (test/e2e_node of Debian's
// kubernetes 1.20 source, [NodeConformance] specs, a real kubelet started by the suite)
// against a throwaway skiffd, then against a throwaway containerd 1.6 on the same machine,
// compared spec by spec. Exit status 1 when a spec fails on skiff that passes on
// containerd (or, with --runtimes skiff, fails at all) and is not in known_failures.ts.
//
// Usage: npm run e2e:node -- [--runtimes skiff,containerd] [--parallel] [--focus RE]
//        [--skip RE] [--focus-failed JUNIT] [--report-dir DIR] [--report-only]
//        [-- e2e_node.test flags]
// --parallel runs the runtimes' suites at the same time instead of one after the other.
// --focus-failed runs the specs that failed in an earlier JUnit report.
// --report-only compares the JUnit reports already in the report dir, running nothing.
//
// The process runs as the supervisor in the host's network namespace (makes a namespace
// per runtime, records and sweeps what the run makes: host.ts, compares the reports), and,
// inside each runtime's network, mount and cgroup namespaces, as that runtime's runner
// (registry, images, runtime, kubelet through e2e_node.test).
import { ChildProcess, execFileSync, spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { TestRegistry } from '../fixtures/registry';
import { kubeletWrapper, makeNetns, moveToCgroup, NODE_CGROUPS, NODE_IP, privateLogDirs, remountCgroups, runnerCommand, sweep, WORK, writeLedger } from './host';
import { NETCAT_DEB_DIR, pushNodeConformanceImages, UNAVAILABLE } from './images';
import { KNOWN_FAILURES } from './known_failures';
import { counts, failsOnlyOn, readJunit, RunResult } from './results';
import { RuntimeName, startContainerd, startSkiff, TestRuntime } from './runtimes';

const KUBE_BIN = path.join(process.env.SKIFF_KUBE_CACHE ?? '/var/cache/skiff/kube', 'bin');
const E2E_NODE = path.join(KUBE_BIN, 'e2e_node.test');
const INNER_ENV = 'SKIFF_E2E_NODE_RUNNER';
const DEFAULT_FOCUS = '\\[NodeConformance\\]';
/** Specs that cannot pass offline on any runtime, skipped unless --skip is given (then
 * that is the whole skip list); each takes long to fail. */
export const OFFLINE_SKIPS: Record<string, string> = {
  'should be able to pull from private registry with secret': 'pulls gcr.io/authenticated-image-pulling/alpine:3.7 with Google credentials; fails after 3 tries of 5 minutes',
  'should be able to pull from private registry with credential provider': 'the same image through GCE metadata credentials; 15 minutes to fail',
};
const DEFAULT_SKIP = Object.keys(OFFLINE_SKIPS).join('|');

interface Options {
  runtimes: RuntimeName[];
  focus: string;
  skip: string;
  reportDir: string;
  /** Only read the JUnit reports already in reportDir and compare them (no run). */
  reportOnly: boolean;
  /** Run the runtimes' suites at the same time (each in its own network namespace). */
  parallel: boolean;
  extra: string[];
}

function parseArgs(argv: string[]): Options {
  const o: Options = { runtimes: ['skiff', 'containerd'], focus: DEFAULT_FOCUS, skip: DEFAULT_SKIP, reportDir: process.env.E2E_NODE_REPORT_DIR ?? '/tmp/skiff-e2e-node-report', reportOnly: false, parallel: false, extra: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      o.extra = argv.slice(i + 1);
      break;
    } else if (a === '--runtimes') o.runtimes = argv[++i].split(',').map((r) => r.trim() as RuntimeName);
    else if (a === '--focus') o.focus = argv[++i];
    else if (a === '--skip') o.skip = argv[++i];
    else if (a === '--report-dir') o.reportDir = path.resolve(argv[++i]);
    else if (a === '--report-only') o.reportOnly = true;
    else if (a === '--parallel') o.parallel = true;
    else if (a === '--focus-failed') o.focus = failedFocus(argv[++i]);
    else throw new Error(`unknown argument ${a} (usage: [--runtimes skiff,containerd] [--parallel] [--focus RE] [--skip RE] [--focus-failed JUNIT] [--report-dir DIR] [--report-only] [-- e2e_node.test flags])`);
  }
  for (const r of o.runtimes) if (r !== 'skiff' && r !== 'containerd') throw new Error(`--runtimes: unknown runtime ${r}`);
  return o;
}

/** A focus matching exactly the specs that failed in a JUnit report (to run them again,
 * or on the other runtime). */
function failedFocus(junit: string): string {
  const failed = [...readJunit(junit, /./).specs].filter(([, o]) => o === 'failed').map(([n]) => n);
  if (!failed.length) throw new Error(`--focus-failed: no failed spec in ${junit}`);
  return failed.map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|');
}

const say = (s: string) => console.log(`e2e:node: ${s}`);

// ---- the supervisor (host network namespace) ----

async function supervise(argv: string[]): Promise<number> {
  const o = parseArgs(argv); // fail on bad usage before touching the host
  if (o.reportOnly) return reportFromFiles(o, false);
  if (!fs.existsSync(E2E_NODE)) throw new Error(`${E2E_NODE} missing: run hack/build-e2e-node.sh`);
  sweep((s) => say(`an earlier run left things behind: ${s}`));
  writeLedger();
  // The runners have no network: the Debian packages the images take files from are fetched here.
  for (const rt of o.runtimes) {
    for (const [dir, pkg] of [['deb', 'busybox'], [NETCAT_DEB_DIR, 'netcat-openbsd']]) {
      fs.mkdirSync(path.join(imageWork(rt), dir), { recursive: true });
      execFileSync('apt-get', ['download', pkg], { cwd: path.join(imageWork(rt), dir), stdio: 'ignore' });
    }
  }
  const children = new Set<ChildProcess>();
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    say(`${sig}: stopping the run and removing what it made`);
    for (const c of children) c.kill('SIGTERM');
    setTimeout(() => children.forEach((c) => c.kill('SIGKILL')), 30_000).unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const runRuntime = (rt: RuntimeName) =>
    new Promise<void>((resolve) => {
      makeNetns(rt);
      const [cmd, ...args] = runnerCommand(rt, [process.execPath, __filename, ...argv]);
      // Its own process group: a terminal's ^C reaches the supervisor, which tells it.
      const child = spawn(cmd, args, {
        stdio: 'inherit',
        detached: true,
        env: { ...process.env, [INNER_ENV]: rt, TMPDIR: path.join(WORK, 'tmp') },
      });
      children.add(child);
      child.on('close', () => {
        children.delete(child);
        resolve();
      });
    });
  try {
    fs.mkdirSync(path.join(WORK, 'tmp'), { recursive: true });
    if (o.parallel) await Promise.all(o.runtimes.map(runRuntime));
    else for (const rt of o.runtimes) if (!interrupted) await runRuntime(rt);
  } finally {
    sweep(say);
    say("removed the run's processes, mounts, cgroups, network namespaces and files");
  }
  return reportFromFiles(o, interrupted);
}

// ---- the runner (inside a runtime's network namespace) ----

/** A PATH without systemd-run: e2e_node starts kubelet through it when it exists, and
 * this host's PID 1 is not systemd. */
function pathWithoutSystemdRun(runtime: RuntimeName): string {
  const dir = path.join(WORK, `bin-${runtime}`);
  fs.mkdirSync(dir, { recursive: true });
  for (const n of fs.readdirSync('/usr/bin')) if (n !== 'systemd-run') fs.symlinkSync(path.join('/usr/bin', n), path.join(dir, n));
  return ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', dir].join(':');
}

/** e2e_node.test's --k8s-bin-dir: the kubelet it runs (kubeletWrapper). */
const kubeBinDir = (runtime: RuntimeName) => path.join(WORK, `kube-bin-${runtime}`);

/** Where a runner builds its images (each runtime's runner builds its own: they may run at once). */
const imageWork = (runtime: RuntimeName) => path.join(WORK, `images-${runtime}`);

/** What a runner leaves beside e2e_node.test's JUnit report for the supervisor's comparison. */
const RUN_FILE = 'run.json';

async function prepull(rt: TestRuntime, images: string[]): Promise<void> {
  for (const image of images) await rt.client.image('PullImage', { image: { image } }, { timeoutMs: 120_000 });
}

let current: ChildProcess | undefined;

/** Run e2e_node.test against a runtime; resolves with the seconds it took. */
function runSuite(rt: TestRuntime, o: Options, envPath: string): Promise<number> {
  const reportDir = path.join(o.reportDir, rt.name);
  const cwd = path.join(WORK, `e2e-${rt.name}`);
  const kubeletRoot = path.join(WORK, `kubelet-${rt.name}`);
  fs.mkdirSync(cwd, { recursive: true });
  const kubeletFlags = [
    '--cgroup-driver=cgroupfs',
    // The runtime's own cgroup root, as the runner sees it (remountCgroups), which also
    // holds e2e_node's --kubelet-cgroups and --system-cgroups (NODE_CGROUPS).
    '--cgroup-root=/',
    `--runtime-cgroups=${NODE_CGROUPS.runtime}`,
    `--root-dir=${kubeletRoot}`,
    `--cert-dir=${path.join(kubeletRoot, 'pki')}`,
    `--volume-plugin-dir=${path.join(kubeletRoot, 'volume-plugins')}`,
    `--node-ip=${NODE_IP}`,
    '--fail-swap-on=false',
    '--runtime-request-timeout=2m',
    ...rt.kubeletFlags,
  ];
  const args = [
    `--ginkgo.focus=${o.focus}`,
    ...(o.skip ? [`--ginkgo.skip=${o.skip}`] : []),
    '--ginkgo.noColor',
    `--k8s-bin-dir=${kubeBinDir(rt.name)}`,
    '--container-runtime=remote',
    `--container-runtime-endpoint=${rt.endpoint}`,
    `--image-service-endpoint=${rt.endpoint}`,
    // The runner pulls every image first through CRI (below); with prepull on, e2e_node
    // would also pull images that cannot be had offline and stop.
    '--prepull-images=false',
    // The node is named by its address: the API server reaches kubelet by the node's
    // Hostname address first, and no resolver here knows a name.
    `--node-name=${NODE_IP}`,
    `--report-dir=${reportDir}`,
    `--report-prefix=${rt.name}`,
    ...kubeletFlags.map((f) => `--kubelet-flags=${f}`),
    ...o.extra,
  ];
  const logFile = path.join(reportDir, 'e2e_node.log');
  const started = Date.now();
  return new Promise((resolve) => {
    const out = fs.openSync(logFile, 'w');
    fs.writeSync(out, `${E2E_NODE} ${args.join(' ')}\n`);
    current = spawn(E2E_NODE, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, PATH: envPath } });
    const write = (d: Buffer) => {
      fs.writeSync(out, d);
      // Progress on the terminal: one line per finished spec and every failure.
      for (const line of d.toString().split('\n')) if (/^(• Failure|Ran \d+|\[Fail\]|SUCCESS!|FAIL!)/.test(line)) process.stdout.write(`[${rt.name}] ${line}\n`);
    };
    current.stdout!.on('data', write);
    current.stderr!.on('data', write);
    current.on('close', () => {
      fs.closeSync(out);
      current = undefined;
      resolve(Math.round((Date.now() - started) / 1000));
    });
  });
}

/** One runtime's part of the run: its registry and images, the runtime, e2e_node.test.
 * The supervisor compares the reports when every runner is done. */
async function runner(name: RuntimeName, argv: string[]): Promise<number> {
  const o = parseArgs(argv);
  const say = (s: string) => console.log(`e2e:node [${name}]: ${s}`);
  const reportDir = path.join(o.reportDir, name);
  fs.rmSync(reportDir, { recursive: true, force: true });
  fs.mkdirSync(reportDir, { recursive: true });
  let stopping = false;
  let rt: TestRuntime | undefined;
  let reg: TestRegistry | undefined;
  process.on('SIGTERM', () => {
    stopping = true;
    if (current?.pid) {
      try {
        process.kill(-current.pid, 'SIGTERM');
      } catch {
        /* gone */
      }
    }
  });
  try {
    remountCgroups();
    moveToCgroup(process.pid, NODE_CGROUPS.system);
    kubeletWrapper(kubeBinDir(name), path.join(KUBE_BIN, 'kubelet'), NODE_CGROUPS.kubelet);
    privateLogDirs(name);
    const envPath = pathWithoutSystemdRun(name);
    reg = await TestRegistry.start();
    say('building and pushing the test images');
    const t0 = Date.now();
    const images = await pushNodeConformanceImages(reg, imageWork(name));
    say(`${images.length} images in ${Math.round((Date.now() - t0) / 1000)} s; not available offline: ${Object.keys(UNAVAILABLE).join(', ')}`);
    if (stopping) return 130;
    rt = name === 'skiff' ? await startSkiff(reg.host) : await startContainerd(reg.host);
    moveToCgroup(rt.pid, NODE_CGROUPS.runtime);
    say(`at ${rt.endpoint}, pulling the images`);
    await prepull(rt, images);
    if (stopping) return 130;
    say(`running e2e_node.test (focus ${o.focus}${o.skip ? `, skip ${o.skip}` : ''}); log ${path.join(reportDir, 'e2e_node.log')}`);
    const seconds = await runSuite(rt, o, envPath);
    fs.writeFileSync(path.join(reportDir, RUN_FILE), JSON.stringify({ seconds, focus: o.focus, skip: o.skip }));
    const c = counts(readJunit(junitOf(o, name), new RegExp(o.focus)));
    say(`${c.passed} passed, ${c.failed} failed, ${c.skipped} skipped in ${seconds} s`);
    await rt.stop();
    if (fs.existsSync(rt.logFile)) fs.copyFileSync(rt.logFile, path.join(reportDir, `${name}.log`));
    rt = undefined;
  } finally {
    await rt?.stop().catch(() => {});
    await reg?.stop();
  }
  return stopping ? 130 : 0;
}

const junitOf = (o: Options, runtime: RuntimeName) => path.join(o.reportDir, runtime, `junit_${runtime}_01.xml`);

/** The comparison of the reports in the report dir: the runners' just now, or (with
 * --report-only) an earlier run's; the runtimes may have been run separately, e.g. with
 * different --skip. */
function reportFromFiles(o: Options, interrupted: boolean): number {
  const results: RunResult[] = o.runtimes.map((rt) => {
    let seconds = 0;
    try {
      seconds = (JSON.parse(fs.readFileSync(path.join(o.reportDir, rt, RUN_FILE), 'utf8')) as { seconds: number }).seconds;
    } catch {
      /* no runner finished this runtime's suite */
    }
    return { runtime: rt, junit: junitOf(o, rt), log: path.join(o.reportDir, rt, 'e2e_node.log'), seconds, ...readJunit(junitOf(o, rt), new RegExp(o.focus)) };
  });
  return report(results, o, interrupted);
}

function report(results: RunResult[], o: Options, interrupted: boolean): number {
  console.log('\n=== node conformance (test/e2e_node, Kubernetes 1.20.2) ===');
  for (const r of results) {
    const c = counts(r);
    console.log(`${r.runtime}: ${c.passed} passed, ${c.failed} failed, ${c.skipped} skipped of ${r.specs.size} (${r.seconds} s); JUnit ${r.junit}; log ${r.log}`);
  }
  const skiff = results.find((r) => r.runtime === 'skiff');
  const peer = results.find((r) => r.runtime === 'containerd');
  let bad: string[] = [];
  if (skiff && peer) {
    const onlySkiff = failsOnlyOn(skiff, peer);
    // known_failures.ts names the ones whose cause is not skiff's (e.g. kubelet's own).
    bad = onlySkiff.filter((n) => !(n in KNOWN_FAILURES));
    console.log(`\nfail on skiff, pass on containerd: ${onlySkiff.length}, of which not in known_failures.ts: ${bad.length}`);
    for (const n of onlySkiff) console.log(n in KNOWN_FAILURES ? `  known ${n}\n        (${KNOWN_FAILURES[n]})` : `  FAIL  ${n}\n        ${skiff.failures.get(n) ?? ''}`);
    const better = failsOnlyOn(peer, skiff);
    console.log(`fail on containerd, pass on skiff: ${better.length}`);
    for (const n of better) console.log(`  ${n}`);
    const both = [...skiff.specs].filter(([n, s]) => s === 'failed' && peer.specs.get(n) === 'failed').map(([n]) => n);
    console.log(`fail on both: ${both.length}`);
    for (const n of both) console.log(`  ${n}`);
  } else if (skiff) {
    const failed = [...skiff.specs].filter(([, s]) => s === 'failed').map(([n]) => n);
    bad = failed.filter((n) => !(n in KNOWN_FAILURES));
    console.log(`\nfailed on skiff: ${failed.length}, of which not in known_failures.ts: ${bad.length}`);
    for (const n of failed) console.log(`  ${n in KNOWN_FAILURES ? 'known' : 'FAIL '} ${n}${n in KNOWN_FAILURES ? ` (${KNOWN_FAILURES[n]})` : `\n        ${skiff.failures.get(n) ?? ''}`}`);
  }
  // Spec by spec: one line each, the outcome on every runtime ("not run": absent from its report).
  const names = [...new Set(results.flatMap((r) => [...r.specs.keys()]))].sort();
  const rows = names.map((n) => [...results.map((r) => r.specs.get(n) ?? 'not run'), n].join('\t'));
  fs.writeFileSync(path.join(o.reportDir, 'comparison.tsv'), [[...results.map((r) => r.runtime), 'spec'].join('\t'), ...rows, ''].join('\n'));
  fs.writeFileSync(
    path.join(o.reportDir, 'summary.json'),
    JSON.stringify({ results: results.map((r) => ({ runtime: r.runtime, ...counts(r), seconds: r.seconds, junit: r.junit, failed: [...r.specs].filter(([, s]) => s === 'failed').map(([n]) => n) })), failOnSkiffOnly: bad }, null, 2),
  );
  console.log(`summary: ${path.join(o.reportDir, 'summary.json')}; spec by spec: ${path.join(o.reportDir, 'comparison.tsv')}`);
  if (interrupted) return 130;
  if (results.length < o.runtimes.length || results.some((r) => r.specs.size === 0)) return 1;
  return bad.length ? 1 : 0;
}

const inner = process.env[INNER_ENV] as RuntimeName | undefined;
(inner ? runner(inner, process.argv.slice(2)) : supervise(process.argv.slice(2))).then(
  (c) => process.exit(c),
  (e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  },
);
