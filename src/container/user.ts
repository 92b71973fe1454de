// Users and groups of an image: /etc/passwd and /etc/group read from the container's rootfs
// (symlinks resolved inside the rootfs, never out of it) and USER strings resolved against
// them the way containerd's oci.WithUser / WithAdditionalGIDs resolve them.
import { constants as fsc, promises as fsp } from 'fs';
import * as path from 'path';
import { InvalidArgument } from '../errors';

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

export interface PasswdDb {
  users: PasswdEntry[];
  groups: GroupEntry[];
}

/** Ids above this are refused: the shim takes them as int32, and a wrapped id could become root. */
export const MAX_ID = 2 ** 31 - 1;

// An /etc/passwd bigger than this is not an account database but an attack on our memory.
const MAX_DB_BYTES = 16 * 1024 * 1024;
const MAX_SYMLINK_HOPS = 40;

/** v if it is an id skiff accepts, else InvalidArgument naming what it was. */
export function checkId(what: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 0 || v > MAX_ID) throw new InvalidArgument(`${what} ${v} is out of range (0..${MAX_ID})`);
  return v;
}

// Up to 2^32-1 so that an entry with a huge id is still found by name and then refused
// by checkId with a clear message, instead of looking like a missing user.
const parseId = (s: string | undefined): number | undefined => (s !== undefined && /^\d{1,10}$/.test(s) && Number(s) <= 0xffffffff ? Number(s) : undefined);

/** Fields of each entry line: blank lines, comments and NIS "+"/"-" lines skipped. */
function entryLines(text: string): string[][] {
  const out: string[][] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith('+') || line.startsWith('-')) continue;
    out.push(line.split(':'));
  }
  return out;
}

/** name:password:uid:gid:gecos:home:shell; malformed lines are skipped. */
export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const f of entryLines(text)) {
    const uid = parseId(f[2]);
    const gid = parseId(f[3]);
    if (f.length < 4 || !f[0] || uid === undefined || gid === undefined) continue;
    out.push({ name: f[0], uid, gid, home: f[5] ?? '' });
  }
  return out;
}

/** name:password:gid:member,member; malformed lines are skipped. */
export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const f of entryLines(text)) {
    const gid = parseId(f[2]);
    if (f.length < 3 || !f[0] || gid === undefined) continue;
    const members = (f[3] ?? '').split(',').map((m) => m.trim()).filter(Boolean);
    out.push({ name: f[0], gid, members });
  }
  return out;
}

const isNumeric = (s: string) => /^\d+$/.test(s);

/**
 * uid and gid of a USER string: "", "user", "uid", "user:group", "uid:gid", "user:gid",
 * "uid:group". Names must exist in the image; a bare uid takes its primary gid from
 * /etc/passwd when listed there, else 0. "" is root.
 */
export function resolveUser(db: PasswdDb, spec: string): { uid: number; gid: number } {
  if (spec === '') return { uid: 0, gid: 0 };
  const parts = spec.split(':');
  if (parts.length > 2) throw new InvalidArgument(`user "${spec}" must be user, uid, user:group or uid:gid`);
  const [u, g] = parts;
  if (!u) throw new InvalidArgument(`user "${spec}" names no user`);
  if (g === '') throw new InvalidArgument(`user "${spec}" names an empty group`);
  let uid: number;
  let gid: number;
  if (isNumeric(u)) {
    uid = checkId('uid', Number(u));
    // Only consulted when no group is given, as containerd's WithUserID does.
    const e = g === undefined ? db.users.find((x) => x.uid === uid) : undefined;
    gid = e ? checkId(`gid of user "${e.name}"`, e.gid) : 0;
  } else {
    const e = db.users.find((x) => x.name === u);
    if (!e) throw new InvalidArgument(`user "${u}" not found in the image's /etc/passwd`);
    uid = checkId(`uid of user "${u}"`, e.uid);
    gid = checkId(`gid of user "${u}"`, e.gid);
  }
  if (g !== undefined) {
    if (isNumeric(g)) gid = checkId('gid', Number(g));
    else {
      const e = db.groups.find((x) => x.name === g);
      if (!e) throw new InvalidArgument(`group "${g}" not found in the image's /etc/group`);
      gid = checkId(`gid of group "${g}"`, e.gid);
    }
  }
  return { uid, gid };
}

/**
 * The gids of the /etc/group entries that list the user (a name, or a uid looked up in
 * /etc/passwd) as a member, except a group named like the user (containerd's
 * WithAdditionalGIDs: that is the primary group, not a supplemental one).
 */
export function imageSupplementalGroups(db: PasswdDb, user: string): number[] {
  const name = isNumeric(user) ? db.users.find((x) => x.uid === Number(user))?.name : user;
  if (!name) return [];
  return db.groups.filter((g) => g.name !== name && g.members.includes(name)).map((g) => checkId(`gid of group "${g.name}"`, g.gid));
}

const errCode = (e: unknown) => (e as NodeJS.ErrnoException).code;

/**
 * The host path of `rel` inside `rootfs` with every symlink resolved as if rootfs were
 * "/" (an absolute target restarts at the rootfs, ".." stops at it), or undefined when a
 * component is missing. The last component is returned unresolved only if it is not a link.
 */
async function resolveInRoot(rootfs: string, rel: string): Promise<string | undefined> {
  const parts = rel.split('/').filter(Boolean);
  let current = '/';
  let hops = 0;
  while (parts.length) {
    const part = parts.shift()!;
    if (part === '.') continue;
    if (part === '..') {
      current = path.posix.dirname(current);
      continue;
    }
    const next = path.posix.join(current, part);
    let st;
    try {
      st = await fsp.lstat(path.join(rootfs, next));
    } catch (e) {
      if (errCode(e) === 'ENOENT' || errCode(e) === 'ENOTDIR') return undefined;
      throw e;
    }
    if (st.isSymbolicLink()) {
      if (++hops > MAX_SYMLINK_HOPS) throw new InvalidArgument(`/${rel} in the image: too many levels of symbolic links`);
      const target = await fsp.readlink(path.join(rootfs, next));
      parts.unshift(...target.split('/').filter(Boolean));
      if (target.startsWith('/')) current = '/';
      continue;
    }
    if (parts.length && !st.isDirectory()) return undefined;
    current = next;
  }
  return path.join(rootfs, current);
}

/**
 * Text of a small regular file of the rootfs, '' when it is missing or not a regular file.
 * The walk above keeps symlinks inside the rootfs; the open then refuses a symlink in the
 * last place (O_NOFOLLOW) and does not block on a FIFO (O_NONBLOCK), and the opened file's
 * real path is checked to be under the rootfs, so a directory swapped for a symlink between
 * the walk and the open cannot make us read a host file.
 */
async function readRootfsFile(rootfs: string, rel: string): Promise<string> {
  const host = await resolveInRoot(rootfs, rel);
  if (!host) return '';
  let fh;
  try {
    fh = await fsp.open(host, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  } catch (e) {
    if (errCode(e) === 'ENOENT' || errCode(e) === 'ENOTDIR') return '';
    if (errCode(e) === 'ELOOP') throw new InvalidArgument(`/${rel} in the image changed into a symbolic link while it was read`);
    throw e;
  }
  try {
    const real = await fsp.readlink(`/proc/self/fd/${fh.fd}`);
    const root = await fsp.realpath(rootfs);
    if (real !== root && !real.startsWith(root === '/' ? '/' : `${root}/`)) throw new InvalidArgument(`/${rel} in the image resolves outside the container's root filesystem`);
    const st = await fh.stat();
    if (!st.isFile()) return '';
    if (st.size > MAX_DB_BYTES) throw new InvalidArgument(`/${rel} in the image is larger than ${MAX_DB_BYTES} bytes`);
    // Read at most one byte past the cap: a file growing under us is refused, not slurped.
    const buf = Buffer.alloc(Math.min(st.size, MAX_DB_BYTES) + 1);
    let n = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, n, buf.length - n, n);
      if (bytesRead === 0) break;
      n += bytesRead;
      if (n === buf.length) {
        if (n > MAX_DB_BYTES) throw new InvalidArgument(`/${rel} in the image is larger than ${MAX_DB_BYTES} bytes`);
        break;
      }
    }
    return buf.subarray(0, n).toString('utf8');
  } finally {
    await fh.close();
  }
}

/** /etc/passwd and /etc/group of a container rootfs (absolute path); missing files give no entries. */
export async function readPasswdDb(rootfs: string): Promise<PasswdDb> {
  if (!path.isAbsolute(rootfs)) throw new InvalidArgument(`rootfs "${rootfs}" must be an absolute path`);
  const [passwd, group] = await Promise.all([readRootfsFile(rootfs, 'etc/passwd'), readRootfsFile(rootfs, 'etc/group')]);
  return { users: parsePasswd(passwd), groups: parseGroup(group) };
}
