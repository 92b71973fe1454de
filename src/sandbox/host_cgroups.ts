// skiffd's own view of the host's cgroup hierarchies, for what the shim can no longer do:
// removing the cgroups of a pod whose shim was killed, and those a crash left behind.
// Only paths skiff named (its pods' and containers') are ever passed here.
import { promises as fsp } from 'fs';
import * as path from 'path';

export interface CgroupMount {
  fstype: 'cgroup' | 'cgroup2';
  path: string;
  /** "major:minor" of the mount, as mountinfo gives it. */
  dev: string;
  /** The super block's options: a v1 mount's name its controllers. */
  options: string;
}

/** The cgroup and cgroup2 mounts in a mountinfo text, in its order. */
export function cgroupMountsIn(mountinfo: string): CgroupMount[] {
  const out: CgroupMount[] = [];
  for (const line of mountinfo.split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!post) continue;
    const [fstype, , options] = post.split(' ');
    if ((fstype !== 'cgroup' && fstype !== 'cgroup2') || options === undefined) continue;
    const fields = pre.split(' ');
    out.push({ fstype, path: unescapeMountPath(fields[4] ?? ''), dev: fields[2], options });
  }
  return out;
}

/** The mount point of every cgroup hierarchy, v1 and v2, once each. */
export async function cgroupHierarchies(): Promise<string[]> {
  return [...new Set(cgroupMountsIn(await fsp.readFile('/proc/self/mountinfo', 'utf8')).map((m) => m.path))];
}

export const unescapeMountPath = (s: string) => s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));

/** The child cgroups of `rel` in any hierarchy. */
export async function cgroupChildren(rel: string): Promise<Set<string>> {
  const out = new Set<string>();
  for (const h of await cgroupHierarchies()) {
    for (const d of await fsp.readdir(path.join(h, rel), { withFileTypes: true }).catch(() => [])) if (d.isDirectory()) out.add(d.name);
  }
  return out;
}

/**
 * Remove cgroup `rel` and its children from every hierarchy. What still runs in them is
 * SIGKILLed first (a pod's processes outlive a killed shim only where they left its PID
 * namespace). Returns the number of directories removed; one that stays busy past the
 * deadline is an error naming it.
 */
export async function removeCgroupTree(rel: string, deadlineMs = 10_000): Promise<number> {
  if (!rel.startsWith('/') || rel === '/' || rel.split('/').includes('..')) throw new Error(`refusing to remove cgroup "${rel}"`);
  const deadline = Date.now() + deadlineMs;
  // The hierarchies side by side: most hold no such group, and each answer waits its turn
  // in libuv's thread pool behind the other file operations of a busy skiffd.
  const removed = await Promise.all((await cgroupHierarchies()).map((h) => removeDir(path.join(h, rel), deadline)));
  return removed.reduce((a, b) => a + b, 0);
}

async function removeDir(dir: string, deadline: number): Promise<number> {
  let entries;
  try {
    entries = await fsp.readdir(dir, { withFileTypes: true });
  } catch {
    return 0; // not in this hierarchy
  }
  let removed = 0;
  for (const e of entries) if (e.isDirectory()) removed += await removeDir(path.join(dir, e.name), deadline);
  for (;;) {
    try {
      await fsp.rmdir(dir);
      return removed + 1;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return removed;
      if (code !== 'EBUSY' || Date.now() > deadline) throw new Error(`cannot remove cgroup ${dir}: ${(e as Error).message}`);
    }
    await killAll(dir);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function killAll(dir: string): Promise<void> {
  const procs = await fsp.readFile(path.join(dir, 'cgroup.procs'), 'utf8').catch(() => '');
  for (const pid of procs.split('\n').filter(Boolean).map(Number)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}
