// Users and groups of an image: /etc/passwd and /etc/group parsed from the container's
// rootfs (never following a symlink out of it), and USER strings resolved against them
// as Docker and containerd resolve them.
import { promises as fsp } from 'fs';
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

const MAX_ID = 2 ** 31 - 1;

function lines(text: string): string[][] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => l.split(':'));
}

const isId = (s: string | undefined) => s !== undefined && /^\d{1,10}$/.test(s) && Number(s) <= MAX_ID;

export function parsePasswd(text: string): PasswdEntry[] {
  return lines(text)
    .filter((f) => f.length >= 4 && f[0] && isId(f[2]) && isId(f[3]))
    .map((f) => ({ name: f[0], uid: Number(f[2]), gid: Number(f[3]), home: f[5] ?? '/' }));
}

export function parseGroup(text: string): GroupEntry[] {
  return lines(text)
    .filter((f) => f.length >= 3 && f[0] && isId(f[2]))
    .map((f) => ({ name: f[0], gid: Number(f[2]), members: (f[3] ?? '').split(',').map((m) => m.trim()).filter(Boolean) }));
}

/** Read a file of the rootfs with every symlink resolved inside the rootfs. */
async function readInRoot(rootfs: string, rel: string): Promise<string> {
  let current = '/';
  const parts = rel.split('/').filter(Boolean);
  for (let hops = 0; parts.length; ) {
    const part = parts.shift()!;
    if (part === '.') continue;
    const next = part === '..' ? path.posix.dirname(current) : path.posix.join(current, part);
    const st = await fsp.lstat(path.join(rootfs, next));
    if (st.isSymbolicLink()) {
      if (++hops > 40) throw new InvalidArgument(`${rel}: too many symlinks in the image`);
      const target = await fsp.readlink(path.join(rootfs, next));
      parts.unshift(...target.split('/').filter(Boolean));
      if (target.startsWith('/')) current = '/';
      continue;
    }
    current = next;
  }
  const fh = await fsp.open(path.join(rootfs, current), 'r');
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.size > 16 * 1024 * 1024) return '';
    return await fh.readFile('utf8');
  } finally {
    await fh.close();
  }
}

export async function readPasswdDb(rootfs: string): Promise<PasswdDb> {
  const read = (f: string) => readInRoot(rootfs, f).catch(() => '');
  const [p, g] = await Promise.all([read('etc/passwd'), read('etc/group')]);
  return { users: parsePasswd(p), groups: parseGroup(g) };
}

export function checkId(what: string, v: number): number {
  if (!Number.isInteger(v) || v < 0 || v > MAX_ID) throw new InvalidArgument(`${what} ${v} is out of range (0..${MAX_ID})`);
  return v;
}

/**
 * The uid, gid and image groups of a user spec: `user`, `uid`, `user:group`, `uid:gid`
 * (names looked up in the image; a name that is not there is an error).
 */
export function resolveUser(db: PasswdDb, spec: { user?: string; uid?: number; gid?: number }): { uid: number; gid: number; name?: string; groups: number[] } {
  let uid = 0;
  let gid: number | undefined;
  let name: string | undefined;
  const [u, g] = (spec.user ?? '').split(':', 2);
  if (spec.uid !== undefined) {
    uid = checkId('uid', spec.uid);
    const e = db.users.find((x) => x.uid === uid);
    name = e?.name;
    gid = e?.gid;
  } else if (u) {
    if (/^\d+$/.test(u)) {
      uid = checkId('uid', Number(u));
      const e = db.users.find((x) => x.uid === uid);
      name = e?.name;
      gid = e?.gid;
    } else {
      const e = db.users.find((x) => x.name === u);
      if (!e) throw new InvalidArgument(`user "${u}" not found in the image's /etc/passwd`);
      uid = e.uid;
      gid = e.gid;
      name = e.name;
    }
  }
  if (spec.gid !== undefined) gid = checkId('gid', spec.gid);
  else if (g) {
    if (/^\d+$/.test(g)) gid = checkId('gid', Number(g));
    else {
      const e = db.groups.find((x) => x.name === g);
      if (!e) throw new InvalidArgument(`group "${g}" not found in the image's /etc/group`);
      gid = e.gid;
    }
  }
  const groups = name ? db.groups.filter((x) => x.members.includes(name!)).map((x) => x.gid) : [];
  return { uid, gid: gid ?? 0, name, groups };
}
