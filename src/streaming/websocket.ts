// The WebSocket side of Kubernetes streaming: the channel protocols (v5/v4/v3/v2/plain
// channel.k8s.io and their base64 forms) for exec and attach, where each message starts
// with its channel number (0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize; v5 adds 255
// to close a channel), and port forwarding with two channels (data, error) per port.
import type { IncomingMessage } from 'http';
import type { Duplex } from 'stream';
import type { WebSocket } from 'ws';
import type * as Ws from 'ws';

// ws costs about 10 MB of RSS: loaded with the first WebSocket session.
let wsModule: typeof Ws | undefined;
const wsLib = (): typeof Ws => (wsModule ??= require('ws') as typeof Ws);
const OPEN = 1;
import { EventEmitter } from 'events';
import type { ShimStream } from '../shim/client';
import { InputQueue, pipeSession, RemoteCommandChannels, RemoteCommandProtocol, resizeParser } from './remotecommand';

const BINARY = ['v5.channel.k8s.io', 'v4.channel.k8s.io', 'v3.channel.k8s.io', 'v2.channel.k8s.io', 'channel.k8s.io'];
const BASE64 = ['v4.base64.channel.k8s.io', 'v3.base64.channel.k8s.io', 'v2.base64.channel.k8s.io', 'base64.channel.k8s.io'];
export const WS_PORTFORWARD = ['v4.channel.k8s.io', 'portforward.k8s.io', 'base64.portforward.k8s.io', 'channel.k8s.io'];
const STDIN = 0, STDOUT = 1, STDERR = 2, ERROR = 3, RESIZE = 4, CLOSE = 255;

function pick(offered: string[], ours: string[]): string | undefined {
  return offered.find((p) => ours.includes(p));
}

function offeredProtocols(req: IncomingMessage): string[] {
  return String(req.headers['sec-websocket-protocol'] ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
}

function accept(req: IncomingMessage, socket: Duplex, head: Buffer, protocols: string[]): Promise<{ ws: WebSocket; protocol: string }> {
  const offered = offeredProtocols(req);
  const protocol = offered.length === 0 ? 'channel.k8s.io' : pick(offered, protocols);
  return new Promise((resolve, reject) => {
    if (!protocol) {
      socket.end(`HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n\r\nnone of the offered subprotocols (${offered.join(', ')}) is served; use one of ${protocols.join(', ')}\n`);
      reject(new Error('no common websocket subprotocol'));
      return;
    }
    const handle = new (wsLib().WebSocketServer)({ noServer: true, perMessageDeflate: false, maxPayload: 16 * 1024 * 1024, handleProtocols: () => (offered.length ? protocol : false) });
    handle.handleUpgrade(req, socket, head, (ws) => resolve({ ws, protocol }));
  });
}

class Channels {
  private readonly base64: boolean;
  constructor(
    private readonly ws: WebSocket,
    protocol: string,
  ) {
    this.base64 = protocol.includes('base64');
  }
  send(ch: number, data: Buffer): void {
    if (this.ws.readyState !== OPEN) return;
    if (this.base64) this.ws.send(String.fromCharCode(48 + ch) + data.toString('base64'));
    else this.ws.send(Buffer.concat([Buffer.from([ch]), data]));
  }
  /** Incoming messages as (channel, payload). */
  onMessage(cb: (ch: number, data: Buffer) => void): void {
    this.ws.on('message', (raw: Buffer, isBinary: boolean) => {
      const buf = Buffer.isBuffer(raw) ? raw : Buffer.from(raw);
      if (buf.length === 0) return;
      if (this.base64 && !isBinary) cb(buf[0] - 48, Buffer.from(buf.subarray(1).toString('utf8'), 'base64'));
      else cb(buf[0], buf.subarray(1));
    });
  }
}

/** Serve an exec or attach over WebSocket. open() starts the shim stream. */
export async function serveRemoteCommandWs(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  want: { stdin: boolean; stdout: boolean; stderr: boolean; tty: boolean },
  open: () => Promise<ShimStream>,
  what: string,
): Promise<void> {
  const { ws, protocol } = await accept(req, socket, head, [...BINARY, ...BASE64]);
  const chans = new Channels(ws, protocol);
  const stdin = new InputQueue();
  const resize = new InputQueue();
  const gone = new EventEmitter();
  let stdinOpen = true;
  const closeStdin = () => {
    if (stdinOpen) stdin.end();
    stdinOpen = false;
  };
  chans.onMessage((ch, data) => {
    if (ch === STDIN && stdinOpen) stdin.push(data);
    else if (ch === RESIZE) resize.push(data);
    else if (ch === CLOSE && data[0] === STDIN) closeStdin();
  });
  ws.on('close', () => {
    closeStdin();
    gone.emit('gone');
  });
  const sink = (ch: number) => ({ write: (d: Buffer) => chans.send(ch, d), end: () => {} });
  const channels: RemoteCommandChannels = {
    stdin: want.stdin ? (stdin as RemoteCommandChannels['stdin']) : undefined,
    stdout: want.stdout ? sink(STDOUT) : undefined,
    stderr: want.stderr && !want.tty ? sink(STDERR) : undefined,
    onResize: want.tty ? (cb) => resize.on('data', resizeParser(cb)) : undefined,
    startInput: () => {
      stdin.flow();
      resize.flow();
    },
    error: sink(ERROR),
    onClientGone: (cb) => gone.once('gone', cb),
    close: () => ws.close(1000),
  };
  let s: ShimStream;
  try {
    s = await open();
  } catch (e) {
    chans.send(ERROR, Buffer.from(JSON.stringify({ metadata: {}, status: 'Failure', message: (e as Error).message, reason: 'InternalError' })));
    ws.close(1000);
    return;
  }
  await pipeSession(s, channels, (protocol.startsWith('v') ? protocol.replace('.base64', '') : 'channel.k8s.io') as RemoteCommandProtocol, what);
}

/** Port forwarding over WebSocket: ports from the query (?port=80&port=443); per port a
 * data channel (2i) and an error channel (2i+1), each first sending the port number. */
export async function servePortForwardWs(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  ports: number[],
  open: (port: number) => Promise<ShimStream>,
): Promise<void> {
  const { ws, protocol } = await accept(req, socket, head, WS_PORTFORWARD);
  const chans = new Channels(ws, protocol);
  const streams = new Map<number, ShimStream>();
  const portBytes = (p: number) => Buffer.from([p & 0xff, p >> 8]);
  for (const [i, port] of ports.entries()) {
    chans.send(2 * i, portBytes(port));
    chans.send(2 * i + 1, portBytes(port));
  }
  const inputs = ports.map(() => new InputQueue());
  chans.onMessage((ch, data) => {
    const i = ch >> 1;
    if (ch % 2 === 0 && i < ports.length) inputs[i].push(data);
  });
  ws.on('close', () => {
    for (const s of streams.values()) s.close();
  });
  await Promise.all(
    ports.map(async (port, i) => {
      try {
        const s = await open(port);
        streams.set(i, s);
        inputs[i].on('data', (d: Buffer) => s.write(d));
        inputs[i].flow();
        s.on('stdout', (d: Buffer) => chans.send(2 * i, d));
        await s.exited;
      } catch (e) {
        chans.send(2 * i + 1, Buffer.from((e as Error).message));
      }
    }),
  );
  ws.close(1000);
}
