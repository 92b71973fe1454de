// skiffd's HTTP/2 server side against the clients it must serve: Node's http2 (nghttp2),
// grpc-js, a client that writes frames by hand as grpc-go does (waits for the server's
// SETTINGS, sends the socket path as :authority), and clients that break the protocol.
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as http2 from 'http2';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { Duplex } from 'stream';
import * as grpc from '@grpc/grpc-js';
import { adminServiceDefinition } from '../../admin/api';
import { GrpcCode } from '../../errors';
import { Logger } from '../../log';
import { CriClient } from '../client';
import { GrpcServer, Route } from '../grpc_server';
import { serviceDefinition } from '../proto';
import { CriServer } from '../server';
import { HpackDecoder, encodeHeaders } from './hpack';
import { H2Session, H2Stream } from './session';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const EMPTY_VERSION_REQUEST = Buffer.from([0, 0, 0, 0, 0]);

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
}

interface Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

/** A hand-written HTTP/2 client: sends what it is told, collects the server's frames. */
class RawClient {
  readonly frames: Frame[] = [];
  readonly closed: Promise<void>;
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  readonly sock: net.Socket;

  constructor(sockPath: string) {
    this.sock = net.connect(sockPath);
    this.sock.on('error', () => {}); // the server may reset it while this side still writes
    this.closed = new Promise((resolve) => this.sock.once('close', () => resolve()));
    this.sock.on('data', (chunk: Buffer) => {
      this.buf = Buffer.concat([this.buf, chunk]);
      while (this.buf.length >= 9 && this.buf.length >= 9 + this.buf.readUIntBE(0, 3)) {
        const len = this.buf.readUIntBE(0, 3);
        this.frames.push({ type: this.buf[3], flags: this.buf[4], stream: this.buf.readUInt32BE(5) & 0x7fffffff, payload: this.buf.subarray(9, 9 + len) });
        this.buf = this.buf.subarray(9 + len);
      }
      for (const w of this.waiters.splice(0)) w();
    });
    this.sock.once('close', () => this.waiters.splice(0).forEach((w) => w()));
  }

  write(...bufs: Buffer[]): void {
    this.sock.write(Buffer.concat(bufs));
  }

  /** The first frame (from `from` on) that `match` takes, within 20 s. */
  async next(match: (f: Frame) => boolean, from = 0): Promise<Frame> {
    const end = Date.now() + 20_000;
    for (;;) {
      const f = this.frames.slice(from).find(match);
      if (f) return f;
      if (this.sock.destroyed || Date.now() > end) throw new Error(`no such frame; got types ${this.frames.map((x) => x.type).join(',')}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 1000);
      });
    }
  }

  /** The GOAWAY that ends the connection, its error code, and the socket closed. */
  async goaway(): Promise<number> {
    const g = await this.next((f) => f.type === 0x7);
    await this.closed;
    return g.payload.readUInt32BE(4);
  }

  close(): void {
    this.sock.destroy();
  }
}

/** Headers of a request, as literals. */
function requestBlock(pathName: string, authority = 'localhost'): Buffer {
  return encodeHeaders([
    [':method', 'POST'],
    [':scheme', 'http'],
    [':path', pathName],
    [':authority', authority],
    ['content-type', 'application/grpc'],
    ['te', 'trailers'],
  ]);
}

/**
 * One Version call as grpc-go makes it: the client preface, then nothing until the
 * server's SETTINGS came, then the request. Resolves with the trailers' grpc-status.
 */
async function callAfterServerSettings(sock: string, authority: string): Promise<string> {
  const c = new RawClient(sock);
  try {
    c.write(PREFACE, frame(0x4, 0, 0, Buffer.alloc(0)));
    await c.next((f) => f.type === 0x4 && !(f.flags & 0x1));
    c.write(frame(0x4, 0x1, 0, Buffer.alloc(0)), frame(0x1, 0x4, 1, requestBlock('/runtime.v1.RuntimeService/Version', authority)), frame(0x0, 0x1, 1, EMPTY_VERSION_REQUEST));
    const decoder = new HpackDecoder(4096);
    const last = await c.next((f) => (f.type === 0x1 && f.stream === 1 && (f.flags & 0x1) !== 0) || f.type === 0x7 || f.type === 0x3);
    if (last.type !== 0x1) throw new Error(`frame type ${last.type}, error ${last.payload.readUInt32BE(last.type === 0x7 ? 4 : 0)}`);
    return decoder.decode(last.payload)['grpc-status'];
  } finally {
    c.close();
  }
}

describe('CRI socket: older gRPC clients (http2/session)', () => {
  let dir: string;
  let sock: string;
  let server: CriServer;
  const seen: string[] = [];

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-auth-'));
    sock = path.join(dir, 'skiff.sock');
    server = new CriServer(
      {
        runtime: {
          Version: async () => ({ version: '0.1.0', runtime_name: 'skiff', runtime_version: 'test', runtime_api_version: 'v1' }),
          ListContainers: async (req) => {
            seen.push(JSON.stringify(req.filter?.label_selector ?? {}));
            return { containers: [] };
          },
        },
        image: {},
      },
      new Logger('error'),
    );
    await server.listen(sock, 0o600);
  });
  after(async () => {
    await server.close(100);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('serves a client that sends the socket path as :authority, call after call', async () => {
    // grpc-js lets the authority be set: it then sends what old grpc-go sends.
    const c = new CriClient(sock);
    const old = new CriClient(sock, 'runtime.v1', { 'grpc.default_authority': sock });
    try {
      for (let i = 0; i < 5; i++) assert.equal((await old.runtime('Version', {})).runtime_name, 'skiff');
      // Metadata that changes between calls exercises the dynamic table.
      for (let i = 0; i < 3; i++) await old.runtime('ListContainers', { filter: { label_selector: { n: String(i).repeat(i + 1) } } });
      assert.deepEqual(seen.slice(-3), ['{"n":"0"}', '{"n":"11"}', '{"n":"222"}']);
      assert.equal((await c.runtime('Version', {})).runtime_name, 'skiff', 'a modern client on the same socket');
    } finally {
      c.close();
      old.close();
    }
  });

  it("serves a client that waits for the server's SETTINGS before its first request", async () => {
    assert.equal(await callAfterServerSettings(sock, 'localhost'), String(grpc.status.OK));
    assert.equal(await callAfterServerSettings(sock, sock), String(grpc.status.OK), 'with the socket path as :authority');
  });

  it('reads a header block spread over CONTINUATION frames', async () => {
    const session = http2.connect('http://localhost', { createConnection: () => net.connect(sock), maxSendHeaderBlockLength: 1 << 20 });
    try {
      const big = 'x'.repeat(40_000); // more than two 16 KiB frames of metadata
      const req = session.request({ ':method': 'POST', ':path': '/runtime.v1.RuntimeService/Version', ':authority': sock, 'content-type': 'application/grpc', te: 'trailers', 'x-big': big });
      req.end(EMPTY_VERSION_REQUEST);
      const status = await new Promise<string>((resolve, reject) => {
        req.on('trailers', (t) => resolve(String(t['grpc-status'])));
        req.on('response', (h) => h['grpc-status'] !== undefined && resolve(String(h['grpc-status'])));
        req.on('error', reject);
        req.resume();
      });
      assert.equal(status, String(grpc.status.OK));
    } finally {
      session.close();
    }
  });
});

/** Serve `server` on a unix socket at `sockPath`. */
async function listen(server: GrpcServer, sockPath: string): Promise<net.Server> {
  const listener = net.createServer((s) => server.accept(s));
  await new Promise<void>((resolve) => listener.listen(sockPath, resolve));
  return listener;
}

async function stop(listener: net.Server, server: GrpcServer, dir: string): Promise<void> {
  listener.close();
  await server.close(100);
  fs.rmSync(dir, { recursive: true, force: true });
}

describe('HTTP/2 framing and flow control (http2/session)', () => {
  const runtime = serviceDefinition('runtime.v1', 'RuntimeService');
  const images = adminServiceDefinition('Images');
  let dir: string;
  let sock: string;
  let server: GrpcServer;
  let listener: net.Server;
  let client: CriClient;
  const connectionErrors: string[] = [];
  /** What the slow client-stream handler took, message by message. */
  let imported = 0;

  const route = (method: string, kind: Route['kind'], run: Route['run'], def = runtime[method]): Route => ({ def, kind, method, pkg: 'runtime.v1', run });

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-h2-'));
    sock = path.join(dir, 'h2.sock');
    server = new GrpcServer({
      maxReceiveBytes: 16 << 20,
      maxSendBytes: 16 << 20,
      status: (e) => ({ code: GrpcCode.INTERNAL, details: (e as Error).message }),
      finished: () => {},
      connectionError: (e) => connectionErrors.push(e.message),
    });
    server.add('/runtime.v1.RuntimeService/Version', route('Version', 'unary', async () => ({ version: '0.1.0', runtime_name: 'test' })));
    // ListContainers: answers a container whose id is as long as the requested one, of 'y'.
    server.add(
      '/runtime.v1.RuntimeService/ListContainers',
      route('ListContainers', 'unary', async (req) => ({ containers: [{ id: 'y'.repeat((req as { filter: { id: string } }).filter.id.length) }] })),
    );
    // Import: takes each message slowly, so the client's window has to wait on it.
    const slowImport = async (messages: unknown) => {
      let bytes = 0;
      for await (const m of messages as AsyncIterable<{ data: Buffer }>) {
        bytes += m.data.length;
        imported++;
        await new Promise((r) => setTimeout(r, 5));
      }
      return { images: [{ id: String(bytes) }] };
    };
    server.add(images.Import.path, route('Import', 'clientStream', slowImport, images.Import));
    listener = await listen(server, sock);
    client = new CriClient(sock);
  });
  after(async () => {
    client.close();
    await stop(listener, server, dir);
  });

  it('takes a request and sends a reply both larger than the flow-control windows, frame by frame', async () => {
    // 5 MiB each way: the request past skiffd's 1 MiB stream window, the reply past the
    // client's (grpc-js: 64 KiB at first) and past many 16 KiB frames.
    const id = 'x'.repeat(5 << 20);
    const res = await client.runtime('ListContainers', { filter: { id } });
    assert.equal(res.containers.length, 1);
    assert.equal(res.containers[0].id.length, id.length);
    assert.ok(/^y+$/.test(res.containers[0].id));
  });

  it('answers many concurrent streams on one connection, each its own reply', async () => {
    const sizes = Array.from({ length: 300 }, (_, i) => (i * 997) % 70_000);
    const got = await Promise.all(sizes.map((n) => client.runtime('ListContainers', { filter: { id: 'x'.repeat(n) } })));
    assert.deepEqual(
      got.map((r) => r.containers[0].id.length),
      sizes,
    );
  });

  it("reads a client stream larger than the window at the handler's pace", async () => {
    const c = new grpc.Client(`unix:${sock}`, grpc.credentials.createInsecure());
    try {
      imported = 0;
      const chunk = Buffer.alloc(64 << 10, 7);
      const reply = await new Promise<{ images: { id: string }[] }>((resolve, reject) => {
        const call = c.makeClientStreamRequest(
          images.Import.path,
          images.Import.requestSerialize,
          images.Import.responseDeserialize as (b: Buffer) => { images: { id: string }[] },
          (err, res) => (err ? reject(err) : resolve(res!)),
        );
        for (let i = 0; i < 48; i++) call.write({ data: chunk }); // 3 MiB
        call.end();
      });
      assert.equal(reply.images[0].id, String(48 * chunk.length));
      assert.equal(imported, 48);
    } finally {
      c.close();
    }
  });

  it('answers PING and acknowledges SETTINGS', async () => {
    const c = new RawClient(sock);
    try {
      c.write(PREFACE, frame(0x4, 0, 0, Buffer.from([0, 4, 0, 0, 0x40, 0])), frame(0x6, 0, 0, Buffer.from('12345678')));
      const ack = await c.next((f) => f.type === 0x4 && (f.flags & 0x1) !== 0);
      assert.equal(ack.payload.length, 0);
      const pong = await c.next((f) => f.type === 0x6);
      assert.equal(pong.flags, 0x1);
      assert.equal(pong.payload.toString(), '12345678');
    } finally {
      c.close();
    }
  });

  it('waits for the client to open its window before sending more of a reply', async () => {
    const c = new RawClient(sock);
    try {
      // A stream window of 100 bytes: a 1000-byte reply goes out 100 bytes at a time.
      c.write(PREFACE, frame(0x4, 0, 0, Buffer.from([0, 4, 0, 0, 0, 100])));
      const block = requestBlock('/runtime.v1.RuntimeService/ListContainers');
      const request = Buffer.from([0, 0, 0, 0, 0]);
      // ListContainersRequest{filter{id: 1000 bytes}}: field 1 (filter) holding field 1 (id).
      const id = Buffer.alloc(1000, 0x78);
      const filter = Buffer.concat([Buffer.from([0x0a, 0xe8, 0x07]), id]);
      const body = Buffer.concat([Buffer.from([0x0a, filter.length & 0x7f | 0x80, filter.length >> 7]), filter]);
      request.writeUInt32BE(body.length, 1);
      c.write(frame(0x1, 0x4, 1, block), frame(0x0, 0x1, 1, Buffer.concat([request, body])));
      await c.next((f) => f.type === 0x0 && f.stream === 1);
      await new Promise((r) => setTimeout(r, 200));
      const data = () => c.frames.filter((f) => f.type === 0x0 && f.stream === 1).reduce((n, f) => n + f.payload.length, 0);
      assert.equal(data(), 100, 'no more than the window before a WINDOW_UPDATE');
      c.write(frame(0x8, 0, 1, Buffer.from([0, 0, 0x10, 0])));
      const end = await c.next((f) => f.type === 0x1 && f.stream === 1 && (f.flags & 0x1) !== 0);
      assert.equal(new HpackDecoder(4096).decode(end.payload)['grpc-status'], '0');
      assert.ok(data() > 1000);
    } finally {
      c.close();
    }
  });

  const broken: [string, Buffer[], number][] = [
    ['a connection that does not start with the preface', [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')], 0x1],
    ['DATA on stream 0', [PREFACE, frame(0x4, 0, 0, Buffer.alloc(0)), frame(0x0, 0, 0, Buffer.from('x'))], 0x1],
    ['a frame over the 16 KiB frame size', [PREFACE, frame(0x4, 0, 0, Buffer.alloc(0)), frame(0x0, 0, 1, Buffer.alloc(20_000))], 0x6],
    ['a header block naming an index past the tables', [PREFACE, frame(0x4, 0, 0, Buffer.alloc(0)), frame(0x1, 0x5, 1, Buffer.from([0xff, 0x40]))], 0x9],
    ['a connection WINDOW_UPDATE of 0', [PREFACE, frame(0x4, 0, 0, Buffer.alloc(0)), frame(0x8, 0, 0, Buffer.alloc(4))], 0x1],
    ['CONTINUATION outside a header block', [PREFACE, frame(0x4, 0, 0, Buffer.alloc(0)), frame(0x9, 0x4, 1, Buffer.alloc(1))], 0x1],
    ['a first frame that is not SETTINGS', [PREFACE, frame(0x6, 0, 0, Buffer.alloc(8))], 0x1],
    ['SETTINGS of a bad length', [PREFACE, frame(0x4, 0, 0, Buffer.alloc(5))], 0x6],
    ['a window past 2^31-1', [PREFACE, frame(0x4, 0, 0, Buffer.alloc(0)), frame(0x8, 0, 0, Buffer.from([0x7f, 0xff, 0xff, 0xff]))], 0x3],
    ['PUSH_PROMISE from a client', [PREFACE, frame(0x4, 0, 0, Buffer.alloc(0)), frame(0x5, 0x4, 1, Buffer.alloc(4))], 0x1],
  ];
  for (const [what, bytes, code] of broken) {
    it(`ends ${what} with GOAWAY (error ${code}) and serves on`, async () => {
      const c = new RawClient(sock);
      try {
        c.write(...bytes);
        assert.equal(await c.goaway(), code);
      } finally {
        c.close();
      }
      assert.equal((await client.runtime('Version', {})).runtime_name, 'test', 'the server still serves');
    });
  }

  it('resets a stream the client sends DATA on past its END_STREAM (or drops the DATA once the stream is over), and serves the connection on', async () => {
    const c = new RawClient(sock);
    try {
      const version = requestBlock('/runtime.v1.RuntimeService/Version');
      c.write(PREFACE, frame(0x4, 0, 0, Buffer.alloc(0)), frame(0x1, 0x4, 1, version), frame(0x0, 0x1, 1, EMPTY_VERSION_REQUEST), frame(0x0, 0, 1, EMPTY_VERSION_REQUEST));
      // Version answers on a later turn: the extra DATA, read with the request, finds the stream open.
      const rst = await c.next((f) => (f.type === 0x3 && f.stream === 1) || (f.type === 0x1 && f.stream === 1 && (f.flags & 0x1) !== 0));
      if (rst.type === 0x3) assert.equal(rst.payload.readUInt32BE(0), 0x5);
      c.write(frame(0x1, 0x4, 3, requestBlock('/runtime.v1.RuntimeService/Version')), frame(0x0, 0x1, 3, EMPTY_VERSION_REQUEST));
      const end = await c.next((f) => f.type === 0x1 && f.stream === 3 && (f.flags & 0x1) !== 0);
      assert.equal(new HpackDecoder(4096).decode(end.payload)['grpc-status'], '0');
    } finally {
      c.close();
    }
  });

  it('stops reading a request it already answered (RST_STREAM NO_ERROR), as gRPC servers do', async () => {
    const c = new RawClient(sock);
    try {
      // An unknown method is answered at once, while the request's DATA is still to come.
      c.write(PREFACE, frame(0x4, 0, 0, Buffer.alloc(0)), frame(0x1, 0x4, 1, requestBlock('/no.Such/Method')));
      const answer = await c.next((f) => f.type === 0x1 && f.stream === 1);
      assert.equal(new HpackDecoder(4096).decode(answer.payload)['grpc-status'], String(GrpcCode.UNIMPLEMENTED));
      const rst = await c.next((f) => f.type === 0x3 && f.stream === 1);
      assert.equal(rst.payload.readUInt32BE(0), 0);
      c.write(frame(0x0, 0x1, 1, EMPTY_VERSION_REQUEST)); // late, and dropped
      c.write(frame(0x6, 0, 0, Buffer.from('still-up')));
      assert.equal((await c.next((f) => f.type === 0x6)).payload.toString(), 'still-up');
    } finally {
      c.close();
    }
  });

  it('logged each protocol error it ended a connection for', () => {
    assert.ok(connectionErrors.length >= broken.length, connectionErrors.join('; '));
    assert.ok(connectionErrors.every((m) => m.startsWith('HTTP/2 protocol error: ')));
  });
});

describe('HTTP/2 session: large replies', () => {
  it("writes a reply's DATA as it is, behind 9-byte frame headers, not copied frame by frame", async () => {
    // What goes to the socket, write by write.
    const written: Buffer[] = [];
    const sock = new Duplex({
      read() {},
      write(chunk: Buffer, _enc, done) {
        written.push(chunk);
        done();
      },
      writev(chunks, done) {
        for (const c of chunks) written.push(c.chunk as Buffer);
        done();
      },
    });
    const streams: H2Stream[] = [];
    const session = new H2Session(sock, (s) => streams.push(s), () => undefined);
    // A client with room for the whole reply: a 4 MiB stream window and connection window.
    const settings = Buffer.from([0, 0x4, ...[0, 0x40, 0, 0]]);
    sock.push(Buffer.concat([PREFACE, frame(0x4, 0, 0, settings), frame(0x8, 0, 0, Buffer.from([0, 0x40, 0, 0]))]));
    sock.push(frame(0x1, 0x5, 1, requestBlock('/runtime.v1.RuntimeService/ExecSync')));
    await new Promise((r) => setImmediate(r));
    assert.equal(streams.length, 1);
    const data = Buffer.alloc(1 << 20, 7);
    streams[0].reply(encodeHeaders([[':status', '200']]), data, encodeHeaders([['grpc-status', '0']]));
    await new Promise((r) => setImmediate(r));
    const payloads = written.filter((b) => b.buffer === data.buffer);
    assert.equal(payloads.length, (1 << 20) / (16 << 10), 'every 16 KiB DATA frame is a piece of the reply itself');
    assert.equal(Buffer.concat(payloads).compare(data), 0);
    assert.ok(written.every((b) => b.buffer === data.buffer || b.length <= 64), `other writes: ${written.filter((b) => b.buffer !== data.buffer).map((b) => b.length)}`);
    session.destroy();
  });
});
