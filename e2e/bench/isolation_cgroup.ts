// The isolation benchmark's pod cgroups, made and sized as kubelet's cgroupfs driver makes
// a pod's (CPU shares and quota, memory limit, pids limit), on cgroup v1 or v2, and what
// the kernel counted under them: OOM kills, CPU throttling, forks refused.
import * as fs from 'fs';
import * as path from 'path';

/** The limits kubelet writes on a pod cgroup; null fields are left at the kernel's default. */
export interface PodCgroupLimits {
  cpuShares: number;
  /** CFS quota per period in µs; null: no CPU limit. */
  cpuQuotaUs: number | null;
  cpuPeriodUs: number;
  memoryBytes: number | null;
  pidsMax: number | null;
}

/** What the kernel reported for a pod: each counter's largest value among the pod cgroup
 * and the cgroups under it (where a counter is kept differs between cgroup v1 and v2, and
 * between kernels: the largest is the pod's count in each). */
export interface KernelCounters {
  oomKills: number;
  throttledPeriods: number;
  throttledMs: number;
  pidsRefused: number;
  /** Processes in the pod at the window's end (pids.current): evidence that a neighbour
   * ran, e.g. the fork bomb near its bound, or held at pids.max. */
  pidsAtEnd: number;
}

type Controller = 'cpu' | 'memory' | 'pids';
const CONTROLLERS: Controller[] = ['cpu', 'memory', 'pids'];

/** Where a controller's files are: its v1 hierarchy, else the cgroup2 mount. */
export interface ControllerMount {
  root: string;
  v2: boolean;
}

/** The mount of each controller, from /proc/self/mountinfo text (and, for cgroup2, the
 * controllers its root offers). */
export function controllerMounts(mountinfo: string, v2Controllers: (root: string) => string[]): Record<Controller, ControllerMount | null> {
  const out: Record<Controller, ControllerMount | null> = { cpu: null, memory: null, pids: null };
  let v2Root: string | null = null;
  for (const line of mountinfo.split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!post) continue;
    const [fstype, , superOpts] = post.split(' ');
    const mountPoint = pre.split(' ')[4];
    if (fstype === 'cgroup2') v2Root ??= mountPoint;
    if (fstype !== 'cgroup') continue;
    const opts = (superOpts ?? '').split(',');
    for (const c of CONTROLLERS) if (opts.includes(c) && !out[c]) out[c] = { root: mountPoint, v2: false };
  }
  if (v2Root) {
    const offered = v2Controllers(v2Root);
    for (const c of CONTROLLERS) if (!out[c] && offered.includes(c)) out[c] = { root: v2Root, v2: true };
  }
  return out;
}

function hostMounts(): Record<Controller, ControllerMount | null> {
  return controllerMounts(fs.readFileSync('/proc/self/mountinfo', 'utf8'), (root) => {
    try {
      return fs.readFileSync(path.join(root, 'cgroup.controllers'), 'utf8').trim().split(/\s+/);
    } catch {
      return [];
    }
  });
}

/** cgroup v2's cpu.weight for v1 shares, as kubelet and runc convert them. */
export function sharesToWeight(shares: number): number {
  return Math.floor(1 + ((shares - 2) * 9999) / 262142);
}

/** The files and values kubelet writes for `limits`, for one controller's hierarchy. */
export function limitFiles(c: Controller, v2: boolean, l: PodCgroupLimits): [string, string][] {
  if (c === 'cpu') {
    if (v2) return [['cpu.weight', String(sharesToWeight(l.cpuShares))], ['cpu.max', `${l.cpuQuotaUs ?? 'max'} ${l.cpuPeriodUs}`]];
    return [['cpu.shares', String(l.cpuShares)], ['cpu.cfs_period_us', String(l.cpuPeriodUs)], ['cpu.cfs_quota_us', String(l.cpuQuotaUs ?? -1)]];
  }
  if (c === 'memory') return l.memoryBytes === null ? [] : [[v2 ? 'memory.max' : 'memory.limit_in_bytes', String(l.memoryBytes)]];
  return l.pidsMax === null ? [] : [['pids.max', String(l.pidsMax)]];
}

/** Make the pod cgroup `rel` (a cgroupfs path) in the cpu, memory and pids hierarchies
 * with `limits` (null: made, nothing set), as kubelet does before RunPodSandbox; the
 * runtime makes the rest. On cgroup2 the controllers are enabled down to its children. */
export function makePodCgroup(rel: string, limits: PodCgroupLimits | null): void {
  const mounts = hostMounts();
  for (const c of CONTROLLERS) {
    const m = mounts[c];
    if (!m) throw new Error(`no ${c} controller mounted (cgroup v1 or v2)`);
    const parts = rel.split('/').filter(Boolean);
    for (let i = 1; i <= parts.length; i++) {
      const dir = path.join(m.root, ...parts.slice(0, i));
      if (!fs.existsSync(dir)) fs.mkdirSync(dir);
      // The pod cgroup too: the runtime puts the pod's processes in cgroups below it.
      if (m.v2) fs.writeFileSync(path.join(dir, 'cgroup.subtree_control'), '+cpu +memory +pids');
    }
    if (m.v2) fs.writeFileSync(path.join(m.root, 'cgroup.subtree_control'), '+cpu +memory +pids');
    if (limits) for (const [file, value] of limitFiles(c, m.v2, limits)) fs.writeFileSync(path.join(m.root, rel, file), value);
  }
}

/** "key value" lines (cpu.stat, memory.events, memory.oom_control, pids.events). */
export function parseKeyed(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined && /^\d+$/.test(v)) out.set(k, Number(v));
  }
  return out;
}

/** The counters of one cgroup dir, from the files of its controller (v1 or v2 names). */
export function countersOf(read: (file: string) => string | null, c: Controller, v2: boolean): Partial<KernelCounters> {
  const keyed = (file: string) => parseKeyed(read(file) ?? '');
  if (c === 'memory') return { oomKills: keyed(v2 ? 'memory.events' : 'memory.oom_control').get('oom_kill') ?? 0 };
  if (c === 'pids') return { pidsRefused: keyed('pids.events').get('max') ?? 0, pidsAtEnd: Number(read('pids.current') ?? 0) || 0 };
  const st = keyed('cpu.stat');
  const throttledMs = v2 ? (st.get('throttled_usec') ?? 0) / 1000 : (st.get('throttled_time') ?? 0) / 1e6;
  return { throttledPeriods: st.get('nr_throttled') ?? 0, throttledMs };
}

/** The largest of each counter over the pod cgroup `rel` and every cgroup under it. */
export function readKernelCounters(rel: string): KernelCounters {
  const mounts = hostMounts();
  const out: KernelCounters = { oomKills: 0, throttledPeriods: 0, throttledMs: 0, pidsRefused: 0, pidsAtEnd: 0 };
  for (const c of CONTROLLERS) {
    const m = mounts[c];
    if (!m) continue;
    const walk = (dir: string) => {
      const read = (file: string) => {
        try {
          return fs.readFileSync(path.join(dir, file), 'utf8');
        } catch {
          return null;
        }
      };
      for (const [k, v] of Object.entries(countersOf(read, c, m.v2)) as [keyof KernelCounters, number][]) out[k] = Math.max(out[k], v);
      let subdirs: fs.Dirent[] = [];
      try {
        subdirs = fs.readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory());
      } catch {
        /* gone meanwhile */
      }
      for (const d of subdirs) walk(path.join(dir, d.name));
    };
    walk(path.join(m.root, rel));
  }
  return out;
}
