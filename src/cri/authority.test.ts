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
