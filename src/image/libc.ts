// The few libc calls the image store needs that Node does not offer, called
// directly through koffi (never through a shell): mknod and lsetxattr.
import koffi from 'koffi';

let lib: ReturnType<typeof bind> | null = null;

function bind() {
  const libc = koffi.load('libc.so.6');
  return {
    mknod: libc.func('int mknod(const char *path, uint32_t mode, uint64_t dev)'),
    lsetxattr: libc.func('int lsetxattr(const char *path, const char *name, const void *value, size_t size, int flags)'),
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

export function mknod(path: string, mode: number, dev: bigint): void {
  if (libc().mknod(path, mode, dev) !== 0) fail('mknod', path);
}

export function lsetxattr(path: string, name: string, value: Buffer): void {
  if (libc().lsetxattr(path, name, value, value.length, 0) !== 0) fail('lsetxattr', path);
}
