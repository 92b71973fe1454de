// Entry point of `npm run bench -- [suite...] [--runs N] [peer flags]`: runs the named
// suites (all of them without a name); each suite ends with one JSON result line.
import { statsSuite } from './cri_stats';
import { execSuite } from './exec';
import { isolationSuite } from './isolation';
import { lifecycleSuite } from './lifecycle';
import { parsePeerArgs, PEER_FLAGS_HELP, PeerFlags, Peers, resolvePeers } from './peers';
import { pullSuite } from './pull';
import { scaleSuite } from './scale';
import { shimSuite } from './shim';

export interface BenchOptions {
  /** Measured runs per subject; undefined means the suite's default. */
  runs?: number;
  /** The peers found (flags or $PATH), with their versions or why they are absent. */
  peers: Peers;
  /** Pods for the suites that list them (stats, scale); undefined means the suite's default. */
  pods?: number;
  /** Aborted on SIGINT/SIGTERM so a suite stops between runs and still cleans up. */
  signal: AbortSignal;
  /** The values of the suites' own flags (Suite.flags), by flag: "--seconds" -> "5". */
  suiteFlags: Map<string, string>;
}

export interface Suite {
  name: string;
  description: string;
  run(opts: BenchOptions): Promise<void>;
  /** Flags of this suite's own, each taking a value, with their help text. */
  flags?: Record<string, string>;
}

// Later suites (pull, lifecycle, exec) register here.
const SUITES: Suite[] = [shimSuite, lifecycleSuite, pullSuite, execSuite, statsSuite, scaleSuite, isolationSuite];

function usage(): string {
  const names = SUITES.map((s) => `  ${s.name.padEnd(10)} ${s.description}`).join('\n');
  const own = SUITES.flatMap((s) => Object.entries(s.flags ?? {}).map(([f, help]) => `  ${f.padEnd(20)} ${s.name}: ${help}`)).join('\n');
  return `usage: npm run bench -- [suite...] [--runs N] [--pods N] [--containerd PATH] [--runc PATH] [--crun PATH] [--crio-socket PATH]\n\nsuites (all of them when none is named):\n${names}\n\nflags of one suite:\n${own}\n\n${PEER_FLAGS_HELP}`;
}

function parseArgs(args: string[]): { suites: Suite[]; runs?: number; pods?: number; peers: PeerFlags; suiteFlags: Map<string, string> } | string {
  const suites: Suite[] = [];
  const suiteFlags = new Map<string, string>();
  let runs: number | undefined;
  let pods: number | undefined;
  const peerArgs = parsePeerArgs(args);
  if (typeof peerArgs === 'string') return peerArgs;
  const argv = peerArgs.rest;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--pods' || a.startsWith('--pods=')) {
      const v = a === '--pods' ? argv[++i] : a.slice('--pods='.length);
      pods = Number(v);
      if (!Number.isInteger(pods) || pods < 11) return `--pods: expected an integer above 10, got "${v ?? ''}"`;
      continue;
    }
    if (a === '--runs' || a.startsWith('--runs=')) {
      const v = a === '--runs' ? argv[++i] : a.slice('--runs='.length);
      runs = Number(v);
      if (!Number.isInteger(runs) || runs < 1) return `--runs: expected a positive integer, got "${v ?? ''}"`;
      continue;
    }
    const flag = a.split('=')[0];
    if (SUITES.some((s) => s.flags && Object.hasOwn(s.flags, flag))) {
      const v = a === flag ? argv[++i] : a.slice(flag.length + 1);
      if (v === undefined || v === '') return `${flag}: expected a value`;
      suiteFlags.set(flag, v);
      continue;
    }
    const suite = SUITES.find((s) => s.name === a);
    if (!suite) return `unknown suite or option "${a}"`;
    if (!suites.includes(suite)) suites.push(suite);
  }
  return { suites: suites.length ? suites : SUITES, runs, pods, peers: peerArgs.flags, suiteFlags };
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  if (argv.includes('-h') || argv.includes('--help')) {
    process.stdout.write(usage());
    return 0;
  }
  const parsed = parseArgs(argv);
  if (typeof parsed === 'string') {
    process.stderr.write(`bench: ${parsed}\n${usage()}`);
    return 2;
  }
  const peers = await resolvePeers(parsed.peers);
  if (typeof peers === 'string') {
    process.stderr.write(`bench: ${peers}\n`);
    return 2;
  }
  const abort = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    if (abort.signal.aborted) process.exit(130); // second signal: give up on cleanup
    process.stderr.write(`bench: ${sig}: stopping after the current run and cleaning up\n`);
    abort.abort(new Error(`interrupted by ${sig}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let failed = 0;
  for (const suite of parsed.suites) {
    if (abort.signal.aborted) break;
    try {
      await suite.run({ runs: parsed.runs, pods: parsed.pods, peers, signal: abort.signal, suiteFlags: parsed.suiteFlags });
    } catch (e) {
      failed++;
      process.stderr.write(`bench ${suite.name}: FAILED: ${e instanceof Error ? e.message : String(e)}\n`);
    }
  }
  return failed || abort.signal.aborted ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`bench: ${e instanceof Error ? e.stack : String(e)}\n`);
    process.exit(1);
  },
);
