// The pod's network namespace pinned at a path (a bind mount of /proc/<pid>/ns/net), so
// CNI plugins, and CNI DEL after a restart of skiffd, can enter it by name.
import { promises as fsp } from 'fs';
import * as path from 'path';
import { failpoint } from '../failpoints';
import { bindMount, MNT_DETACH, umount2 } from '../sys/libc';

/** The empty file a netns is pinned on: made before the netns exists (RunPodSandbox makes
 * it while the shim makes the namespaces); unbindNetns removes it too. */
export async function makeNetnsMountPoint(target: string): Promise<void> {
  await fsp.mkdir(path.dirname(target), { recursive: true, mode: 0o711 });
  const fh = await fsp.open(target, 'w', 0o444);
  await fh.close();
  failpoint('run_pod.netns_file');
}

/** Pin a netns on its mount point (made by makeNetnsMountPoint). */
export async function bindNetns(source: string, target: string): Promise<void> {
  bindMount(source, target);
}

/** Unpin a netns; a path that is not mounted, or gone, is fine. */
export async function unbindNetns(target: string): Promise<void> {
  try {
    umount2(target, MNT_DETACH);
  } catch (e) {
    const errno = (e as NodeJS.ErrnoException).errno;
    if (errno !== 22 && errno !== 2) throw e; // EINVAL: not a mount point; ENOENT: gone
  }
  await fsp.rm(target, { force: true });
}
