// Shim processes found by their command line, for start-up recovery: a shim whose pod
// skiffd has no record of (its RunPodSandbox was cut short by a crash, or its record is
// gone) is found by the state dir it was started with, whether or not it serves yet.
import { promises as fsp } from 'fs';
import * as path from 'path';

export interface ShimProcess {
  pid: number;
  /** Its --state-dir. */
  stateDir: string;
}

/** Every live shim whose state dir lies under `under`; among `pids` only, when given. */
export async function findShims(under: string, pids?: number[]): Promise<ShimProcess[]> {
  const out: ShimProcess[] = [];
  const prefix = path.resolve(under) + '/';
  for (const name of pids ? pids.map(String) : await fsp.readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const argv = (await fsp.readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '')).split('\0');
    const i = argv.indexOf('--state-dir');
    if (i < 0 || !path.basename(argv[0] ?? '').startsWith('skiff-shim')) continue;
    const stateDir = path.resolve(argv[i + 1] ?? '');
    if (stateDir.startsWith(prefix)) out.push({ pid: Number(name), stateDir });
  }
  return out;
}

/** SIGKILL a shim and wait (up to deadlineMs) until it is gone; its infra process and
 * containers die with it (PR_SET_PDEATHSIG). */
export async function killShim(pid: number, deadlineMs = 10_000): Promise<void> {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  const end = Date.now() + deadlineMs;
  while (Date.now() < end) {
    const stat = await fsp.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    // Gone, or a zombie its parent (init) has yet to reap.
    if (!stat || / Z /.test(stat.slice(stat.lastIndexOf(')')))) return;
    await new Promise((r) => setTimeout(r, 10));
  }
}
