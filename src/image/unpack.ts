// Layer unpacking: a (compressed) layer tar streams into an empty snapshot
// directory, never buffered whole. OCI whiteouts become overlayfs whiteouts
// (a 0:0 char device; an "opaque" xattr for .wh..wh..opq). No entry may land
// outside the directory: absolute names, "..", and writes through a symlink
// an earlier entry planted are refused with an error naming the entry.
import { createHash } from 'crypto';
import {
  chmodSync,
  closeSync,
  fchmodSync,
  fchownSync,
  futimesSync,
  lchownSync,
  link,
  lstatSync,
  lutimesSync,
  mkdirSync,
  open,
  readFileSync,
  rmSync,
  Stats,
  symlink,
  writevSync,
} from 'fs';
import { Decompress } from 'fzstd';
import * as path from 'path';
import { Readable, Transform } from 'stream';
import { pipeline } from 'stream/promises';
import * as tar from 'tar-stream';
import { promisify } from 'util';
import { createGunzip } from 'zlib';
import { InvalidArgument } from '../errors';
import { S_IFBLK, S_IFCHR, S_IFIFO, lsetxattr, makedev, mknod } from '../sys/libc';

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
const S_ISGID = 0o2000;
// zlib's default 16 KiB output chunks cost a write (a thread-pool round trip) each.
const GUNZIP_CHUNK = 128 * 1024;
// The unpack runs on a thread of its own (unpack_thread.ts), so its file calls block,
// except those that make an inode: an async call is a round trip to libuv's pool (40-100
// us measured on a 2-vCPU VM, against a few us for most of these syscalls; a layer of
// 3000 small files took over 2 s that way), but making an inode can wait on the disk
// (ext4 reads the inode table, which a cold cache does not hold: 250 us a file measured),
// and on the pool the layers unpacking at once wait on it together, not in turn.
const openFd = promisify(open);
const symlinkAsync = promisify(symlink);
const linkAsync = promisify(link);
/** A file's bytes go out in writes of about this much (a write per chunk costs syscalls). */
const WRITE_BATCH = 512 * 1024;
// A small file is read whole and made while the next entries are read, up to
// FILES_IN_FLIGHT at once: a layer of small files waits on one inode after another
// otherwise (a third of its time, measured). An entry whose path is one of those, under
// one, or above one, and every entry that is not a regular file (a link may name one),
// waits until they are made: what the layer's order says still happens in that order.
const SMALL_FILE = 64 * 1024;
const FILES_IN_FLIGHT = 8;

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
  if (c === 'gzip') return createGunzip({ chunkSize: GUNZIP_CHUNK });
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

/** dir/name, for a name entryParts let through (no "", ".", ".." or "/"): nothing to
 * normalize, and path.join's normalizing was a tenth of the thread's time. */
function child(dir: string, name: string): string {
  return `${dir}/${name}`;
}

function lstatOrNull(p: string): Stats | null {
  return lstatSync(p, { throwIfNoEntry: false }) ?? null;
}

/** What one unpack keeps while it runs. */
interface UnpackState {
  root: string;
  /**
   * Directories under root this unpack made or checked (not symlinks), and
   * whether each is setgid (its new entries take its group): their children
   * need no lstat of each parent. Only this unpack changes the tree, and every
   * removal goes through removeExisting, which forgets what it removes.
   */
  knownDirs: Map<string, boolean>;
  /** Running as root: what this unpack creates is 0:0 unless a setgid parent gives its group. */
  asRoot: boolean;
  /** open(mode) makes a file with mode & ~umask (null: unknown, so always chmod). */
  umask: number | null;
  dirTimes: { target: string; mtime: Date }[];
  skippedXattrs: string[];
  /** Small files being made, by path (see FILES_IN_FLIGHT). */
  inFlight: Map<string, Promise<void>>;
  /** The first of them that failed. */
  inFlightError: unknown;
}

/** Wait until every small file in flight is made; throw the first failure. */
async function settleInFlight(st: UnpackState): Promise<void> {
  await Promise.allSettled(st.inFlight.values());
  if (st.inFlightError !== undefined) throw st.inFlightError;
}

/** Whether target is a path in flight, under one or above one. */
function touchesInFlight(st: UnpackState, target: string): boolean {
  for (const p of st.inFlight.keys()) if (p === target || p.startsWith(`${target}/`) || target.startsWith(`${p}/`)) return true;
  return false;
}

/** The umask, which Linux (4.7+) reports in /proc/self/status; null when it does not. */
function currentUmask(): number | null {
  try {
    const m = /^Umask:\s+([0-7]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? parseInt(m[1], 8) : null;
  } catch {
    return null;
  }
}

/**
 * Walk (and make) the parent dirs of parts inside root; none may be a symlink.
 * Returns the parent and whether it is setgid.
 */
function parentDir(st: UnpackState, parts: string[], name: string, create: boolean): { dir: string; setgid: boolean } {
  const root = st.root;
  let dir = root;
  let setgid = st.knownDirs.get(root) ?? true; // unknown: assume the worst (chown)
  for (const p of parts.slice(0, -1)) {
    dir = child(dir, p);
    const known = st.knownDirs.get(dir);
    if (known !== undefined) {
      setgid = known;
      continue;
    }
    const s = lstatOrNull(dir);
    if (!s) {
      if (!create) throw new InvalidArgument(`tar entry "${name}": ${path.relative(root, dir)} does not exist`);
      mkdirSync(dir, { mode: 0o755 }); // inherits setgid from a setgid parent
    } else if (s.isSymbolicLink()) {
      throw new LayerEscape(`tar entry "${name}": goes through the symlink ${path.relative(root, dir)}`);
    } else if (!s.isDirectory()) {
      throw new InvalidArgument(`tar entry "${name}": ${path.relative(root, dir)} is not a directory`);
    } else {
      setgid = (s.mode & S_ISGID) !== 0;
    }
    st.knownDirs.set(dir, setgid);
  }
  return { dir, setgid };
}

function removeExisting(st: UnpackState, target: string, keepDir: boolean): void {
  const s = lstatOrNull(target);
  if (!s || (keepDir && s.isDirectory())) return;
  const under = `${target}/`;
  for (const d of st.knownDirs.keys()) if (d === target || d.startsWith(under)) st.knownDirs.delete(d);
  rmSync(target, { recursive: true, force: true });
}

/**
 * Create target with create(), which fails with EEXIST when the path exists (it
 * never follows a symlink there); an earlier entry's path is removed and the
 * creation tried again. A fresh layer seldom has one: no lstat first.
 */
async function createFresh<T>(st: UnpackState, target: string, create: () => Promise<T>): Promise<T> {
  try {
    return await create();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  removeExisting(st, target, false);
  return create();
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
 * and removes it. Most of its file calls block: skiffd runs it on the unpack thread
 * (unpack_thread.ts), not on the event loop.
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
  const asRoot = process.geteuid?.() === 0 && process.getegid?.() === 0;
  const root = path.resolve(dir); // no trailing slash: paths under it are root + "/" + parts
  const st: UnpackState = { root, knownDirs: new Map(), asRoot, umask: currentUmask(), dirTimes: [], skippedXattrs: [], inFlight: new Map(), inFlightError: undefined };
  const rootStat = lstatSync(root);
  st.knownDirs.set(root, (rootStat.mode & S_ISGID) !== 0);
  const piping = pipeline(source, decompressor(compression), hasher, extract);
  piping.catch(() => undefined); // awaited below; reported there
  try {
    for await (const entry of extract) {
      // tar-stream entries yield Buffers (its types say unknown).
      await applyEntry(st, entry.header, entry as AsyncIterable<Uint8Array>);
      entry.resume(); // drain what applyEntry did not read
    }
    await settleInFlight(st);
    await piping;
  } catch (e) {
    extract.destroy();
    source.destroy();
    await piping.catch(() => undefined);
    await Promise.allSettled(st.inFlight.values()); // nothing writes once this returns
    throw e;
  }
  // Directory times last: creating entries inside changed them.
  for (const { target, mtime } of st.dirTimes.reverse()) lutimesSync(target, mtime, mtime);
  return { diffId: `sha256:${hash.digest('hex')}`, skippedXattrs: st.skippedXattrs };
}

/** What a new entry got when it was made: its owner is root (0:0), and its mode (null: unknown). */
interface Created {
  ownerIsRoot: boolean;
  mode: number | null;
}

/**
 * The metadata calls a new entry needs. Calls that would change nothing (a
 * root-owned 0644 file made by root under umask 022) are left out: a layer may
 * have many thousand entries. chmod comes after chown, which clears
 * setuid/setgid bits, and xattrs after both (chown drops security.capability).
 */
function metadataPlan(h: tar.Header, mode: number, created: Created) {
  const uid = h.uid ?? 0;
  const gid = h.gid ?? 0;
  return {
    uid,
    gid,
    mode: mode & 0o7777,
    mtime: h.mtime ?? new Date(0),
    chown: !(created.ownerIsRoot && uid === 0 && gid === 0),
    chmod: h.type !== 'symlink' && (created.mode === null || (mode & 0o7777) !== created.mode),
  };
}

/**
 * Owner, mode, xattrs and times of a new entry; through fd when it is an open regular
 * file (null: by path, never following a symlink). A directory's times are set at the
 * end of the unpack: creating entries inside changes them.
 */
function applyMetadata(st: UnpackState, target: string, h: tar.Header, mode: number, created: Created, fd: number | null): void {
  const p = metadataPlan(h, mode, created);
  if (p.chown) {
    if (fd === null) lchownSync(target, p.uid, p.gid);
    else fchownSync(fd, p.uid, p.gid);
  }
  if (p.chmod) {
    if (fd === null) chmodSync(target, p.mode); // never a symlink (metadataPlan)
    else fchmodSync(fd, p.mode);
  }
  applyXattrs(target, h, st.skippedXattrs);
  if (h.type === 'directory') st.dirTimes.push({ target, mtime: p.mtime });
  else if (fd === null) lutimesSync(target, p.mtime, p.mtime);
  else futimesSync(fd, p.mtime, p.mtime);
}

/** Writes bufs at fd's position pos, all of them; returns the position after them. */
function writeAll(fd: number, bufs: Uint8Array[], pos: number, name: string): number {
  let n = 0;
  for (const b of bufs) n += b.length;
  const wrote = writevSync(fd, bufs, pos);
  if (wrote === n) return pos + n;
  // A short write (a full disk writes what fits, then fails): the rest, one by one.
  if (wrote === 0) throw new Error(`tar entry "${name}": no byte written`);
  const rest = Buffer.concat(bufs).subarray(wrote);
  return writeAll(fd, [rest], pos + wrote, name);
}

async function applyEntry(st: UnpackState, h: tar.Header, data: AsyncIterable<Uint8Array>): Promise<void> {
  const parts = entryParts(h.name, 'entry');
  if (parts.length === 0) return; // the layer root itself ("./")
  const base = parts[parts.length - 1];
  const plainFile = h.type === 'file' || h.type === 'contiguous-file';
  if (st.inFlight.size && (!plainFile || base.startsWith(WHITEOUT_PREFIX) || touchesInFlight(st, `${st.root}/${parts.join('/')}`))) await settleInFlight(st);
  const { dir: parent, setgid: parentSetgid } = parentDir(st, parts, h.name, true);

  if (base === OPAQUE_MARKER) {
    lsetxattr(parent, OVERLAY_OPAQUE_XATTR, Buffer.from('y'));
    return;
  }
  if (base.startsWith(WHITEOUT_PREFIX)) {
    const hidden = base.slice(WHITEOUT_PREFIX.length);
    if (!hidden || hidden === '.' || hidden === '..' || hidden.includes('/'))
      throw new LayerEscape(`tar entry "${h.name}": bad whiteout`);
    const target = child(parent, hidden);
    removeExisting(st, target, false);
    mknod(target, S_IFCHR | 0o000, makedev(0, 0));
    return;
  }

  const target = child(parent, base);
  const mode = h.mode ?? 0o644;
  // A new entry is root's when root makes it, but takes a setgid parent's group.
  const ownerIsRoot = st.asRoot && !parentSetgid;
  switch (h.type) {
    case 'directory':
      try {
        mkdirSync(target, { mode: 0o700 });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        // An earlier entry's directory stays (with its contents); anything else goes.
        removeExisting(st, target, true);
        if (!lstatOrNull(target)) mkdirSync(target, { mode: 0o700 });
      }
      // chmod below sets the setgid bit as the entry says: its children follow it.
      st.knownDirs.set(target, (mode & S_ISGID) !== 0);
      applyMetadata(st, target, h, mode, { ownerIsRoot: false, mode: null }, null);
      return;
    case 'file':
    case 'contiguous-file': {
      const created = { ownerIsRoot, mode: st.umask === null ? null : mode & 0o777 & ~st.umask };
      if ((h.size ?? 0) <= SMALL_FILE) {
        const chunks: Uint8Array[] = [];
        for await (const chunk of data) chunks.push(chunk);
        const made = (async () => {
          const fd = await createFresh(st, target, () => openFd(target, 'wx', mode & 0o777));
          try {
            writeAll(fd, chunks, 0, h.name);
            applyMetadata(st, target, h, mode, created, fd);
          } finally {
            closeSync(fd);
          }
        })();
        st.inFlight.set(target, made);
        made.then(
          () => st.inFlight.delete(target),
          (e: unknown) => {
            st.inFlight.delete(target);
            st.inFlightError ??= e;
          },
        );
        while (st.inFlight.size >= FILES_IN_FLIGHT) await Promise.race(st.inFlight.values()).catch(() => undefined);
        if (st.inFlightError !== undefined) throw st.inFlightError;
        return;
      }
      // 'wx' = O_CREAT|O_EXCL: never follows or reuses an existing path.
      const fd = await createFresh(st, target, () => openFd(target, 'wx', mode & 0o777));
      try {
        // Chunks go out together in one writev once they add up to WRITE_BATCH.
        let batch: Uint8Array[] = [];
        let batched = 0;
        let pos = 0;
        for await (const chunk of data) {
          batch.push(chunk);
          batched += chunk.length;
          if (batched < WRITE_BATCH) continue;
          pos = writeAll(fd, batch, pos, h.name);
          batch = [];
          batched = 0;
        }
        if (batched) writeAll(fd, batch, pos, h.name);
        applyMetadata(st, target, h, mode, created, fd);
      } finally {
        closeSync(fd);
      }
      return;
    }
    case 'symlink':
      // The link's text is data for the container; it is never followed here.
      await createFresh(st, target, () => symlinkAsync(h.linkname ?? '', target));
      applyMetadata(st, target, h, mode, { ownerIsRoot, mode: null }, null);
      return;
    case 'link': {
      const linkParts = entryParts(h.linkname ?? '', `hardlink target of "${h.name}"`);
      if (linkParts.length === 0) throw new LayerEscape(`tar entry "${h.name}": hardlink to the layer root`);
      const source = child(parentDir(st, linkParts, h.name, false).dir, linkParts[linkParts.length - 1]);
      const s = lstatOrNull(source);
      if (!s || s.isDirectory()) throw new InvalidArgument(`tar entry "${h.name}": hardlink target "${h.linkname}" is missing or a directory`);
      await createFresh(st, target, () => linkAsync(source, target));
      return; // the inode's metadata is the target's
    }
    case 'character-device':
    case 'block-device':
    case 'fifo': {
      removeExisting(st, target, false);
      const kind = h.type === 'fifo' ? S_IFIFO : h.type === 'block-device' ? S_IFBLK : S_IFCHR;
      mknod(target, kind | (mode & 0o7777), makedev(h.devmajor ?? 0, h.devminor ?? 0));
      applyMetadata(st, target, h, mode, { ownerIsRoot: false, mode: null }, null);
      return;
    }
    default:
      throw new InvalidArgument(`tar entry "${h.name}": unsupported type ${h.type}`);
  }
}
