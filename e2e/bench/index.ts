// Entry point of `npm run bench -- [suite...] [--runs N]`: runs the named suites
// (all of them without a name); each suite ends with one JSON result line.
import { statsSuite } from './cri_stats';
import { execSuite } from './exec';
import { lifecycleSuite } from './lifecycle';
import { pullSuite } from './pull';
import { scaleSuite } from './scale';
import { shimSuite } from './shim';

export interface BenchOptions {
  /** Measured runs per subject; undefined means the suite's default. */
  runs?: number;
  /** Pods at full size (`--pods N`, the scale suite); undefined means the suite's default. */
  pods?: number;
  /** Aborted on SIGINT/SIGTERM so a suite stops between runs and still cleans up. */
  signal: AbortSignal;
}

export interface Suite {
  name: string;
  description: string;
  run(opts: BenchOptions): Promise<void>;
}

// Later suites (pull, lifecycle, exec) register here.
const SUITES: Suite[] = [shimSuite, lifecycleSuite, pullSuite, execSuite, statsSuite, scaleSuite];

function usage(): string {
  const names = SUITES.map((s) => `  ${s.name.padEnd(10)} ${s.description}`).join('\n');
  return `usage: npm run bench -- [suite...] [--runs N] [--pods N]\n\nsuites (all of them when none is named):\n${names}\n`;
}

function parseArgs(argv: string[]): { suites: Suite[]; runs?: number; pods?: number } | string {
  const suites: Suite[] = [];
  const counts: { runs?: number; pods?: number } = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const opt = (['runs', 'pods'] as const).find((o) => a === `--${o}` || a.startsWith(`--${o}=`));
    if (opt) {
      const v = a === `--${opt}` ? argv[++i] : a.slice(`--${opt}=`.length);
      const x = Number(v);
      if (!Number.isInteger(x) || x < 1) return `--${opt}: expected a positive integer, got "${v ?? ''}"`;
      counts[opt] = x;
      continue;
    }
    const suite = SUITES.find((s) => s.name === a);
    if (!suite) return `unknown suite or option "${a}"`;
    if (!suites.includes(suite)) suites.push(suite);
  }
  return { suites: suites.length ? suites : SUITES, ...counts };
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
      await suite.run({ runs: parsed.runs, pods: parsed.pods, signal: abort.signal });
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
