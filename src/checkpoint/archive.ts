// A container's checkpoint archive, laid out as CRI-O and containerd write it and
// checkpointctl reads it: CRIU's images under checkpoint/, config.dump (what the container
// was), spec.dump (its OCI spec), rootfs-diff.tar (its writable layer's files) with
// deleted.files (what it removed from the image), stats-dump (CRIU's figures of the dump)
// and container.log. Written here, read back for a restore (and by the CLI); nothing in an
// archive is trusted: names that leave their place are refused. The writable layer's
// part is rootfs_diff.ts.
import { createReadStream, createWriteStream, promises as fsp } from 'fs';
import * as path from 'path';
import { Readable } from 'stream';
import { pipeline } from 'stream/promises';
import * as tar from 'tar-stream';
import { InvalidArgument } from '../errors';

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
export type EntryHeader = Partial<tar.Header> & { name: string };

export function addFileEntry(pack: tar.Pack, header: EntryHeader & { size: number }, file: string): Promise<void> {
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

/** A tar at out (created 0600) of what fill adds to it; on an error nothing more is
 * written and the error is thrown (the caller removes out). */
export async function writeTar(out: string, fill: (pack: tar.Pack) => Promise<void>): Promise<void> {
  const pack = tar.pack();
  const writing = pipeline(pack, createWriteStream(out, { mode: 0o600 }));
  writing.catch(() => undefined); // awaited below
  try {
    await fill(pack);
    pack.finalize();
  } catch (e) {
    pack.destroy(e as Error);
    await writing.catch(() => undefined);
    throw e;
  }
  await writing;
}

/** Write the items as the archive at out. */
export function writeArchive(out: string, items: ArchiveItem[]): Promise<void> {
  return writeTar(out, async (pack) => {
    for (const item of items) {
      if ('dir' in item) pack.entry({ name: item.name, type: 'directory', mode: 0o755 });
      else if ('data' in item) pack.entry({ name: item.name, mode: 0o600 }, item.data);
      else await addFile(pack, item.name, item.file);
    }
  });
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

/** Where a checkpoint is read from: an archive file, or its content unpacked as a
 * directory (the layer of an image built from an archive). */
export type CheckpointSource = { tar: string } | { dir: string };

/** A regular file of a directory source (not a symlink), at most max bytes; null if absent. */
async function dirFile(dir: string, rel: string, max: number): Promise<Buffer | null> {
  const st = await fsp.lstat(path.join(dir, rel)).catch(() => null);
  if (!st) return null;
  if (!st.isFile()) throw new InvalidArgument(`checkpoint image: ${rel} is not a regular file`);
  if (st.size > max) throw new InvalidArgument(`checkpoint image: ${rel} is larger than ${max} bytes`);
  return fsp.readFile(path.join(dir, rel));
}

/** The small files at the checkpoint's top that names lists (config.dump, spec.dump,
 * deleted.files), each at most 16 MiB. */
export async function readArchiveFiles(source: CheckpointSource, names: string[]): Promise<Map<string, Buffer>> {
  const found = new Map<string, Buffer>();
  if ('dir' in source) {
    for (const name of names) {
      const data = await dirFile(source.dir, name, META_MAX);
      if (data) found.set(name, data);
    }
    return found;
  }
  for await (const entry of entries(source.tar)) {
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

/** CRIU's images into imagesDir, and where rootfs-diff.tar is: extracted into dir from an
 * archive (owned: the caller removes it), or the directory source's own (not owned). */
export async function extractForRestore(source: CheckpointSource, imagesDir: string, dir: string): Promise<{ rootfsDiff: string | null; owned: boolean }> {
  if ('dir' in source) {
    const from = path.join(source.dir, CHECKPOINT_DIR);
    for (const name of await fsp.readdir(from).catch(() => [] as string[])) {
      const st = await fsp.lstat(path.join(from, name));
      if (st.isFile()) await fsp.copyFile(path.join(from, name), path.join(imagesDir, name));
    }
    const diff = path.join(source.dir, ROOTFS_DIFF);
    const st = await fsp.lstat(diff).catch(() => null);
    if (st && !st.isFile()) throw new InvalidArgument(`checkpoint image: ${ROOTFS_DIFF} is not a regular file`);
    return { rootfsDiff: st ? diff : null, owned: false };
  }
  let rootfsDiff: string | null = null;
  for await (const entry of entries(source.tar)) {
    const place = archivePlace(entry.header.name);
    const target = !place || entry.header.type !== 'file' ? null : 'image' in place ? path.join(imagesDir, place.image) : place.top === ROOTFS_DIFF ? path.join(dir, ROOTFS_DIFF) : null;
    if (!target) {
      entry.resume();
      continue;
    }
    await pipeline(Readable.from(entry), createWriteStream(target, { mode: 0o600, flags: 'wx' }));
    if (place && 'top' in place) rootfsDiff = target;
  }
  return { rootfsDiff, owned: true };
}
