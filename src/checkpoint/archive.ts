// A container's checkpoint archive, laid out as CRI-O and containerd write it and
// checkpointctl reads it: CRIU's images under checkpoint/, config.dump (what the container
// was), spec.dump (its OCI spec), rootfs-diff.tar (its writable layer's files) with
// deleted.files (what it removed from the image), stats-dump (CRIU's figures of the dump)
// and container.log. Written here, read back for a restore; nothing in an archive is
// trusted: names that leave their place are refused.
import { createReadStream, createWriteStream, promises as fsp } from 'fs';
import * as path from 'path';
import { Readable } from 'stream';
import { pipeline } from 'stream/promises';
import * as tar from 'tar-stream';
import { InvalidArgument } from '../errors';
import { unpackLayer } from '../image/unpack';
import { lgetxattr } from '../sys/libc';

export const CHECKPOINT_DIR = 'checkpoint';
export const CONFIG_DUMP = 'config.dump';
export const SPEC_DUMP = 'spec.dump';
export const ROOTFS_DIFF = 'rootfs-diff.tar';
export const DELETED_FILES = 'deleted.files';
export const STATS_DUMP = 'stats-dump';
export const CONTAINER_LOG = 'container.log';

/** A file of the archive: from disk, or bytes. */
export type ArchiveItem = { name: string; file: string } | { name: string; data: Buffer } | { name: string; dir: true };

/** A file's bytes as its entry: as long as it was when looked at (a log still being
 * written is cut there, so that the entry's size holds). */
type EntryHeader = Partial<tar.Header> & { name: string };

function addFileEntry(pack: tar.Pack, header: EntryHeader & { size: number }, file: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const done = (err?: Error | null) => (err ? reject(err) : resolve());
    if (header.size === 0) {
      pack.entry(header, Buffer.alloc(0), done);
      return;
    }
    const entry = pack.entry(header, done);
    createReadStream(file, { end: header.size - 1 }).on('error', reject).pipe(entry as unknown as NodeJS.WritableStream);
  });
}

async function addFile(pack: tar.Pack, name: string, file: string): Promise<void> {
  const st = await fsp.stat(file);
  await addFileEntry(pack, { name, size: st.size, mode: st.mode & 0o7777, mtime: st.mtime, type: 'file' }, file);
}

/** Write the items as a tar at out (created 0600). */
export async function writeArchive(out: string, items: ArchiveItem[], onItem?: (name: string) => void): Promise<void> {
  const pack = tar.pack();
  const writing = pipeline(pack, createWriteStream(out, { mode: 0o600 }));
  writing.catch(() => undefined); // awaited below
  try {
    for (const item of items) {
      onItem?.(item.name);
      if ('dir' in item) pack.entry({ name: item.name, type: 'directory', mode: 0o755 });
      else if ('data' in item) pack.entry({ name: item.name, mode: 0o600 }, item.data);
      else await addFile(pack, item.name, item.file);
    }
    pack.finalize();
  } catch (e) {
    pack.destroy(e as Error);
    await writing.catch(() => undefined);
    throw e;
  }
  await writing;
}

const WHITEOUT_OPAQUE = 'trusted.overlay.opaque';

/**
 * rootfs-diff.tar of an overlay's upper dir: its files, directories, links, fifos and
 * devices (sockets are not kept, as tar keeps none), and the paths it deleted from the
 * layers below (its whiteouts, and directories it made opaque, whose new content the tar
 * holds): those are deleted.files. Paths are relative to the container's root.
 */
export async function writeRootfsDiff(upper: string, out: string): Promise<{ deleted: string[] }> {
  const deleted: string[] = [];
  const pack = tar.pack();
  const writing = pipeline(pack, createWriteStream(out, { mode: 0o600 }));
  writing.catch(() => undefined);
  const add = (header: EntryHeader, body?: Buffer) =>
    new Promise<void>((resolve, reject) => {
      pack.entry(header, body ?? Buffer.alloc(0), (err) => (err ? reject(err) : resolve()));
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
  try {
    await walk('');
    pack.finalize();
  } catch (e) {
    pack.destroy(e as Error);
    await writing.catch(() => undefined);
    throw e;
  }
  await writing;
  return { deleted };
}

/** The archive's parts skiff reads: checkpoint/<file> (CRIU's images are one flat dir) and
 * the files at its top; anything else (CRI-O's network.status, bind.mounts) is skipped. */
function archivePlace(name: string): { top: string } | { image: string } | null {
  const clean = name.replace(/^\.\//, '').replace(/\/+$/, '');
  if (clean.includes('\0') || clean.startsWith('/') || clean.split('/').includes('..'))
    throw new InvalidArgument(`checkpoint archive entry "${name}": leaves the archive`);
  const parts = clean.split('/');
  if (parts.length === 1) return parts[0] === CHECKPOINT_DIR ? null : { top: parts[0] };
  if (parts.length === 2 && parts[0] === CHECKPOINT_DIR) return { image: parts[1] };
  return null;
}

async function* entries(archive: string) {
  const extract = tar.extract();
  const source = createReadStream(archive);
  const reading = pipeline(source, extract);
  reading.catch(() => undefined);
  try {
    for await (const entry of extract) yield entry as tar.Extract extends AsyncIterable<infer S> ? S & AsyncIterable<Buffer> : never;
    await reading;
  } finally {
    extract.destroy();
    source.destroy();
  }
}

const META_MAX = 16 * 1024 * 1024;

/** The small files at the archive's top that names lists (config.dump, spec.dump,
 * deleted.files), each at most 16 MiB. */
export async function readArchiveFiles(archive: string, names: string[]): Promise<Map<string, Buffer>> {
  const found = new Map<string, Buffer>();
  for await (const entry of entries(archive)) {
    const place = archivePlace(entry.header.name);
    if (entry.header.type === 'file' && place && 'top' in place && names.includes(place.top)) {
      if ((entry.header.size ?? 0) > META_MAX) throw new InvalidArgument(`checkpoint archive: ${place.top} is larger than 16 MiB`);
      const chunks: Buffer[] = [];
      for await (const c of entry) chunks.push(c);
      found.set(place.top, Buffer.concat(chunks));
    } else {
      entry.resume();
    }
  }
  return found;
}

/** CRIU's images into imagesDir and rootfs-diff.tar into dir (both existing, empty). */
export async function extractForRestore(archive: string, imagesDir: string, dir: string): Promise<{ rootfsDiff: string | null }> {
  let rootfsDiff: string | null = null;
  for await (const entry of entries(archive)) {
    const place = archivePlace(entry.header.name);
    const target = !place || entry.header.type !== 'file' ? null : 'image' in place ? path.join(imagesDir, place.image) : place.top === ROOTFS_DIFF ? path.join(dir, ROOTFS_DIFF) : null;
    if (!target) {
      entry.resume();
      continue;
    }
    await pipeline(Readable.from(entry), createWriteStream(target, { mode: 0o600, flags: 'wx' }));
    if (place && 'top' in place) rootfsDiff = target;
  }
  return { rootfsDiff };
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
