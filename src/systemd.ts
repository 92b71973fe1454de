// sd_notify(3) for Type=notify units: skiffd tells systemd when it serves (READY=1) and
// when it stops (STOPPING=1), so kubelet, ordered after skiff.service, starts against a
// socket that answers. The protocol is one datagram to the unix socket named in
// $NOTIFY_SOCKET ('@' for the abstract namespace); Node has no unix datagram sockets,
// so this goes through libc with koffi, as the other few libc calls do.
import koffi from 'koffi';

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const MSG_NOSIGNAL = 0x4000;

let lib: ReturnType<typeof bind> | null = null;

function bind() {
  const libc = koffi.load('libc.so.6');
  return {
    socket: libc.func('int socket(int domain, int type, int protocol)'),
    sendto: libc.func('long sendto(int fd, const void *buf, size_t len, int flags, const void *addr, uint32_t addrlen)'),
    close: libc.func('int close(int fd)'),
  };
}

/** struct sockaddr_un for a $NOTIFY_SOCKET value, and its length. */
export function notifyAddress(socketPath: string): Buffer {
  const abstract = socketPath.startsWith('@');
  const name = Buffer.from(abstract ? `\0${socketPath.slice(1)}` : socketPath);
  if (name.length > 107) throw new Error(`NOTIFY_SOCKET ${socketPath}: longer than a unix socket path may be`);
  const addr = Buffer.alloc(2 + name.length + (abstract ? 0 : 1));
  addr.writeUInt16LE(AF_UNIX, 0);
  name.copy(addr, 2);
  return addr;
}

/** Send `state` ("READY=1", ...) to systemd; false when not run by systemd (no
 * $NOTIFY_SOCKET), throws when the socket is named but cannot be reached. */
export function sdNotify(state: string, socketPath = process.env.NOTIFY_SOCKET): boolean {
  if (!socketPath) return false;
  const addr = notifyAddress(socketPath);
  const l = (lib ??= bind());
  const fd = l.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0) as number;
  if (fd < 0) throw new Error(`sd_notify: socket: errno ${koffi.errno()}`);
  try {
    const msg = Buffer.from(state);
    if ((l.sendto(fd, msg, msg.length, MSG_NOSIGNAL, addr, addr.length) as number) < 0) throw new Error(`sd_notify to ${socketPath}: errno ${koffi.errno()}`);
  } finally {
    l.close(fd);
  }
  return true;
}
