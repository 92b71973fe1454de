// `npm run e2e:node`: Kubernetes' node conformance suite (test/e2e_node of Debian's
// kubernetes 1.20 source, [NodeConformance] specs, a real kubelet started by the suite)
// against a throwaway skiffd, then against a throwaway containerd 1.6 on the same machine,
// compared spec by spec. Exit status 1 when a spec fails on skiff that passes on
// containerd (or, with --runtimes skiff, that is not in known_failures.ts).
//
// Usage: npm run e2e:node -- [--runtimes skiff,containerd] [--focus RE] [--skip RE]
//        [--focus-failed JUNIT] [--report-dir DIR] [--report-only] [-- e2e_node.test flags]
// --focus-failed runs the specs that failed in an earlier JUnit report.
// --report-only compares the JUnit reports already in the report dir, running nothing.
//
// The process runs twice: as the supervisor in the host's network namespace (makes the
// namespace, records and sweeps what the run makes: host.ts), and, inside that namespace,
// as the runner (registry, images, runtimes, e2e_node.test).
import { ChildProcess, execFileSync, spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { TestRegistry } from '../fixtures/registry';
import { CGROUP_ROOT, makeCgroupRoot, makeNetns, NETNS_PATH, NODE_IP, sweep, WORK, writeLedger } from './host';
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
  extra: string[];
}

function parseArgs(argv: string[]): Options {
  const o: Options = { runtimes: ['skiff', 'containerd'], focus: DEFAULT_FOCUS, skip: DEFAULT_SKIP, reportDir: process.env.E2E_NODE_REPORT_DIR ?? '/tmp/skiff-e2e-node-report', reportOnly: false, extra: [] };
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
    else if (a === '--focus-failed') o.focus = failedFocus(argv[++i]);
    else throw new Error(`unknown argument ${a} (usage: [--runtimes skiff,containerd] [--focus RE] [--skip RE] [--report-dir DIR] [--report-only] [-- e2e_node.test flags])`);
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
  if (o.reportOnly) return reportFromFiles(o);
  if (!fs.existsSync(E2E_NODE)) throw new Error(`${E2E_NODE} missing: run hack/build-e2e-node.sh`);
  sweep((s) => say(`an earlier run left things behind: ${s}`));
  writeLedger();
  // The runner has no network: the Debian packages the images take files from are fetched here.
  for (const [dir, pkg] of [['deb', 'busybox'], [NETCAT_DEB_DIR, 'netcat-openbsd']]) {
    fs.mkdirSync(path.join(WORK, 'images', dir), { recursive: true });
    execFileSync('apt-get', ['download', pkg], { cwd: path.join(WORK, 'images', dir), stdio: 'ignore' });
  }
  let child: ChildProcess | undefined;
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    say(`${sig}: stopping the run and removing what it made`);
    child?.kill('SIGTERM');
    setTimeout(() => child?.kill('SIGKILL'), 30_000).unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    makeNetns();
    makeCgroupRoot();
    const code = await new Promise<number>((resolve) => {
      // Its own process group: a terminal's ^C reaches the supervisor, which tells it.
      child = spawn('nsenter', [`--net=${NETNS_PATH}`, '--', process.execPath, __filename, ...argv], {
        stdio: 'inherit',
        detached: true,
        env: { ...process.env, [INNER_ENV]: '1', TMPDIR: path.join(WORK, 'tmp') },
      });
      child.on('close', (c, s) => resolve(c ?? (s ? 130 : 1)));
    });
    return interrupted ? 130 : code;
  } finally {
    sweep(say);
    say('removed the run\'s processes, mounts, cgroups, network namespace and files');
  }
}

// ---- the runner (inside the run's network namespace) ----

/** A PATH without systemd-run: e2e_node starts kubelet through it when it exists, and
 * this host's PID 1 is not systemd. */
function pathWithoutSystemdRun(): string {
  const dir = path.join(WORK, 'bin');
  fs.mkdirSync(dir, { recursive: true });
  for (const n of fs.readdirSync('/usr/bin')) if (n !== 'systemd-run') fs.symlinkSync(path.join('/usr/bin', n), path.join(dir, n));
  return ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', dir].join(':');
}

async function prepull(rt: TestRuntime, images: string[]): Promise<void> {
  for (const image of images) await rt.client.image('PullImage', { image: { image } }, { timeoutMs: 120_000 });
}

let current: ChildProcess | undefined;

function runSuite(rt: TestRuntime, o: Options, envPath: string): Promise<RunResult> {
  const reportDir = path.join(o.reportDir, rt.name);
  fs.rmSync(reportDir, { recursive: true, force: true });
  fs.mkdirSync(reportDir, { recursive: true });
  const cwd = path.join(WORK, `e2e-${rt.name}`);
  const kubeletRoot = path.join(WORK, `kubelet-${rt.name}`);
  fs.mkdirSync(cwd, { recursive: true });
  const kubeletFlags = [
    '--cgroup-driver=cgroupfs',
    `--cgroup-root=${CGROUP_ROOT}`,
    // Not /kubelet, /system and /docker-daemon, which e2e_node sets without systemd: kubelet
    // would move every process of the host's root cgroup into /system.
    '--kubelet-cgroups=',
    '--system-cgroups=',
    '--runtime-cgroups=',
    `--root-dir=${kubeletRoot}`,
    `--cert-dir=${path.join(kubeletRoot, 'pki')}`,
    `--volume-plugin-dir=${path.join(kubeletRoot, 'volume-plugins')}`,
    `--node-ip=${NODE_IP}`,
    '--fail-swap-on=false',
    '--runtime-request-timeout=2m',
  ];
  const args = [
    `--ginkgo.focus=${o.focus}`,
    ...(o.skip ? [`--ginkgo.skip=${o.skip}`] : []),
    '--ginkgo.noColor',
    `--k8s-bin-dir=${KUBE_BIN}`,
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
      const junit = path.join(reportDir, `junit_${rt.name}_01.xml`);
      const { specs, failures } = readJunit(junit, new RegExp(o.focus));
      resolve({ runtime: rt.name, junit, log: logFile, specs, failures, seconds: Math.round((Date.now() - started) / 1000) });
    });
  });
}

async function runner(argv: string[]): Promise<number> {
  const o = parseArgs(argv);
  fs.mkdirSync(path.join(WORK, 'tmp'), { recursive: true });
  fs.mkdirSync(o.reportDir, { recursive: true });
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
  const results: RunResult[] = [];
  try {
    const envPath = pathWithoutSystemdRun();
    reg = await TestRegistry.start();
    say('building and pushing the test images');
    const t0 = Date.now();
    const images = await pushNodeConformanceImages(reg, path.join(WORK, 'images'));
    say(`${images.length} images in ${Math.round((Date.now() - t0) / 1000)} s; not available offline: ${Object.keys(UNAVAILABLE).join(', ')}`);
    for (const name of o.runtimes) {
      if (stopping) break;
      rt = name === 'skiff' ? await startSkiff(reg.host) : await startContainerd(reg.host);
      say(`${name}: at ${rt.endpoint}, pulling the images`);
      await prepull(rt, images);
      say(`${name}: running e2e_node.test (focus ${o.focus}${o.skip ? `, skip ${o.skip}` : ''}); log ${path.join(o.reportDir, name, 'e2e_node.log')}`);
      const r = await runSuite(rt, o, envPath);
      results.push(r);
      const c = counts(r);
      say(`${name}: ${c.passed} passed, ${c.failed} failed, ${c.skipped} skipped in ${r.seconds} s`);
      const runtimeLog = path.join(o.reportDir, name, `${name}.log`);
      await rt.stop();
      if (fs.existsSync(rt.logFile)) fs.copyFileSync(rt.logFile, runtimeLog);
      rt = undefined;
    }
  } finally {
    await rt?.stop().catch(() => {});
    await reg?.stop();
  }
  return report(results, o, stopping);
}

/** The comparison of the reports an earlier run left in the report dir (runs of each
 * runtime may have been made separately, e.g. with different --skip). */
function reportFromFiles(o: Options): number {
  const results: RunResult[] = o.runtimes.map((rt) => {
    const junit = path.join(o.reportDir, rt, `junit_${rt}_01.xml`);
    return { runtime: rt, junit, log: path.join(o.reportDir, rt, 'e2e_node.log'), seconds: 0, ...readJunit(junit, new RegExp(o.focus)) };
  });
  return report(results, o, false);
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
    bad = failsOnlyOn(skiff, peer);
    console.log(`\nfail on skiff, pass on containerd: ${bad.length}`);
    for (const n of bad) console.log(`  FAIL ${n}\n       ${skiff.failures.get(n) ?? ''}`);
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
  fs.writeFileSync(
    path.join(o.reportDir, 'summary.json'),
    JSON.stringify({ results: results.map((r) => ({ runtime: r.runtime, ...counts(r), seconds: r.seconds, junit: r.junit, failed: [...r.specs].filter(([, s]) => s === 'failed').map(([n]) => n) })), failOnSkiffOnly: bad }, null, 2),
  );
  console.log(`summary: ${path.join(o.reportDir, 'summary.json')}`);
  if (interrupted) return 130;
  if (results.length < o.runtimes.length || results.some((r) => r.specs.size === 0)) return 1;
  return bad.length ? 1 : 0;
}

const entry = process.env[INNER_ENV] ? runner : supervise;
entry(process.argv.slice(2)).then(
  (c) => process.exit(c),
  (e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  },
);
