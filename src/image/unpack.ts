// Layer unpacking: a (compressed) layer tar streams into an empty snapshot
// directory, never buffered whole. OCI whiteouts become overlayfs whiteouts
// (a 0:0 char device; an "opaque" xattr for .wh..wh..opq). No entry may land
// outside the directory: absolute names, "..", and writes through a symlink
// an earlier entry planted are refused with an error naming the entry.
import { createHash } from 'crypto';
import { promises as fsp } from 'fs';
import { Decompress } from 'fzstd';
import * as path from 'path';
import { Readable, Transform } from 'stream';
import { pipeline } from 'stream/promises';
import * as tar from 'tar-stream';
import { createGunzip } from 'zlib';
import { InvalidArgument } from '../errors';
import { S_IFBLK, S_IFCHR, S_IFIFO, lsetxattr, makedev, mknod } from './libc';

export type Compression = 'gzip' | 'zstd' | 'none';

const LAYER_TYPES: Record<string, Compression> = {
  'application/vnd.oci.image.layer.v1.tar': 'none',
  'application/vnd.oci.image.layer.v1.tar+gzip': 'gzip',
  'application/vnd.oci.image.layer.v1.tar+zstd': 'zstd',
  'application/vnd.oci.image.layer.nondistributable.v1.tar': 'none',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip': 'gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd': 'zstd',
  'application/vnd.docker.image.rootfs.diff.tar': 'none',
  'application/vnd.docker.image.rootfs.diff.tar.gzip': 'gzip',
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip': 'gzip',
};

export function layerCompression(mediaType: string): Compression {
  const c = LAYER_TYPES[mediaType];
  if (!c) throw new InvalidArgument(`unsupported layer media type "${mediaType}"`);
  return c;
}

export class LayerEscape extends InvalidArgument {}

const WHITEOUT_PREFIX = '.wh.';
const OPAQUE_MARKER = '.wh..wh..opq';
const OVERLAY_OPAQUE_XATTR = 'trusted.overlay.opaque';

export interface UnpackResult {
  /** sha256 of the uncompressed tar: the layer's diff_id. */
  diffId: string;
  /** Xattrs that could not be applied as they were (reported, not fatal). */
  skippedXattrs: string[];
}

function zstdDecompressor(): Transform {
  let out: Transform;
  const d = new Decompress((chunk) => out.push(Buffer.from(chunk)));
  out = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      try {
        d.push(chunk);
        cb();
      } catch (e) {
        cb(e as Error);
      }
    },
    flush(cb) {
      try {
        d.push(new Uint8Array(0), true);
        cb();
      } catch (e) {
        cb(e as Error);
      }
    },
  });
  return out;
}

function decompressor(c: Compression): Transform {
  if (c === 'gzip') return createGunzip();
  if (c === 'zstd') return zstdDecompressor();
  return new Transform({ transform: (chunk, _e, cb) => cb(null, chunk) });
}

/** The path components of a tar entry name, refusing escapes. */
function entryParts(name: string, what: string): string[] {
  if (name.includes('\0')) throw new LayerEscape(`tar ${what} "${name}": NUL in name`);
  if (name.startsWith('/')) throw new LayerEscape(`tar ${what} "${name}": absolute path`);
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new LayerEscape(`tar ${what} "${name}": ".." leaves the layer`);
  return parts;
}

async function lstatOrNull(p: string) {
  try {
    return await fsp.lstat(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/** Walk (and make) the parent dirs of parts inside root; none may be a symlink. */
async function parentDir(root: string, parts: string[], name: string, create: boolean): Promise<string> {
  let dir = root;
  for (const p of parts.slice(0, -1)) {
    dir = path.join(dir, p);
    const st = await lstatOrNull(dir);
    if (!st) {
      if (!create) throw new InvalidArgument(`tar entry "${name}": ${path.relative(root, dir)} does not exist`);
      await fsp.mkdir(dir, { mode: 0o755 });
    } else if (st.isSymbolicLink()) {
      throw new LayerEscape(`tar entry "${name}": goes through the symlink ${path.relative(root, dir)}`);
    } else if (!st.isDirectory()) {
      throw new InvalidArgument(`tar entry "${name}": ${path.relative(root, dir)} is not a directory`);
    }
  }
  return dir;
}

async function removeExisting(target: string, keepDir: boolean): Promise<void> {
  const st = await lstatOrNull(target);
  if (!st || (keepDir && st.isDirectory())) return;
  await fsp.rm(target, { recursive: true, force: true });
}

async function writeFile(target: string, data: AsyncIterable<Uint8Array>, mode: number): Promise<void> {
  // 'wx' = O_CREAT|O_EXCL: never follows or reuses an existing path.
  const fh = await fsp.open(target, 'wx', mode & 0o777);
  try {
    for await (const chunk of data) await fh.write(chunk);
  } finally {
    await fh.close();
  }
}

function applyXattrs(target: string, header: tar.Header, skipped: string[]): void {
  const pax = (header.pax ?? {}) as Record<string, string>;
  for (const [key, value] of Object.entries(pax)) {
    if (!key.startsWith('SCHILY.xattr.')) continue;
    const name = key.slice('SCHILY.xattr.'.length);
    // The layer may not fake overlay metadata (whiteouts, opacity).
    if (name.startsWith('trusted.overlay.')) continue;
    // PAX values arrive decoded as UTF-8: bytes that were not valid UTF-8
    // cannot be recovered, so such a value is reported, not written wrong.
    if (value.includes('\ufffd')) {
      skipped.push(`${header.name}: ${name}`);
      continue;
    }
    lsetxattr(target, name, Buffer.from(value, 'utf8'));
  }
}

/**
 * Unpack one layer into dir (an existing, empty directory). Returns its
 * diff_id. On error the directory is left partly written: the caller owns it
 * and removes it.
 */
export async function unpackLayer(source: Readable, dir: string, compression: Compression): Promise<UnpackResult> {
  const hash = createHash('sha256');
  const hasher = new Transform({
    transform(chunk: Buffer, _e, cb) {
      hash.update(chunk);
      cb(null, chunk);
    },
  });
  const extract = tar.extract();
  const skippedXattrs: string[] = [];
  const dirTimes: { target: string; mtime: Date }[] = [];
  const piping = pipeline(source, decompressor(compression), hasher, extract);
  piping.catch(() => undefined); // awaited below; reported there
  try {
    for await (const entry of extract) {
      // tar-stream entries yield Buffers (its types say unknown).
      await applyEntry(dir, entry.header, entry as AsyncIterable<Uint8Array>, dirTimes, skippedXattrs);
      entry.resume(); // drain what applyEntry did not read
    }
    await piping;
  } catch (e) {
    extract.destroy();
    source.destroy();
    await piping.catch(() => undefined);
    throw e;
  }
  // Directory times last: creating entries inside changed them.
  for (const { target, mtime } of dirTimes.reverse()) await fsp.lutimes(target, mtime, mtime);
  return { diffId: `sha256:${hash.digest('hex')}`, skippedXattrs };
}

async function applyEntry(
  root: string,
  h: tar.Header,
  data: AsyncIterable<Uint8Array>,
  dirTimes: { target: string; mtime: Date }[],
  skipped: string[],
): Promise<void> {
  const parts = entryParts(h.name, 'entry');
  if (parts.length === 0) return; // the layer root itself ("./")
  const base = parts[parts.length - 1];
  const parent = await parentDir(root, parts, h.name, true);

  if (base === OPAQUE_MARKER) {
    lsetxattr(parent, OVERLAY_OPAQUE_XATTR, Buffer.from('y'));
    return;
  }
  if (base.startsWith(WHITEOUT_PREFIX)) {
    const hidden = base.slice(WHITEOUT_PREFIX.length);
    if (!hidden || hidden === '.' || hidden === '..' || hidden.includes('/'))
      throw new LayerEscape(`tar entry "${h.name}": bad whiteout`);
    const target = path.join(parent, hidden);
    await removeExisting(target, false);
    mknod(target, S_IFCHR | 0o000, makedev(0, 0));
    return;
  }

  const target = path.join(parent, base);
  const mode = h.mode ?? 0o644;
  switch (h.type) {
    case 'directory':
      await removeExisting(target, true);
      if (!(await lstatOrNull(target))) await fsp.mkdir(target, { mode: 0o700 });
      break;
    case 'file':
    case 'contiguous-file':
      await removeExisting(target, false);
      await writeFile(target, data, mode);
      break;
    case 'symlink':
      await removeExisting(target, false);
      // The link's text is data for the container; it is never followed here.
      await fsp.symlink(h.linkname ?? '', target);
      break;
    case 'link': {
      const linkParts = entryParts(h.linkname ?? '', `hardlink target of "${h.name}"`);
      if (linkParts.length === 0) throw new LayerEscape(`tar entry "${h.name}": hardlink to the layer root`);
      const source = path.join(await parentDir(root, linkParts, h.name, false), linkParts[linkParts.length - 1]);
      const st = await lstatOrNull(source);
      if (!st || st.isDirectory()) throw new InvalidArgument(`tar entry "${h.name}": hardlink target "${h.linkname}" is missing or a directory`);
      await removeExisting(target, false);
      await fsp.link(source, target);
      return; // the inode's metadata is the target's
    }
    case 'character-device':
    case 'block-device':
    case 'fifo': {
      await removeExisting(target, false);
      const kind = h.type === 'fifo' ? S_IFIFO : h.type === 'block-device' ? S_IFBLK : S_IFCHR;
      mknod(target, kind | (mode & 0o7777), makedev(h.devmajor ?? 0, h.devminor ?? 0));
      break;
    }
    default:
      throw new InvalidArgument(`tar entry "${h.name}": unsupported type ${h.type}`);
  }
  await fsp.lchown(target, h.uid ?? 0, h.gid ?? 0);
  // After chown, which clears setuid/setgid bits.
  if (h.type !== 'symlink') await fsp.chmod(target, mode & 0o7777);
  applyXattrs(target, h, skipped);
  const mtime = h.mtime ?? new Date(0);
  if (h.type === 'directory') dirTimes.push({ target, mtime });
  else await fsp.lutimes(target, mtime, mtime);
}
