// Host device nodes for container specs, read with async fs before the (pure) spec is
// built: the nodes a CRI config names, and every node under /dev for privileged ones.
import { promises as fsp, Stats } from 'fs';
import * as path from 'path';
import type { LinuxDevice, Mount } from '../oci/runtime_spec';
import type { DeviceInfo } from './spec';

/** A device node's major and minor numbers, from its st_rdev (Linux's encoding). */
export function deviceNumbers(st: Pick<Stats, 'rdev'> | { rdev: bigint }): { major: number; minor: number } {
  const rdev = BigInt(st.rdev);
  return { major: Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn)), minor: Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn)) };
}

/** A host device node bound at containerPath: how a container in a user namespace, where
 * no node can be made, gets one that is elsewhere on the host (the shim binds a node that
 * has the same path there itself). */
export function deviceBindMount(containerPath: string, hostPath: string): Mount {
  return { destination: containerPath, type: 'bind', source: hostPath, options: ['bind', 'rprivate', 'rw'] };
}

/** DeviceInfo of each path that is a device node (others are left out). */
export async function statDevices(paths: string[]): Promise<Map<string, DeviceInfo>> {
  const out = new Map<string, DeviceInfo>();
  for (const p of paths) {
    const st = await fsp.stat(p).catch(() => undefined);
    if (!st || !(st.isCharacterDevice() || st.isBlockDevice())) continue;
    out.set(p, { type: st.isCharacterDevice() ? 'c' : 'b', ...deviceNumbers(st), mode: st.mode, uid: st.uid, gid: st.gid });
  }
  return out;
}

const SKIP = new Set(['/dev/pts', '/dev/shm', '/dev/mqueue', '/dev/fd', '/dev/console']);

/** Every device node under /dev, as containerd's HostDevices lists them. */
export async function hostDevices(dir = '/dev'): Promise<LinuxDevice[]> {
  const out: LinuxDevice[] = [];
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch {
    return out;
  }
  for (const n of names) {
    const p = path.join(dir, n);
    if (SKIP.has(p)) continue;
    const st = await fsp.lstat(p).catch(() => undefined);
    if (!st) continue;
    if (st.isDirectory()) out.push(...(await hostDevices(p)));
    else if (st.isCharacterDevice() || st.isBlockDevice())
      out.push({ path: p, type: st.isCharacterDevice() ? 'c' : 'b', ...deviceNumbers(st), fileMode: st.mode & 0o777, uid: st.uid, gid: st.gid });
  }
  return out;
}
