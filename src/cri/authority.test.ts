// The CRI socket accepts what older grpc-go clients (kubelet <= 1.25) send: the
// socket's path as :authority, which Node's HTTP/2 alone refuses with PROTOCOL_ERROR.
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as http2 from 'http2';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import * as grpc from '@grpc/grpc-js';
import { Logger } from '../log';
import { encodeLiterals, validAuthority } from './authority';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const hpack = require('hpack.js') as { decompressor: { create(o: { table: { size: number } }): { write(b: Buffer): void; execute(): void; read(): { name: string; value: string } | null } } };

/**
 * One Version call as grpc-go makes it: the client preface, then nothing until the
 * server's SETTINGS came, then the request. Resolves with the trailers' grpc-status.
 */
function callAfterServerSettings(sock: string, authority: string): Promise<string> {
  const frame = (type: number, flags: number, stream: number, payload: Buffer) => {
    const h = Buffer.alloc(9);
    h.writeUIntBE(payload.length, 0, 3);
    h[3] = type;
    h[4] = flags;
    h.writeUInt32BE(stream, 5);
    return Buffer.concat([h, payload]);
  };
  const decoder = hpack.decompressor.create({ table: { size: 4096 } });
  return new Promise((resolve, reject) => {
    const s = net.connect(sock);
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error('no answer in 20 s: the server waits for the request and the client for its SETTINGS'));
    }, 20_000);
    const done = (e: Error | null, status?: string) => {
      clearTimeout(timer);
      s.destroy();
      if (e) reject(e);
      else resolve(status!);
    };
    let buf = Buffer.alloc(0);
    let sent = false;
    let status: string | undefined;
    s.on('error', (e) => done(e));
    s.on('close', () => done(new Error('the server closed the connection')));
    s.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'), frame(0x4, 0, 0, Buffer.alloc(0))]));
    s.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 9 && buf.length >= 9 + buf.readUIntBE(0, 3)) {
        const len = buf.readUIntBE(0, 3);
        const [type, flags, stream] = [buf[3], buf[4], buf.readUInt32BE(5) & 0x7fffffff];
        const payload = buf.subarray(9, 9 + len);
        buf = buf.subarray(9 + len);
        if (type === 0x4 && !(flags & 0x1)) {
          s.write(frame(0x4, 0x1, 0, Buffer.alloc(0)));
          if (!sent) {
            sent = true;
            const block = encodeLiterals([
              { name: ':method', value: 'POST' },
              { name: ':scheme', value: 'http' },
              { name: ':path', value: '/runtime.v1.RuntimeService/Version' },
              { name: ':authority', value: authority },
              { name: 'content-type', value: 'application/grpc' },
              { name: 'te', value: 'trailers' },
            ]);
            s.write(Buffer.concat([frame(0x1, 0x4, 1, block), frame(0x0, 0x1, 1, Buffer.alloc(5))]));
          }
        } else if (type === 0x1 && stream === 1) {
          decoder.write(payload);
          decoder.execute();
          for (let h = decoder.read(); h; h = decoder.read()) if (h.name === 'grpc-status') status = h.value;
          if (flags & 0x1) done(status === undefined ? new Error('trailers without grpc-status') : null, status);
        } else if (type === 0x7) done(new Error(`GOAWAY: error ${payload.readUInt32BE(4)}`));
        else if (type === 0x3 && stream === 1) done(new Error(`RST_STREAM: error ${payload.readUInt32BE(0)}`));
      }
    });
  });
}
import { CriClient } from './client';
import { CriServer } from './server';

describe('CRI socket: :authority from older gRPC clients', () => {
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
      // Metadata that changes between calls exercises the mirrored HPACK table.
      for (let i = 0; i < 3; i++) await old.runtime('ListContainers', { filter: { label_selector: { n: String(i).repeat(i + 1) } } });
      assert.deepEqual(seen.slice(-3), ['{"n":"0"}', '{"n":"11"}', '{"n":"222"}']);
      assert.equal((await c.runtime('Version', {})).runtime_name, 'skiff', 'a modern client on the same socket');
    } finally {
      c.close();
      old.close();
    }
  });

  it('serves a client that waits for the server\'s SETTINGS before its first request', async () => {
    assert.equal(await callAfterServerSettings(sock, 'localhost'), String(grpc.status.OK));
    assert.equal(await callAfterServerSettings(sock, sock), String(grpc.status.OK), 'with the socket path as :authority');
  });

  it('closes a connection that sends a megabyte without a request', async () => {
    const s = net.connect(sock);
    const closed = new Promise<void>((resolve) => s.once('close', () => resolve()));
    s.on('error', () => {}); // the server may reset it while this side still writes
    const frame = Buffer.alloc(9 + 16384);
    frame.writeUIntBE(16384, 0, 3);
    frame[3] = 0xa; // an extension frame type, which HTTP/2 says to ignore
    s.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]));
    for (let i = 0; i < 80 && !s.destroyed; i++) s.write(frame);
    await closed;
    const c = new CriClient(sock);
    try {
      assert.equal((await c.runtime('Version', {})).runtime_name, 'skiff', 'the server still serves');
    } finally {
      c.close();
    }
  });

  it('rewrites a header block spread over CONTINUATION frames', async () => {
    const session = http2.connect('http://localhost', { createConnection: () => net.connect(sock), maxSendHeaderBlockLength: 1 << 20 });
    try {
      const big = 'x'.repeat(40_000); // more than two 16 KiB frames of metadata
      const req = session.request({
        ':method': 'POST',
        ':path': '/runtime.v1.RuntimeService/Version',
        ':authority': sock,
        'content-type': 'application/grpc',
        te: 'trailers',
        'x-big': big,
      });
      req.end(Buffer.from([0, 0, 0, 0, 0])); // an empty VersionRequest
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

  it('knows a valid authority and encodes plain literals', () => {
    assert.ok(validAuthority('localhost'));
    assert.ok(validAuthority('127.0.0.1:10250'));
    assert.ok(validAuthority('[::1]:80'));
    assert.ok(!validAuthority('/run/skiff/skiff.sock'));
    assert.ok(!validAuthority(''));
    const block = encodeLiterals([{ name: 'a', value: 'x'.repeat(200) }]);
    // 0x00, name length 1, 'a', value length 200 as a 7-bit-prefix integer (127 + 73).
    assert.deepEqual([...block.subarray(0, 6)], [0x00, 0x01, 0x61, 0x7f, 73, 0x78]);
  });
});
