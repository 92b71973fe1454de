// The skiff side of the `pull` bench, in a process of its own as skiffd would be:
// an ImageService on a fresh root pulls one image when a line arrives on stdin,
// then reports its time and its own memory (VmRSS before, VmHWM after) as JSON;
// a second line pulls it again, warm, and reports that.
//   node --expose-gc dist/e2e/bench/pull_worker.js <root> <ref> <hostsDir> [<warm-up ref>]
// A warm-up image is pulled first, as a running skiffd has pulled the pause image:
// the big pull's RSS growth is then its own, not the first use of the HTTP client.
import * as fs from 'fs';
import * as readline from 'readline';
import { ImageService } from '../../src/image/image_service';

/** First stdout line: the service is initialised and waits for the go line. */
export interface PullWorkerReady {
  ready: true;
  rssKiB: number;
}

/** Last stdout line of a successful pull. */
export interface PullWorkerResult {
  seconds: number;
  /** VmRSS right before the pull (after the peak was reset to it). */
  rssBeforeKiB: number;
  /** VmHWM right after the pull: the peak during it. */
  hwmKiB: number;
  /** The image's layer snapshots, base first (checked against the image's config). */
  chainIds: string[];
}

/** Last stdout line of a failed pull. */
export interface PullWorkerError {
  error: string;
}

function statusKiB(field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB$`, 'm').exec(fs.readFileSync('/proc/self/status', 'utf8'));
  if (!m) throw new Error(`/proc/self/status has no ${field} line`);
  return Number(m[1]);
}

function say(msg: PullWorkerReady | PullWorkerResult | PullWorkerError): void {
  process.stdout.write(`${JSON.stringify(msg)}\n`);
}

async function main(argv: string[]): Promise<void> {
  if (argv.length !== 3 && argv.length !== 4) throw new Error('usage: pull_worker <root> <ref> <hostsDir> [<warm-up ref>]');
  const [root, ref, hostsDir, warmupRef] = argv;
  // With --expose-gc: the baseline is live memory, not garbage a GC would free.
  const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);
  const images = new ImageService({ root, registry: { configPath: hostsDir } });
  try {
    await images.init();
    if (warmupRef) await images.pull(warmupRef);
    say({ ready: true, rssKiB: statusKiB('VmRSS') });
    const lines = readline.createInterface({ input: process.stdin });
    const [go] = await Promise.race([
      new Promise<string[]>((resolve) => lines.once('line', (l: string) => resolve([l]))),
      new Promise<string[]>((resolve) => lines.once('close', () => resolve([]))),
    ]);
    if (go === undefined) throw new Error('stdin closed before the go line');
    gc();
    gc();
    // "5" resets the peak RSS (VmHWM) to the current RSS: the peak read after the
    // pull is then the pull's own (proc(5), /proc/pid/clear_refs).
    fs.writeFileSync('/proc/self/clear_refs', '5');
    const rssBeforeKiB = statusKiB('VmRSS');
    const t0 = process.hrtime.bigint();
    const record = await images.pull(ref);
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const hwmKiB = statusKiB('VmHWM');
    say({ seconds, rssBeforeKiB, hwmKiB, chainIds: record.chainIds });
    // A second go line: the warm pull, the image already in the store (kubelet's
    // imagePullPolicy: Always on a node that has it).
    const again = await new Promise<string | undefined>((resolve) => {
      lines.once('line', resolve);
      lines.once('close', () => resolve(undefined));
    });
    if (again !== undefined) {
      const t1 = process.hrtime.bigint();
      const warm = await images.pull(ref);
      say({ seconds: Number(process.hrtime.bigint() - t1) / 1e9, rssBeforeKiB: statusKiB('VmRSS'), hwmKiB: statusKiB('VmHWM'), chainIds: warm.chainIds });
    }
  } finally {
    await images.close();
  }
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (e: unknown) => {
    say({ error: e instanceof Error ? e.message : String(e) });
    process.exit(1);
  },
);
