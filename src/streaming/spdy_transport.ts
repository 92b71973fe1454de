// The SPDY/3.1 side of Kubernetes streaming (what kubelet's streaming server speaks to
// client-go's SPDY executor and port forwarder): the upgrade handshake with
// X-Stream-Protocol-Version negotiation, then streams told apart by their
// "streamtype" header (error, stdin, stdout, stderr, resize; data and error per
// "requestid" for port forwarding). Every client stream gets a SYN_REPLY.
import { EventEmitter } from 'events';
import type { IncomingMessage } from 'http';
import type { Duplex } from 'stream';
import type { ShimStream } from '../shim/client';
import { InputQueue, pipeSession, REMOTECOMMAND_PROTOCOLS, RemoteCommandChannels, RemoteCommandProtocol, resizeParser } from './remotecommand';
import { SpdySession, SpdyStream } from './spdy';

export const PORTFORWARD_PROTOCOLS = ['portforward.k8s.io'];
const STREAM_WAIT_MS = 30_000;

function offered(req: IncomingMessage): string[] {
  const h = req.headers['x-stream-protocol-version'];
  return (Array.isArray(h) ? h.join(',') : String(h ?? '')).split(',').map((p) => p.trim()).filter(Boolean);
}

/** Answer the upgrade with the first of the client's protocols that we serve. */
function handshake(req: IncomingMessage, socket: Duplex, head: Buffer, ours: readonly string[]): { session: SpdySession; protocol: string } | undefined {
  const client = offered(req);
  const protocol = client.length === 0 ? undefined : client.find((p) => ours.includes(p));
  if (!protocol) {
    socket.end(`HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nno common stream protocol: client offers [${client.join(', ')}], server supports [${ours.join(', ')}]\n`);
    return undefined;
  }
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: ${protocol}\r\n\r\n`);
  if (head.length) socket.unshift(head);
  return { session: new SpdySession(socket, { server: true }), protocol };
}

/** A stream's incoming data, held until the session is joined to the process. */
function queued(s: SpdyStream): InputQueue {
  const q = new InputQueue();
  s.on('data', (d: Buffer) => q.push(d));
  s.on('end', () => q.end());
  return q;
}

export async function serveRemoteCommandSpdy(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  want: { stdin: boolean; stdout: boolean; stderr: boolean; tty: boolean },
  open: () => Promise<ShimStream>,
  what: string,
): Promise<void> {
  const hs = handshake(req, socket, head, REMOTECOMMAND_PROTOCOLS);
  if (!hs) return;
  const { session } = hs;
  const protocol = hs.protocol as RemoteCommandProtocol;
  const streams = new Map<string, SpdyStream>();
  const needed = ['error', ...(want.stdin ? ['stdin'] : []), ...(want.stdout ? ['stdout'] : []), ...(want.stderr && !want.tty ? ['stderr'] : [])];
  if (want.tty && protocol !== 'channel.k8s.io' && protocol !== 'v2.channel.k8s.io') needed.push('resize');
  const inputs = new Map<string, InputQueue>();
  const ready = new Promise<boolean>((resolve) => {
    const t = setTimeout(() => resolve(false), STREAM_WAIT_MS);
    session.on('stream', (s: SpdyStream) => {
      s.reply({});
      const type = s.headers['streamtype'] ?? '';
      streams.set(type, s);
      if (type === 'stdin' || type === 'resize') inputs.set(type, queued(s));
      if (needed.every((n) => streams.has(n))) {
        clearTimeout(t);
        resolve(true);
      }
    });
    session.on('close', () => {
      clearTimeout(t);
      resolve(false);
    });
  });
  if (!(await ready)) {
    session.close();
    return;
  }
  const gone = new EventEmitter();
  session.on('close', () => gone.emit('gone'));
  const sink = (s: SpdyStream | undefined) => (s ? { write: (d: Buffer) => void s.write(d), end: () => s.end() } : undefined);
  // The final status goes out after the output: a client may stop reading at it.
  const outputs = [streams.get('stdout'), streams.get('stderr')].filter((s): s is SpdyStream => !!s);
  const errorStream = streams.get('error')!;
  let last: Promise<void> = Promise.resolve();
  const after = (fn: () => void) => (last = last.then(() => Promise.all(outputs.map((o) => o.drained()))).then(fn));
  const stdin = inputs.get('stdin');
  const resize = inputs.get('resize');
  const channels: RemoteCommandChannels = {
    stdin: stdin as RemoteCommandChannels['stdin'],
    stdout: sink(streams.get('stdout')),
    stderr: sink(streams.get('stderr')),
    onResize: resize ? (cb) => resize.on('data', resizeParser(cb)) : undefined,
    startInput: () => {
      stdin?.flow();
      resize?.flow();
    },
    error: { write: (d: Buffer) => void after(() => errorStream.write(d)), end: () => void after(() => errorStream.end()) },
    onClientGone: (cb) => gone.once('gone', cb),
    close: () =>
      void after(() => {
        for (const s of streams.values()) s.end();
        session.close();
      }),
  };
  let shim: ShimStream;
  try {
    shim = await open();
  } catch (e) {
    const modern = protocol === 'v4.channel.k8s.io' || protocol === 'v5.channel.k8s.io';
    const message = (e as Error).message;
    channels.error.write(Buffer.from(modern ? JSON.stringify({ metadata: {}, status: 'Failure', message, reason: 'InternalError' }) : message));
    channels.close();
    return;
  }
  await pipeSession(shim, channels, protocol, what);
}

export async function servePortForwardSpdy(req: IncomingMessage, socket: Duplex, head: Buffer, open: (port: number) => Promise<ShimStream>): Promise<void> {
  const hs = handshake(req, socket, head, PORTFORWARD_PROTOCOLS);
  if (!hs) return;
  const { session } = hs;
  const pairs = new Map<string, { data?: SpdyStream; error?: SpdyStream; input?: InputQueue; started?: boolean }>();
  const forwards = new Set<ShimStream>();
  session.on('close', () => {
    for (const f of forwards) f.close();
  });
  const start = async (pair: { data?: SpdyStream; error?: SpdyStream; input?: InputQueue }, port: number): Promise<void> => {
    const data = pair.data!;
    const error = pair.error!;
    let f: ShimStream;
    try {
      if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`invalid port "${data.headers['port'] ?? ''}"`);
      f = await open(port);
    } catch (e) {
      error.write(Buffer.from(`error forwarding port ${port}: ${(e as Error).message}`));
      error.end();
      data.end();
      return;
    }
    forwards.add(f);
    f.on('stdout', (d: Buffer) => void data.write(d));
    pair.input!.on('data', (d: Buffer) => f.write(d));
    pair.input!.on('end', () => f.closeStdin());
    pair.input!.flow();
    await f.exited;
    forwards.delete(f);
    data.end();
    error.end();
  };
  session.on('stream', (s: SpdyStream) => {
    s.reply({});
    const id = s.headers['requestid'] ?? '';
    const pair = pairs.get(id) ?? {};
    pairs.set(id, pair);
    if (s.headers['streamtype'] === 'data') {
      pair.data = s;
      pair.input = queued(s);
    } else if (s.headers['streamtype'] === 'error') pair.error = s;
    else {
      s.reset?.(1);
      return;
    }
    if (pair.data && pair.error && !pair.started) {
      pair.started = true;
      void start(pair, Number(s.headers['port'] ?? pair.data.headers['port']));
    }
  });
  await new Promise<void>((r) => session.on('close', () => r()));
}
