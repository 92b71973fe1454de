// skiffd's gRPC transport on Node's HTTP/2 (grpc_server.ts): what a gRPC client sees of
// it, through grpc-js's client and through raw HTTP/2 requests where the headers matter.
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as http2 from 'http2';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import * as grpc from '@grpc/grpc-js';
import { adminServiceDefinition } from '../admin/api';
import { GrpcCode, InvalidArgument } from '../errors';
import { CriClient, readAll } from './client';
import { GrpcCall, GrpcServer, MessageReader, Route, encodeMessage, parseTimeout } from './grpc_server';
import { ENCODED, Encoded, codec, serviceDefinition } from './proto';

const runtime = serviceDefinition('runtime.v1', 'RuntimeService');
const images = adminServiceDefinition('Images');
const versionCodec = codec<{ version: string }>('VersionResponse');

/** The grpc-status and grpc-message a raw HTTP/2 request got (from trailers or trailers-only headers). */
interface RawAnswer {
  httpStatus: number;
  status?: string;
  message?: string;
  body: Buffer;
}

function rawCall(sock: string, headers: http2.OutgoingHttpHeaders, body: Buffer): Promise<RawAnswer> {
  const session = http2.connect('http://localhost', { createConnection: () => net.connect(sock) });
  session.on('error', () => {});
  return new Promise<RawAnswer>((resolve, reject) => {
    const req = session.request({ ':method': 'POST', 'content-type': 'application/grpc', te: 'trailers', ...headers });
    const answer: RawAnswer = { httpStatus: 0, body: Buffer.alloc(0) };
    const chunks: Buffer[] = [];
    const take = (h: http2.IncomingHttpHeaders) => {
      if (h['grpc-status'] !== undefined) answer.status = String(h['grpc-status']);
      if (h['grpc-message'] !== undefined) answer.message = decodeURI(String(h['grpc-message']));
    };
    req.on('response', (h) => {
      answer.httpStatus = Number(h[':status']);
      take(h);
    });
    req.on('trailers', take);
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve({ ...answer, body: Buffer.concat(chunks) }));
    req.on('error', reject);
    req.end(body);
  }).finally(() => session.close());
}

function framed(message: Buffer, flag = 0): Buffer {
  const head = Buffer.alloc(5);
  head[0] = flag;
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
}

describe('gRPC transport (grpc_server)', () => {
  let dir: string;
  let sock: string;
  let server: GrpcServer;
  let listener: net.Server;
  let client: CriClient;
  const finished: { method: string; error: unknown }[] = [];
  /** Set by a handler that waits to be cancelled: its signal's reason once aborted. */
  let aborted: Promise<unknown> | undefined;
  /** What GetContainerEvents does after its three events. */
  let streamMode = '';

  const route = (method: string, kind: Route['kind'], run: Route['run'], def = runtime[method]): Route => ({ def, kind, method, pkg: 'runtime.v1', run });
  /** A handler that answers when its call is cancelled (client, deadline or shutdown). */
  const untilCancelled = (_req: unknown, call: GrpcCall) => {
    aborted = new Promise((resolve) => call.signal.addEventListener('abort', () => resolve(call.signal.reason), { once: true }));
    return aborted.then(() => ({}));
  };

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-grpc-'));
    sock = path.join(dir, 'grpc.sock');
    server = new GrpcServer({
      maxReceiveBytes: 1024,
      maxSendBytes: 4096,
      status: (e) => ({ code: e instanceof InvalidArgument ? e.code : GrpcCode.INTERNAL, details: (e as Error).message }),
      finished: (r, _started, error) => finished.push({ method: r.method, error }),
    });
    server.add('/runtime.v1.RuntimeService/Version', route('Version', 'unary', async () => ({ version: '0.1.0', runtime_name: 'test' })));
    // Status: fails with a message that needs percent-encoding.
    server.add('/runtime.v1.RuntimeService/Status', route('Status', 'unary', async () => Promise.reject(new InvalidArgument('bad "x": 100% wrong, naïve ✓'))));
    // ContainerStatus: waits to be cancelled.
    server.add('/runtime.v1.RuntimeService/ContainerStatus', route('ContainerStatus', 'unary', untilCancelled));
    // ListContainers: a reply as big as the request's container id says.
    server.add('/runtime.v1.RuntimeService/ListContainers', route('ListContainers', 'unary', async (req) => ({ containers: [{ id: 'x'.repeat(Number((req as { filter: { id: string } }).filter.id)) }] })));
    // ListImages: one kept reply, encoded.
    const kept: Encoded = { [ENCODED]: versionCodec.encode({ version: 'kept' }) };
    server.add('/runtime.v1.RuntimeService/ListPodSandbox', route('ListPodSandbox', 'unary', async () => kept, runtime.Version));
    // GetContainerEvents: three events, then what the pod id asks: "fail", "wait", else OK.
    server.add(
      '/runtime.v1.RuntimeService/GetContainerEvents',
      route('GetContainerEvents', 'serverStream', async (_req, call) => {
        for (let i = 0; i < 3; i++) call.write({ container_id: `c${i}` });
        const mode = streamMode;
        if (mode === 'fail') throw new InvalidArgument('after three events');
        if (mode === 'wait') await untilCancelled(undefined, call);
      }),
    );
    server.add(
      '/skiff.v1.Images/Import',
      route(
        'Import',
        'clientStream',
        async (messages) => {
          let bytes = '';
          for await (const m of messages as AsyncIterable<{ data: Buffer }>) bytes += m.data.toString();
          return { images: [{ id: bytes }] };
        },
        images.Import,
      ),
    );
    listener = net.createServer((s) => server.accept(s));
    await new Promise<void>((resolve) => listener.listen(sock, resolve));
    client = new CriClient(sock);
  });
  after(async () => {
    client.close();
    listener.close();
    await server.close(100);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const code = (p: Promise<unknown>) => p.then(() => 0, (e: { code: number; details: string }) => e);

  it('answers a unary call, and reports it as finished', async () => {
    finished.length = 0;
    assert.equal((await client.runtime('Version', {})).runtime_name, 'test');
    assert.deepEqual(finished, [{ method: 'Version', error: undefined }]);
  });

  it("answers a handler's error with its code and message, percent-encoded on the wire", async () => {
    const e = (await code(client.runtime('Status', {}))) as { code: number; details: string };
    assert.equal(e.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(e.details, 'bad "x": 100% wrong, naïve ✓');
    assert.equal(decodeURI(encodeMessage('a\ud800b')), 'a\ufffdb', 'a lone surrogate does not break the trailer');
  });

  it('answers a method it does not know with UNIMPLEMENTED, naming it', async () => {
    const a = await rawCall(sock, { ':path': '/runtime.v1.RuntimeService/Nope' }, framed(Buffer.alloc(0)));
    assert.equal(a.status, String(grpc.status.UNIMPLEMENTED));
    assert.equal(a.message, 'The server does not implement the method /runtime.v1.RuntimeService/Nope');
  });

  it('refuses a request that is not gRPC with HTTP 415', async () => {
    const a = await rawCall(sock, { ':path': '/runtime.v1.RuntimeService/Version', 'content-type': 'text/plain' }, Buffer.alloc(0));
    assert.equal(a.httpStatus, 415);
  });

  it('ends a call at its grpc-timeout with DEADLINE_EXCEEDED and aborts its handler', async () => {
    const a = await rawCall(sock, { ':path': '/runtime.v1.RuntimeService/ContainerStatus', 'grpc-timeout': '200m' }, framed(Buffer.alloc(0)));
    assert.equal(a.status, String(grpc.status.DEADLINE_EXCEEDED));
    assert.equal(a.message, 'Deadline exceeded');
    assert.match(String(await aborted), /ContainerStatus: deadline exceeded/);
  });

  it('keeps each deadline apart: a later call with an earlier deadline expires first, a call answered in time is not touched', async function () {
    this.timeout(30_000);
    const started = Date.now();
    const late = rawCall(sock, { ':path': '/runtime.v1.RuntimeService/ContainerStatus', 'grpc-timeout': '2000m' }, framed(Buffer.alloc(0))).then((a) => ({ a, at: Date.now() - started }));
    await new Promise((r) => setTimeout(r, 50));
    const early = rawCall(sock, { ':path': '/runtime.v1.RuntimeService/ContainerStatus', 'grpc-timeout': '100m' }, framed(Buffer.alloc(0))).then((a) => ({ a, at: Date.now() - started }));
    const quick = await rawCall(sock, { ':path': '/runtime.v1.RuntimeService/Version', 'grpc-timeout': '1000m' }, framed(Buffer.alloc(0)));
    assert.equal(quick.status, '0');
    const [l, e] = await Promise.all([late, early]);
    assert.equal(e.a.status, String(grpc.status.DEADLINE_EXCEEDED));
    assert.equal(l.a.status, String(grpc.status.DEADLINE_EXCEEDED));
    assert.ok(e.at < l.at, `the 100 ms call ended at ${e.at} ms, the 2000 ms one at ${l.at} ms`);
    assert.ok(l.at >= 2000, `the 2000 ms call ended at ${l.at} ms`);
  });

  it('refuses a grpc-timeout it cannot read with INTERNAL', async () => {
    const a = await rawCall(sock, { ':path': '/runtime.v1.RuntimeService/Version', 'grpc-timeout': '5x' }, framed(Buffer.alloc(0)));
    assert.equal(a.status, String(grpc.status.INTERNAL));
    assert.equal(a.message, 'Invalid grpc-timeout value "5x"');
    assert.equal(parseTimeout('123456789S'), undefined, 'at most 8 digits');
    assert.equal(parseTimeout('2S'), 2000);
    assert.equal(parseTimeout('1500u'), 1.5);
    assert.equal(parseTimeout('S'), undefined);
  });

  it('refuses a request over the receive limit, and a reply over the send limit, with RESOURCE_EXHAUSTED', async () => {
    const big = (await code(client.runtime('ListContainers', { filter: { id: 'y'.repeat(2000) } }))) as { code: number; details: string };
    assert.equal(big.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.match(big.details, /^Received message larger than max \(\d+ vs 1024\)$/);
    const reply = (await code(client.runtime('ListContainers', { filter: { id: '5000' } }))) as { code: number; details: string };
    assert.equal(reply.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.match(reply.details, /^Sent message larger than max \(\d+ vs\. 4096\)$/);
    assert.equal((await client.runtime('ListContainers', { filter: { id: '100' } })).containers[0].id.length, 100);
  });

  it('refuses a compressed message with UNIMPLEMENTED, naming its encoding', async () => {
    const a = await rawCall(sock, { ':path': '/runtime.v1.RuntimeService/Version', 'grpc-encoding': 'gzip' }, framed(Buffer.from([1, 2, 3]), 1));
    assert.equal(a.status, String(grpc.status.UNIMPLEMENTED));
    assert.equal(a.message, 'Received message compressed with unsupported encoding "gzip"');
  });

  it('refuses a unary call without a request message, or with two', async () => {
    const none = await rawCall(sock, { ':path': '/runtime.v1.RuntimeService/Version' }, Buffer.alloc(0));
    assert.equal(none.status, String(grpc.status.UNIMPLEMENTED));
    assert.match(none.message!, /no request message/);
    const two = await rawCall(sock, { ':path': '/runtime.v1.RuntimeService/Version' }, Buffer.concat([framed(Buffer.alloc(0)), framed(Buffer.alloc(0))]));
    assert.equal(two.status, String(grpc.status.UNIMPLEMENTED));
    assert.match(two.message!, /second request message/);
  });

  it('reads a request split across DATA frames, its frame header too', async () => {
    const session = http2.connect('http://localhost', { createConnection: () => net.connect(sock) });
    try {
      const req = session.request({ ':method': 'POST', ':path': '/runtime.v1.RuntimeService/Version', 'content-type': 'application/grpc', te: 'trailers' });
      let status: string | undefined;
      req.on('trailers', (t) => (status = String(t['grpc-status'])));
      req.resume();
      const done = new Promise((resolve) => req.on('end', resolve));
      const body = framed(Buffer.alloc(0));
      req.write(body.subarray(0, 2));
      await new Promise((r) => setTimeout(r, 20));
      req.end(body.subarray(2));
      await done;
      assert.equal(status, '0');
    } finally {
      session.close();
    }
  });

  it('sends a kept (encoded) reply framed the same way every time', async () => {
    const a = await rawCall(sock, { ':path': '/runtime.v1.RuntimeService/ListPodSandbox' }, framed(Buffer.alloc(0)));
    const b = await rawCall(sock, { ':path': '/runtime.v1.RuntimeService/ListPodSandbox' }, framed(Buffer.alloc(0)));
    assert.equal(a.status, '0');
    assert.deepEqual(a.body, b.body);
    assert.deepEqual(a.body.subarray(5), versionCodec.encode({ version: 'kept' }));
  });

  it('streams messages then OK, or then the error, and aborts a stream the client cancels', async () => {
    streamMode = '';
    assert.deepEqual((await readAll(client.runtimeStream('GetContainerEvents', {}))).map((e) => e.container_id), ['c0', 'c1', 'c2']);
    streamMode = 'fail';
    const got: string[] = [];
    const s = client.runtimeStream('GetContainerEvents', {});
    s.on('data', (e: { container_id: string }) => got.push(e.container_id));
    const e = await new Promise<{ code: number; details: string }>((resolve) => s.on('error', resolve));
    assert.deepEqual(got, ['c0', 'c1', 'c2']);
    assert.equal(e.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(e.details, 'after three events');
    streamMode = 'wait';
    aborted = undefined;
    const w = client.runtimeStream('GetContainerEvents', {});
    w.on('error', () => {});
    await new Promise((resolve) => w.once('data', resolve));
    w.cancel();
    for (let i = 0; i < 200 && !aborted; i++) await new Promise((r) => setTimeout(r, 10));
    assert.match(String(await aborted), /GetContainerEvents cancelled by the client/);
  });

  it('reads a client stream in order and answers it', async () => {
    const Images = grpc.makeGenericClientConstructor(images, 'Images');
    const c = new Images(`unix://${sock}`, grpc.credentials.createInsecure());
    try {
      const res = await new Promise<{ images: { id: string }[] }>((resolve, reject) => {
        const call = (c as unknown as Record<string, (cb: (e: Error | null, r: unknown) => void) => grpc.ClientWritableStream<unknown>>).Import((e, r) => (e ? reject(e) : resolve(r as { images: { id: string }[] })));
        for (const part of ['one ', 'two ', 'three']) call.write({ data: Buffer.from(part) });
        call.end();
      });
      assert.equal(res.images[0].id, 'one two three');
    } finally {
      c.close();
    }
  });

  it('splits frames as they come and knows a message begun and not ended', () => {
    const r = new MessageReader(100, undefined);
    const two = Buffer.concat([framed(Buffer.from('ab')), framed(Buffer.from('cde'))]);
    assert.deepEqual(r.push(two.subarray(0, 3)), []);
    assert.ok(r.partial());
    assert.deepEqual(r.push(two.subarray(3, 9)).map(String), ['ab']);
    assert.deepEqual(r.push(two.subarray(9)).map(String), ['cde']);
    assert.ok(!r.partial());
  });

  it('joins a message that comes a byte at a time, and one beside the next in a chunk', () => {
    const r = new MessageReader(4096, undefined);
    const body = Buffer.from('x'.repeat(3000));
    const bytes = Buffer.concat([framed(body), framed(Buffer.from('tail'))]);
    const got: string[] = [];
    for (let i = 0; i < bytes.length; i++) got.push(...r.push(bytes.subarray(i, i + 1)).map(String));
    assert.deepEqual(got, [body.toString(), 'tail']);
    assert.ok(!r.partial());
    assert.throws(() => r.push(framed(Buffer.alloc(5000))), /larger than max \(5000 vs 4096\)/);
  });
});

describe('gRPC transport shutdown (grpc_server)', () => {
  it('gives calls under way the grace period, then cuts them and aborts their handlers', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-grpc-'));
    const sock = path.join(dir, 'grpc.sock');
    let reason: Promise<unknown> | undefined;
    const server = new GrpcServer({ maxReceiveBytes: 1024, maxSendBytes: 1024, status: (e) => ({ code: GrpcCode.INTERNAL, details: String(e) }), finished: () => {} });
    server.add('/runtime.v1.RuntimeService/ContainerStatus', {
      def: runtime.ContainerStatus,
      kind: 'unary',
      method: 'ContainerStatus',
      pkg: 'runtime.v1',
      run: (_req, call) => (reason = new Promise((resolve) => call.signal.addEventListener('abort', () => resolve(call.signal.reason)))),
    });
    const listener = net.createServer((s) => server.accept(s));
    await new Promise<void>((resolve) => listener.listen(sock, resolve));
    const client = new CriClient(sock);
    try {
      const call = client.runtime('ContainerStatus', { container_id: 'x' }).catch((e: { code: number }) => e.code);
      for (let i = 0; i < 200 && !reason; i++) await new Promise((r) => setTimeout(r, 10));
      assert.ok(reason, 'the handler runs');
      listener.close();
      const started = Date.now();
      await server.close(300);
      assert.ok(Date.now() - started >= 250, 'the call had its grace period');
      assert.match(String(await reason), /cancelled/);
      assert.notEqual(await call, 0, 'the call did not succeed');
    } finally {
      client.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
