// sd_notify(3) for Type=notify units: skiffd tells systemd when it serves (READY=1) and
// when it stops (STOPPING=1), so kubelet, ordered after skiff.service, starts against a
// socket that answers. The protocol is one datagram to the unix socket named in
// $NOTIFY_SOCKET ('@' for the abstract namespace); Node has no unix datagram sockets,
// so it goes through libc (image/libc.ts), as the other few libc calls do.
import { sendUnixDatagram } from './sys/libc';

const AF_UNIX = 1;

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
  sendUnixDatagram(notifyAddress(socketPath), Buffer.from(state), `sd_notify to ${socketPath}`);
  return true;
}
