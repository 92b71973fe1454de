// The few libc calls skiffd needs that Node does not offer, called directly through
// koffi (never through a shell): mknod, lsetxattr and lgetxattr, bind mounts (id-mapped too), mounting
// through the new mount API, malloc_trim, one datagram to a unix socket (sd_notify), and the interface
// ioctls that read a bridge's address and delete a bridge.
import { readSync } from 'fs';
import koffi from 'koffi';

let lib: ReturnType<typeof bind> | null = null;

function bind() {
  const libc = koffi.load('libc.so.6');
  return {
    mknod: libc.func('int mknod(const char *path, uint32_t mode, uint64_t dev)'),
    lsetxattr: libc.func('int lsetxattr(const char *path, const char *name, const void *value, size_t size, int flags)'),
    lgetxattr: libc.func('long lgetxattr(const char *path, const char *name, void *value, size_t size)'),
    syscall: libc.func('long syscall(long nr, ...)'),
    umount2: libc.func('int umount2(const char *target, int flags)'),
    mount: libc.func('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const void *data)'),
    close: libc.func('int close(int fd)'),
    malloc_trim: libc.func('int malloc_trim(size_t pad)'),
    socket: libc.func('int socket(int domain, int type, int protocol)'),
    sendto: libc.func('long sendto(int fd, const void *buf, size_t len, int flags, const void *addr, uint32_t addrlen)'),
    ioctl: libc.func('int ioctl(int fd, unsigned long request, ...)'),
  };
}

function libc() {
  return (lib ??= bind());
}

function fail(call: string, path: string): never {
  const errno = koffi.errno();
  const err = new Error(`${call} ${path}: errno ${errno}`) as NodeJS.ErrnoException;
  err.errno = errno;
  err.syscall = call;
  err.path = path;
  throw err;
}

/** makedev(3) as glibc encodes it. */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return ((ma & 0xfffn) << 8n) | ((ma & ~0xfffn) << 32n) | (mi & 0xffn) | ((mi & ~0xffn) << 12n);
}

export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const S_IFIFO = 0o010000;

/** Give the C heap's free memory back to the system (glibc malloc_trim): a pull's zlib
 * and I/O buffers leave tens of MiB free but resident otherwise. */
export function mallocTrim(): void {
  libc().malloc_trim(0);
}

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const MSG_NOSIGNAL = 0x4000;

/** Send one datagram to the unix socket at `addr` (a struct sockaddr_un). */
export function sendUnixDatagram(addr: Buffer, msg: Buffer, what: string): void {
  const l = libc();
  const fd = l.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0) as number;
  if (fd < 0) fail('socket', what);
  try {
    if ((l.sendto(fd, msg, msg.length, MSG_NOSIGNAL, addr, addr.length) as number) < 0) fail('sendto', what);
  } finally {
    l.close(fd);
  }
}

export function mknod(path: string, mode: number, dev: bigint): void {
  if (libc().mknod(path, mode, dev) !== 0) fail('mknod', path);
}

export function lsetxattr(path: string, name: string, value: Buffer): void {
  if (libc().lsetxattr(path, name, value, value.length, 0) !== 0) fail('lsetxattr', path);
}

const ENODATA = 61;

/** An xattr of path itself (not of a symlink's target), at most 4 KiB; null when it has none. */
export function lgetxattr(path: string, name: string): Buffer | null {
  const value = Buffer.alloc(4096);
  const n = Number(libc().lgetxattr(path, name, value, value.length));
  if (n >= 0) return value.subarray(0, n);
  if (koffi.errno() === ENODATA) return null;
  fail('lgetxattr', path);
}

// The new mount API (Linux 5.2+; "lowerdir+" for overlayfs needs 6.8+). Its
// syscall numbers are the same on every architecture.
const SYS_move_mount = 429;
const SYS_fsopen = 430;
const SYS_fsconfig = 431;
const SYS_fsmount = 432;
const FSOPEN_CLOEXEC = 1;
const FSCONFIG_SET_FLAG = 0;
const FSCONFIG_SET_STRING = 1;
const FSCONFIG_CMD_CREATE = 6;
const FSMOUNT_CLOEXEC = 1;
const MOVE_MOUNT_F_EMPTY_PATH = 4;
const AT_FDCWD = -100;
export const MNT_DETACH = 2;

/** The kernel's own explanation of a failed fsconfig, read from the context fd. */
function fsContextMessages(fsfd: number): string {
  const out: string[] = [];
  const buf = Buffer.alloc(512);
  for (let i = 0; i < 8; i++) {
    let n = 0;
    try {
      n = readSync(fsfd, buf, 0, buf.length, null);
    } catch {
      break;
    }
    if (n <= 0) break;
    out.push(buf.subarray(0, n).toString().replace(/^[ewi] /, ''));
  }
  return out.join('; ');
}

export const MOUNT_ATTR_NOSUID = 0x2;
export const MOUNT_ATTR_NODEV = 0x4;
export const MOUNT_ATTR_NOEXEC = 0x8;

/**
 * Mount a filesystem built from options at target: [key, value] pairs are
 * set as strings, [key] alone as a flag, in order; attrs are MOUNT_ATTR_* flags.
 */
export function mountFs(fstype: string, target: string, options: ([string, string] | [string])[], attrs = 0): void {
  const sc = libc().syscall;
  const fsfd = Number(sc(SYS_fsopen, 'str', fstype, 'uint', FSOPEN_CLOEXEC));
  if (fsfd < 0) fail(`fsopen(${fstype})`, target);
  try {
    for (const o of options) {
      const r =
        o.length === 2
          ? sc(SYS_fsconfig, 'int', fsfd, 'uint', FSCONFIG_SET_STRING, 'str', o[0], 'str', o[1], 'int', 0)
          : sc(SYS_fsconfig, 'int', fsfd, 'uint', FSCONFIG_SET_FLAG, 'str', o[0], 'void *', null, 'int', 0);
      if (Number(r) < 0) {
        const errno = koffi.errno();
        throw Object.assign(new Error(`${fstype} option ${o[0]}${o.length === 2 ? `=${o[1]}` : ''}: errno ${errno} ${fsContextMessages(fsfd)}`), { errno });
      }
    }
    if (Number(sc(SYS_fsconfig, 'int', fsfd, 'uint', FSCONFIG_CMD_CREATE, 'void *', null, 'void *', null, 'int', 0)) < 0) {
      const errno = koffi.errno();
      throw Object.assign(new Error(`create ${fstype} for ${target}: errno ${errno} ${fsContextMessages(fsfd)}`), { errno });
    }
    const mfd = Number(sc(SYS_fsmount, 'int', fsfd, 'uint', FSMOUNT_CLOEXEC, 'uint', attrs));
    if (mfd < 0) fail(`fsmount(${fstype})`, target);
    try {
      if (Number(sc(SYS_move_mount, 'int', mfd, 'str', '', 'int', AT_FDCWD, 'str', target, 'uint', MOVE_MOUNT_F_EMPTY_PATH)) < 0)
        fail('move_mount', target);
    } finally {
      libc().close(mfd);
    }
  } finally {
    libc().close(fsfd);
  }
}

const SYS_open_tree = 428;
const SYS_mount_setattr = 442;
const OPEN_TREE_CLONE = 1;
const OPEN_TREE_CLOEXEC = 0o2000000;
const AT_EMPTY_PATH = 0x1000;
export const MOUNT_ATTR_RDONLY = 0x1;
const MOUNT_ATTR_IDMAP = 0x100000;

/**
 * Attach at target (an existing directory) a clone of the directory source with the
 * mount attributes attrSet (and, for MOUNT_ATTR_IDMAP, the user namespace usernsFd): the
 * clone is made detached (open_tree), given its attributes (an id mapping only a detached
 * mount may take), then attached, so target never shows source without them, even for
 * an instant. Linux 5.12+.
 */
function attachClone(source: string, target: string, attrSet: number, usernsFd = 0): void {
  const sc = libc().syscall;
  const tree = Number(sc(SYS_open_tree, 'int', AT_FDCWD, 'str', source, 'uint', OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC));
  if (tree < 0) fail('open_tree', source);
  try {
    // struct mount_attr { u64 attr_set, attr_clr, propagation, userns_fd; }
    const attr = Buffer.alloc(32);
    attr.writeBigUInt64LE(BigInt(attrSet), 0);
    attr.writeBigUInt64LE(BigInt(usernsFd), 24);
    if (Number(sc(SYS_mount_setattr, 'int', tree, 'str', '', 'uint', AT_EMPTY_PATH, 'void *', attr, 'size_t', attr.length)) < 0)
      fail(`mount_setattr(${attrSet & MOUNT_ATTR_IDMAP ? 'MOUNT_ATTR_IDMAP' : 'MOUNT_ATTR_RDONLY'})`, source);
    if (Number(sc(SYS_move_mount, 'int', tree, 'str', '', 'int', AT_FDCWD, 'str', target, 'uint', MOVE_MOUNT_F_EMPTY_PATH)) < 0)
      fail('move_mount', target);
  } finally {
    libc().close(tree);
  }
}

/** Attach at target a clone of source whose ids are seen through the user namespace
 * usernsFd (an open /proc/<pid>/ns/user). */
export function bindIdmapped(source: string, target: string, usernsFd: number): void {
  attachClone(source, target, MOUNT_ATTR_IDMAP, usernsFd);
}

/** Bind-mount source onto target already read-only (and, given usernsFd, id-mapped): no
 * writable view of source ever appears at target. */
export function bindMountReadOnly(source: string, target: string, usernsFd?: number): void {
  attachClone(source, target, MOUNT_ATTR_RDONLY | (usernsFd === undefined ? 0 : MOUNT_ATTR_IDMAP), usernsFd ?? 0);
}

const MS_BIND = 0x1000;

/** Bind-mount source (a file or directory) onto target, which must exist. */
export function bindMount(source: string, target: string): void {
  if (libc().mount(source, target, null, MS_BIND, null) !== 0) fail('mount --bind', `${source} -> ${target}`);
}

export function umount2(target: string, flags = 0): void {
  if (libc().umount2(target, flags) !== 0) fail('umount2', target);
}

const AF_INET = 2;
const SIOCGIFFLAGS = 0x8913;
const SIOCSIFFLAGS = 0x8914;
const SIOCGIFADDR = 0x8915;
const SIOCBRDELBR = 0x89a1;
const IFF_UP = 0x1;
const IFNAMSIZ = 16;
const ENODEV = 19;
const EADDRNOTAVAIL = 99;

/** A struct ifreq (40 bytes on 64-bit Linux) naming the interface. */
function ifreq(name: string): Buffer {
  const b = Buffer.alloc(40);
  if (Buffer.byteLength(name) >= IFNAMSIZ) throw new Error(`interface name "${name}" is longer than ${IFNAMSIZ - 1} bytes`);
  b.write(name, 0, 'utf8');
  return b;
}

function withInetSocket<T>(fn: (fd: number) => T, what: string): T {
  const l = libc();
  const fd = l.socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0) as number;
  if (fd < 0) fail('socket', what);
  try {
    return fn(fd);
  } finally {
    l.close(fd);
  }
}

/** The primary IPv4 address of an interface (SIOCGIFADDR); undefined when the
 * interface does not exist or has no IPv4 address. */
export function interfaceIPv4(name: string): string | undefined {
  return withInetSocket((fd) => {
    const req = ifreq(name);
    if (libc().ioctl(fd, SIOCGIFADDR, 'void *', req) !== 0) {
      const errno = koffi.errno();
      if (errno === ENODEV || errno === EADDRNOTAVAIL) return undefined;
      fail('SIOCGIFADDR', name);
    }
    // ifr_addr: a struct sockaddr_in at offset 16; sin_addr at 16 + 4.
    return [...req.subarray(20, 24)].join('.');
  }, name);
}

/** Take a bridge down and delete it (brctl delbr); a bridge that is gone is fine. */
export function deleteBridge(name: string): void {
  withInetSocket((fd) => {
    const l = libc();
    const req = ifreq(name);
    if (l.ioctl(fd, SIOCGIFFLAGS, 'void *', req) !== 0) {
      if (koffi.errno() === ENODEV) return;
      fail('SIOCGIFFLAGS', name);
    }
    const flags = req.readUInt16LE(IFNAMSIZ);
    if (flags & IFF_UP) {
      req.writeUInt16LE(flags & ~IFF_UP, IFNAMSIZ);
      if (l.ioctl(fd, SIOCSIFFLAGS, 'void *', req) !== 0) fail('SIOCSIFFLAGS', name);
    }
    if (l.ioctl(fd, SIOCBRDELBR, 'str', name) !== 0 && koffi.errno() !== ENODEV) fail('SIOCBRDELBR', name);
  }, name);
}
