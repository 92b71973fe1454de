// Shim processes: started (the command returns once the shim serves), and found by their
// command line, for start-up recovery: a shim whose pod skiffd has no record of (its
// RunPodSandbox was cut short by a crash, or its record is gone) is found by the state
// dir it was started with, whether or not it serves yet.
import { spawn } from 'child_process';
import { promises as fsp } from 'fs';
import * as path from 'path';
import { mapLimited } from '../store/parallel';
import { readProcFile, readProcStat } from '../sys/proc_file';

export interface SpawnOptions {
  binary: string;
  stateDir: string;
  socketPath?: string;
  /** Extra environment (failpoints of tests). */
  env?: Record<string, string>;
  /** The host's cgroup hierarchies (`--cgroups`, CgroupFacts.arg); without them the shim
   * finds them in /proc/self/mountinfo. */
  cgroups?: string;
  /** The node's mount template (MountTemplate), passed as the shim's fd 3; without it the
   * shim makes its own. */
  mountTemplateFd?: number;
}

/** Start the shim `opts` describe; the socket it serves on once it does. */
export async function startShim(opts: SpawnOptions): Promise<string> {
  const args = ['--state-dir', opts.stateDir];
  if (opts.socketPath) args.push('--socket', opts.socketPath);
  if (opts.cgroups) args.push('--cgroups', opts.cgroups);
  if (opts.mountTemplateFd !== undefined) args.push('--mount-template-fd', '3');
  await startShimProcess(opts.binary, args, opts.env, opts.mountTemplateFd);
  return opts.socketPath ?? path.join(opts.stateDir, 'shim.sock');
}

/** Run `skiff-shim args` until it exits 0 (it forks the shim proper, which serves by
 * then); extraFd becomes its fd 3. */
export function startShimProcess(binary: string, args: string[], env?: Record<string, string>, extraFd?: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, {
      timeout: 30_000,
      env: env ? { ...process.env, ...env } : undefined,
      stdio: ['ignore', 'ignore', 'pipe', ...(extraFd !== undefined ? [extraFd] : [])],
    });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', (e) => reject(new Error(`skiff-shim failed to start: ${e.message}`)));
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`skiff-shim failed to start: ${stderr.trim() || (signal ? `killed by ${signal}` : `exit status ${String(code)}`)}`));
    });
  });
}

/** /proc files read at once. */
const PROC_READ_CONCURRENCY = 64;

export interface ShimProcess {
  pid: number;
  /** Its --state-dir. */
  stateDir: string;
}

/** When a process started, in clock ticks after boot (/proc/<pid>/stat's field 22);
 * undefined when it is gone. */
async function startTicks(pid: number | 'self'): Promise<number | undefined> {
  const fields = await readProcStat(pid);
  const ticks = Number(fields?.[19]);
  return fields && Number.isInteger(ticks) ? ticks : undefined;
}

/** Every live shim whose state dir lies under `under`; among `pids` only, when given;
 * with `startedBeforeSelf`, only those started no later than this process (by an earlier
 * skiffd: none of this one's pods). */
export async function findShims(under: string, pids?: number[], startedBeforeSelf = false): Promise<ShimProcess[]> {
  const self = startedBeforeSelf ? await startTicks('self') : undefined;
  if (startedBeforeSelf && self === undefined) throw new Error('cannot read /proc/self/stat: no start time to tell earlier shims by');
  const prefix = path.resolve(under) + '/';
  const names = (pids ? pids.map(String) : await fsp.readdir('/proc')).filter((n) => /^\d+$/.test(n));
  // A node at 500 pods runs thousands of processes: their command lines are read many at a
  // time (one after the other, the round trips through libuv's pool took a second).
  const found = await mapLimited(names, PROC_READ_CONCURRENCY, async (name) => {
    const argv = (await readProcFile(`/proc/${name}/cmdline`).catch(() => '')).split('\0');
    const i = argv.indexOf('--state-dir');
    if (i < 0 || !path.basename(argv[0] ?? '').startsWith('skiff-shim')) return undefined;
    const stateDir = path.resolve(argv[i + 1] ?? '');
    if (!stateDir.startsWith(prefix)) return undefined;
    if (self !== undefined) {
      const started = await startTicks(Number(name));
      if (started === undefined || started > self) return undefined;
    }
    return { pid: Number(name), stateDir };
  });
  return found.filter((p): p is ShimProcess => p !== undefined);
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
    const fields = await readProcStat(pid);
    // Gone, or a zombie its parent (init) has yet to reap.
    if (!fields || fields[0] === 'Z') return;
    await new Promise((r) => setTimeout(r, 10));
  }
}
