// The host's cgroup hierarchies, passed to every new shim (`--cgroups`, api/shim/PROTOCOL.md)
// so that it need not read /proc/self/mountinfo: that file lists every pod's shm, netns and
// rootfs mounts, 2,400 lines at 500 pods, and each shim read it once (31 ms there).
// skiffd reads mountinfo only when the hierarchies change: a benchmark or an admin may
// mount a v1 hierarchy (taking a controller off cgroup2) or release one at any time.
import { promises as fsp } from 'fs';
import { CgroupMount, cgroupMountsIn } from '../sandbox/host_cgroups';

export type { CgroupMount };

const CGROUP_ROOT = '/sys/fs/cgroup';

export interface HostCgroups {
  /** "<id>:<controllers>" of each line of /proc/self/cgroup, in its order: which
   * hierarchies exist (a v1 hierarchy mounted or released changes them). */
  hierarchies: string[];
  mounts: CgroupMount[];
}

/** The hierarchies as /proc/self/cgroup lists them, without this process's paths. */
export function hierarchiesOf(procSelfCgroup: string): string[] {
  return procSelfCgroup
    .split('\n')
    .filter(Boolean)
    .map((l) => l.slice(0, l.indexOf(':', l.indexOf(':') + 1)));
}

/** The cgroup and cgroup2 mounts under /sys/fs/cgroup/ in a mountinfo text, in its order. */
export function cgroupMountsOf(mountinfo: string): CgroupMount[] {
  // The dev is what the shim checks still holds before it uses a mount.
  return cgroupMountsIn(mountinfo).filter((m) => m.path.startsWith(`${CGROUP_ROOT}/`));
}

/** st_dev as Node's stat gives it, from "major:minor" (glibc's makedev). */
function devNumber(dev: string): number {
  const [major, minor] = dev.split(':').map(Number);
  return (major & 0xfff) * 256 + (minor & 0xff) + (minor - (minor & 0xff)) * 4096 + (major - (major & 0xfff)) * 2 ** 32;
}

export class CgroupFacts {
  private known: HostCgroups | undefined;
  private v2Only: boolean | undefined;

  constructor(private readonly readFile: (path: string) => Promise<string> = (p) => fsp.readFile(p, 'utf8')) {}

  /**
   * The `--cgroups` argument for a new shim, or undefined where it has no use (the
   * host's /sys/fs/cgroup is one cgroup2 mount, which the shim sees with one statfs).
   * mountinfo is read again only when /proc/self/cgroup lists other hierarchies, or a
   * mount point is no longer the mount it was; the shim checks the same before use.
   */
  async arg(): Promise<string | undefined> {
    this.v2Only ??= await isCgroup2(CGROUP_ROOT);
    if (this.v2Only) return undefined;
    const hierarchies = hierarchiesOf(await this.readFile('/proc/self/cgroup'));
    if (!this.known || this.known.hierarchies.join('\n') !== hierarchies.join('\n') || !(await this.mountsHold(this.known.mounts))) {
      this.known = { hierarchies, mounts: cgroupMountsOf(await this.readFile('/proc/self/mountinfo')) };
    }
    return JSON.stringify(this.known);
  }

  private async mountsHold(mounts: CgroupMount[]): Promise<boolean> {
    const held = await Promise.all(
      mounts.map((m) =>
        fsp.stat(m.path).then(
          (st) => st.dev === devNumber(m.dev),
          () => false,
        ),
      ),
    );
    return held.every(Boolean);
  }
}

async function isCgroup2(dir: string): Promise<boolean> {
  const CGROUP2_SUPER_MAGIC = 0x63677270;
  try {
    return (await fsp.statfs(dir)).type === CGROUP2_SUPER_MAGIC;
  } catch {
    return false;
  }
}
