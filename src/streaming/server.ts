// The streaming server behind CRI Exec, Attach and PortForward: the CRI call stores its
// request under a single-use token and answers with this server's URL; kubelet (or
// any client) then upgrades a request to that URL to SPDY/3.1 or WebSocket, as
// kubelet's own streaming server does.
import * as http from 'http';
import * as https from 'https';
import type { AddressInfo } from 'net';
import type { Duplex } from 'stream';
import type { Logger } from '../log';
import type { ShimStream } from '../shim/client';
import { serveRemoteCommandSpdy, servePortForwardSpdy } from './spdy_transport';
import { TokenCache } from './tokens';
import { servePortForwardWs, serveRemoteCommandWs } from './websocket';

export type StreamRequest =
  | { kind: 'exec'; containerId: string; cmd: string[]; tty: boolean; stdin: boolean; stdout: boolean; stderr: boolean }
  | { kind: 'attach'; containerId: string; tty: boolean; stdin: boolean; stdout: boolean; stderr: boolean }
  | { kind: 'portforward'; podId: string; ports: number[] };

/** What the streaming server asks of the runtime. */
export interface StreamBackend {
  exec(containerId: string, cmd: string[], tty: boolean, stdin: boolean): Promise<ShimStream>;
  attach(containerId: string, stdin: boolean, stdout: boolean, stderr: boolean): Promise<ShimStream>;
  portForward(podId: string, port: number): Promise<ShimStream>;
}

export interface StreamingOptions {
  /** host:port; port 0 picks a free one. */
  address: string;
  tls?: { cert: Buffer; key: Buffer };
}

function refuse(socket: Duplex, status: number, message: string): void {
  socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n${message}\n`);
}

export class StreamingServer {
  private readonly tokens = new TokenCache<StreamRequest>();
  private server: http.Server | https.Server | undefined;
  private base = '';
  private readonly sockets = new Set<Duplex>();

  constructor(
    private readonly backend: StreamBackend,
    private readonly log: Logger,
  ) {}

  async listen(o: StreamingOptions): Promise<void> {
    const i = o.address.lastIndexOf(':');
    const host = o.address.slice(0, i).replace(/^\[|\]$/g, '') || '127.0.0.1';
    const port = Number(o.address.slice(i + 1));
    const server = o.tls ? https.createServer({ cert: o.tls.cert, key: o.tls.key }) : http.createServer();
    server.on('request', (_req, res) => {
      res.writeHead(400, { 'Content-Type': 'text/plain' });
      res.end('an upgrade to SPDY/3.1 or WebSocket is required\n');
    });
    server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => {});
      this.upgrade(req, socket, head).catch((e: Error) => {
        this.log.warn('streaming session failed', { url: req.url?.replace(/\/[^/]+$/, '/…'), error: e.message });
        socket.destroy();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    this.server = server;
    const a = server.address() as AddressInfo;
    this.base = `${o.tls ? 'https' : 'http'}://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  }

  /** A URL, good once and for a minute, for a validated request. */
  url(req: StreamRequest): string {
    if (!this.server) throw new Error('streaming server is not listening');
    return `${this.base}/${req.kind}/${this.tokens.put(req)}`;
  }

  private async upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const u = new URL(req.url ?? '/', 'http://x');
    const m = /^\/(exec|attach|portforward)\/([A-Za-z0-9_-]+)$/.exec(u.pathname);
    const r = m ? this.tokens.take(m[2]) : undefined;
    if (!m || !r || r.kind !== m[1]) return refuse(socket, 404, 'unknown or expired streaming token');
    const upgrade = String(req.headers.upgrade ?? '').toLowerCase();
    const spdy = upgrade === 'spdy/3.1';
    if (!spdy && upgrade !== 'websocket') return refuse(socket, 400, `cannot upgrade to "${req.headers.upgrade ?? ''}": SPDY/3.1 or websocket`);
    if (r.kind === 'portforward') {
      const open = (port: number) => this.backend.portForward(r.podId, port);
      if (spdy) return servePortForwardSpdy(req, socket, head, open);
      const ports = u.searchParams.getAll('port').map(Number);
      const list = ports.length ? ports : r.ports;
      if (list.length === 0 || list.some((p) => !Number.isInteger(p) || p < 1 || p > 65535)) return refuse(socket, 400, 'port forwarding needs ports 1-65535 (?port=N)');
      return servePortForwardWs(req, socket, head, list, open);
    }
    const want = { stdin: r.stdin, stdout: r.stdout, stderr: r.stderr, tty: r.tty };
    const open = r.kind === 'exec' ? () => this.backend.exec(r.containerId, r.cmd, r.tty, r.stdin) : () => this.backend.attach(r.containerId, r.stdin, r.stdout, r.stderr && !r.tty);
    const what = r.kind === 'exec' ? `[${r.cmd.join(' ')}]` : `attach to ${r.containerId}`;
    if (spdy) return serveRemoteCommandSpdy(req, socket, head, want, open, what);
    return serveRemoteCommandWs(req, socket, head, want, open, what);
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    if (this.server) await new Promise<void>((r) => this.server!.close(() => r()));
  }
}
