// Host paths of a container's mounts that kubelet hands over unchecked.
import { promises as fsp } from 'fs';
import * as path from 'path';

/**
 * Make each host path of the CRI mounts that names nothing on the host (not even a dangling
 * link) an empty directory, as containerd and CRI-O do: kubelet hands hostPath volumes of
 * type "" over unchecked. Returns the directories made, parents first.
 */
export async function makeMissingHostPaths(hostPaths: string[]): Promise<string[]> {
  const made: string[] = [];
  for (const p of hostPaths) {
    const exists = await fsp.lstat(p).then(
      () => true,
      (e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT') return false;
        throw e;
      },
    );
    if (exists) continue;
    const first = await fsp.mkdir(p, { recursive: true, mode: 0o755 });
    if (!first) continue;
    const chain: string[] = [];
    for (let d = p; ; d = path.dirname(d)) {
      chain.unshift(d);
      if (d === first || d === path.dirname(d)) break;
    }
    made.push(...chain);
  }
  return made;
}
