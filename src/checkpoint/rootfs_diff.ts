// rootfs-diff.tar and deleted.files: a container's writable layer (an overlay upper dir)
// written into its checkpoint archive, and applied again to a restored container's new
// rootfs, where no path of the archive may lead outside it.
import { createReadStream, promises as fsp } from 'fs';
import * as path from 'path';
import { InvalidArgument } from '../errors';
import { unpackLayer } from '../image/unpack';
import { lgetxattr } from '../sys/libc';
import { addFileEntry, DELETED_FILES, EntryHeader, writeTar } from './archive';

const WHITEOUT_OPAQUE = 'trusted.overlay.opaque';

/**
 * rootfs-diff.tar of an overlay's upper dir: its files, directories, links, fifos and
 * devices (sockets are not kept, as tar keeps none), and the paths it deleted from the
 * layers below (its whiteouts, and directories it made opaque, whose new content the tar
 * holds): those are deleted.files. Paths are relative to the container's root.
 */
export async function writeRootfsDiff(upper: string, out: string): Promise<{ deleted: string[] }> {
  const deleted: string[] = [];
  await writeTar(out, async (pack) => {
    const add = (header: EntryHeader) =>
      new Promise<void>((resolve, reject) => {
        pack.entry(header, Buffer.alloc(0), (err) => (err ? reject(err) : resolve()));
      });
    const walk = async (rel: string): Promise<void> => {
      for (const name of (await fsp.readdir(path.join(upper, rel))).sort()) {
        const relName = rel ? `${rel}/${name}` : name;
        const full = path.join(upper, relName);
        const st = await fsp.lstat(full);
        const base = { name: relName, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: st.mtime };
        if (st.isCharacterDevice() && st.rdev === 0) {
          deleted.push(relName); // an overlay whiteout
        } else if (st.isDirectory()) {
          if (lgetxattr(full, WHITEOUT_OPAQUE)?.toString() === 'y') deleted.push(relName);
          await add({ ...base, type: 'directory' });
          await walk(relName);
        } else if (st.isSymbolicLink()) {
          await add({ ...base, type: 'symlink', linkname: await fsp.readlink(full) });
        } else if (st.isFile()) {
          await addFileEntry(pack, { ...base, type: 'file', size: st.size }, full);
        } else if (st.isFIFO()) {
          await add({ ...base, type: 'fifo' });
        } else if (st.isCharacterDevice() || st.isBlockDevice()) {
          const major = Math.floor(st.rdev / 256) & 0xfff;
          const minor = (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00);
          await add({ ...base, type: st.isCharacterDevice() ? 'character-device' : 'block-device', devmajor: major, devminor: minor });
        }
      }
    };
    await walk('');
  });
  return { deleted };
}

/** The parent dirs of rel inside root, none of them a symlink (the container's files are
 * not the host's); the full path, or null when a parent is missing. */
async function insideRoot(root: string, rel: string, what: string): Promise<string | null> {
  const parts = rel.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.length === 0 || parts.includes('..') || rel.includes('\0')) throw new InvalidArgument(`${what} "${rel}": not a path inside the container`);
  let dir = root;
  for (const p of parts.slice(0, -1)) {
    dir = path.join(dir, p);
    const st = await fsp.lstat(dir).catch(() => null);
    if (!st) return null;
    if (st.isSymbolicLink()) throw new InvalidArgument(`${what} "${rel}": goes through the symlink ${path.relative(root, dir)}`);
    if (!st.isDirectory()) return null;
  }
  return path.join(dir, parts[parts.length - 1]);
}

/** The container's writable layer again, in its new rootfs: what it deleted goes, then
 * its files are written (a directory it made opaque is emptied, then refilled). */
export async function applyRootfsDiff(rootfs: string, deleted: unknown, rootfsDiff: string | null): Promise<void> {
  if (deleted !== undefined && (!Array.isArray(deleted) || deleted.some((d) => typeof d !== 'string')))
    throw new InvalidArgument(`checkpoint archive: ${DELETED_FILES} is not a list of paths`);
  for (const rel of (deleted as string[] | undefined) ?? []) {
    const target = await insideRoot(rootfs, rel, DELETED_FILES);
    if (target) await fsp.rm(target, { recursive: true, force: true });
  }
  if (rootfsDiff) await unpackLayer(createReadStream(rootfsDiff), rootfs, 'none');
}
