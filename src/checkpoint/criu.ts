// Which CRIU checkpoints and restores run with, and whether it works here: found once at
// start-up (the checkpoint.criu setting, else criu on $PATH), its version read and
// `criu check` run; where either fails, checkpointing is unavailable and every call says
// why in CRIU's own words.
import { execFile } from 'child_process';
import { promises as fsp } from 'fs';
import * as path from 'path';
import { FailedPrecondition } from '../errors';

/** Debian 12's CRIU 3.17 fails its own check on recent kernels (it cannot read their
 * vDSO); skiff was exercised with 4.2. Older versions than 4.0 are refused, naming it. */
export const CRIU_MIN_VERSION = [4, 0] as const;

export type CriuStatus =
  | { available: true; path: string; version: string }
  | { available: false; path: string; version: string; reason: string };

function run(file: string, args: string[], timeoutMs: number): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      const out = `${stdout}${stderr}`.trim();
      if (!err) return resolve({ code: 0, out });
      const e = err as NodeJS.ErrnoException & { code?: number | string; killed?: boolean };
      if (typeof e.code === 'string') return resolve({ code: -1, out: `${e.code}: ${e.message}` });
      resolve({ code: typeof e.code === 'number' ? e.code : -1, out: out || (e.killed ? 'timed out' : e.message) });
    });
  });
}

async function findOnPath(name: string): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    if (!dir) continue;
    const p = path.join(dir, name);
    try {
      await fsp.access(p, 1 /* X_OK */);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

function versionAtLeast(v: string, min: readonly number[]): boolean {
  const parts = v.split('.').map((n) => parseInt(n, 10) || 0);
  for (let i = 0; i < min.length; i++) {
    if ((parts[i] ?? 0) !== min[i]) return (parts[i] ?? 0) > min[i];
  }
  return true;
}

/** The CRIU to use (configured: the checkpoint.criu setting, '' for $PATH) and whether it
 * passes its own check on this kernel. */
export async function probeCriu(configured: string): Promise<CriuStatus> {
  const file = configured || (await findOnPath('criu'));
  if (!file) return { available: false, path: '', version: '', reason: 'criu not found on $PATH (set checkpoint.criu to its path)' };
  const version = await run(file, ['--version'], 10_000);
  const m = /Version:\s*([0-9.]+)/.exec(version.out);
  if (version.code !== 0 || !m) return { available: false, path: file, version: '', reason: `${file} --version: ${version.out || `exit status ${version.code}`}` };
  if (!versionAtLeast(m[1], CRIU_MIN_VERSION))
    return { available: false, path: file, version: m[1], reason: `criu ${m[1]} is older than ${CRIU_MIN_VERSION.join('.')}` };
  const check = await run(file, ['check'], 60_000);
  if (check.code !== 0) return { available: false, path: file, version: m[1], reason: `criu check: ${check.out || `exit status ${check.code}`}` };
  return { available: true, path: file, version: m[1] };
}

/** The CRIU found at start-up, waited for by the first call that needs it. */
export class Criu {
  private readonly status: Promise<CriuStatus>;

  constructor(configured: string, onProbed?: (s: CriuStatus) => void) {
    this.status = probeCriu(configured).then((s) => (onProbed?.(s), s));
  }

  probed(): Promise<CriuStatus> {
    return this.status;
  }

  /** The binary; FAILED_PRECONDITION naming why there is none that works. */
  async require(what: string): Promise<string> {
    const s = await this.status;
    if (!s.available) throw new FailedPrecondition(`${what}: checkpointing is unavailable on this node: ${s.reason}`);
    return s.path;
  }
}
