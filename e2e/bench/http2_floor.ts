// The floor under every CRI call: one HTTP/2 request and response over a unix socket with
// Node's own http2 module, shaped as a gRPC unary call (a small framed message each way,
// grpc-status in trailers) but with no gRPC library on either side. The server runs as a
// child process with skiffd's Node.js flags (read from bin/skiffd), so that it differs
// from skiffd only by what skiffd's own code and grpc-js do per call: a server inside the
// benchmark process would share the client's event loop and skip the round trip between
// two processes that every call to skiffd makes.
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as http2 from 'http2';
import * as net from 'net';
import * as path from 'path';
import * as readline from 'readline';
import { withTimeout } from './util';

/** A gRPC message frame: not compressed, 4-byte length, then the message. */
function grpcFrame(message: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
}

/** About the size of a VersionResponse. */
const REPLY = grpcFrame(Buffer.from('\n\x050.1.0\x12\x05skiff\x1a\x0b0.1.0-bench\x22\x02v1', 'latin1'));
const REQUEST = grpcFrame(Buffer.alloc(0));

/** The Node.js flags bin/skiffd runs skiffd with. */
export function skiffdNodeFlags(): string[] {
  const launcher = fs.readFileSync(path.join(__dirname, '../../../bin/skiffd'), 'utf8');
  const m = /^node_flags="([^"]*)"$/m.exec(launcher);
  if (!m) throw new Error('bin/skiffd: no node_flags line');
  return m[1].split(/\s+/).filter(Boolean);
}

/** Serve the floor's calls on `sock` until killed; prints "ready" once listening. */
function serve(sock: string): void {
  const server = http2.createServer();
  server.on('stream', (stream) => {
    // As a gRPC server does: read the whole request, then headers, message, trailers.
    stream.on('data', () => {});
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'grpc-message': 'OK' }));
      stream.end(REPLY);
    });
  });
  process.once('SIGTERM', () => process.exit(0));
  fs.rmSync(sock, { force: true });
  server.listen(sock, () => process.stdout.write('ready\n'));
}

/** The floor server in its own process, and a client session to it. */
export class Http2Floor {
  private constructor(
    private readonly child: ChildProcess,
    private readonly session: http2.ClientHttp2Session,
  ) {}

  static async start(sock: string): Promise<Http2Floor> {
    const child = spawn(process.execPath, [...skiffdNodeFlags(), __filename, sock], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: '131072', ...process.env },
    });
    try {
      const lines = readline.createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
      const first = await withTimeout(lines.next(), 30_000, 'http2 floor server start');
      if (first.done || first.value !== 'ready') throw new Error(`http2 floor server exited (${child.exitCode ?? child.signalCode}) before it served`);
      const session = http2.connect('http://localhost', { createConnection: () => net.connect(sock) });
      await withTimeout(new Promise((resolve, reject) => session.once('connect', resolve).once('error', reject)), 10_000, 'http2 floor connect');
      return new Http2Floor(child, session);
    } catch (e) {
      child.kill('SIGKILL');
      throw e;
    }
  }

  /** One request and its whole response, trailers included. */
  call(): Promise<void> {
    return new Promise((resolve, reject) => {
      const req = this.session.request({ ':method': 'POST', ':path': '/floor.Floor/Call', 'content-type': 'application/grpc', te: 'trailers' });
      let status: string | undefined;
      req.on('trailers', (t) => (status = String(t['grpc-status'])));
      req.on('data', () => {});
      req.on('end', () => (status === '0' ? resolve() : reject(new Error(`http2 floor: grpc-status ${status ?? 'missing'}`))));
      req.on('error', reject);
      req.end(REQUEST);
    });
  }

  async stop(): Promise<void> {
    this.session.close();
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((r) => this.child.once('exit', r));
      this.child.kill('SIGKILL');
      await exited;
    }
  }
}

if (require.main === module) serve(process.argv[2]);
