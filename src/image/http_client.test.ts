import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'crypto';
import * as net from 'net';
import { BodyConsumer, HttpClient, HttpTimeout, drain, readBody } from './http_client';

/** A server that answers each request head on a connection with what answer() writes raw. */
async function rawServer(answer: (sock: net.Socket, head: string, conn: number) => void) {
  const socks = new Set<net.Socket>();
  let conns = 0;
  const server = net.createServer((sock) => {
    const conn = ++conns;
    socks.add(sock.on('close', () => socks.delete(sock)));
    sock.on('error', () => undefined);
    let pending = '';
    sock.on('data', (d) => {
      pending += d.toString('latin1');
      for (let i; (i = pending.indexOf('\r\n\r\n')) >= 0; ) {
        const head = pending.slice(0, i);
        pending = pending.slice(i + 4);
        answer(sock, head, conn);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    connections: () => conns,
    open: () => socks.size,
    close: async () => {
      for (const s of socks) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

const ok = (body: Buffer | string, extra = '') => Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${extra}\r\n`), Buffer.from(body)]);

/** A consumer that keeps a copy of every chunk, and the outcome. */
function collector(onChunk: (total: number) => boolean = () => true) {
  const chunks: Buffer[] = [];
  let total = 0;
  let resolve!: () => void;
  let reject!: (e: Error) => void;
  const done = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
  const consumer: BodyConsumer = {
    chunk: (b) => {
      chunks.push(Buffer.from(b));
      total += b.length;
      return onChunk(total);
    },
    end: resolve,
    error: reject,
  };
  return { consumer, done, bytes: () => Buffer.concat(chunks) };
}

describe('HTTP client', function () {
  let client: HttpClient;
  beforeEach(() => (client = new HttpClient({ ca: [], rejectUnauthorized: true }, 2000)));
  afterEach(() => client.close());

  it('sends the request head and keeps one connection alive for the next requests', async () => {
    const heads: string[] = [];
    const srv = await rawServer((sock, head) => {
      heads.push(head);
      sock.write(ok(`answer ${heads.length}`, 'x-thing: a\r\nX-Thing: b\r\n'));
    });
    try {
      for (let i = 1; i <= 3; i++) {
        const res = await client.request(`${srv.url}/v2/x?n=${i}`, { headers: { accept: '*/*', Authorization: 'Bearer t' } });
        assert.equal(res.statusCode, 200);
        assert.equal(res.headers['x-thing'], 'a, b', 'repeated headers joined, names in lower case');
        assert.equal((await readBody(res.body, 100, 'answer')).toString(), `answer ${i}`);
      }
      assert.equal(srv.connections(), 1, 'one kept-alive connection served all three');
      assert.match(heads[2], /^GET \/v2\/x\?n=3 HTTP\/1\.1\r\n/);
      assert.match(heads[2], /\r\nhost: 127\.0\.0\.1:\d+\r\n/);
      assert.match(heads[2], /\r\nAuthorization: Bearer t(\r\n|$)/);
    } finally {
      await srv.close();
    }
  });

  it('reads chunked bodies, bodies that end with the connection, and skips informational answers', async () => {
    const srv = await rawServer((sock, head) => {
      if (head.includes('/chunked')) sock.write('HTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n');
      else sock.end('HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end');
    });
    try {
      const a = await client.request(`${srv.url}/chunked`, { headers: {} });
      assert.equal(a.statusCode, 200);
      assert.equal((await readBody(a.body, 100, 'chunked')).toString(), 'hello, world');
      const b = await client.request(`${srv.url}/close`, { headers: {} });
      assert.equal((await readBody(b.body, 100, 'close')).toString(), 'until the end');
    } finally {
      await srv.close();
    }
  });

  it('sends a request again on a new connection when the kept one was closed by the server while idle', async () => {
    const srv = await rawServer((sock, _head, conn) => {
      sock.write(ok(`from ${conn}`));
      if (conn === 1) setTimeout(() => sock.destroy(), 50); // the server's idle timeout
    });
    try {
      await drain((await client.request(`${srv.url}/a`, { headers: {} })).body);
      await new Promise((r) => setTimeout(r, 200));
      const res = await client.request(`${srv.url}/b`, { headers: {} });
      assert.equal((await readBody(res.body, 100, 'b')).toString(), 'from 2');
    } finally {
      await srv.close();
    }
  });

  it('stops reading while the consumer takes no more, and gives every byte in order, those before it too', async () => {
    const blob = randomBytes(8 * 1024 * 1024 + 123);
    const srv = await rawServer((sock) => sock.write(ok(blob)));
    try {
      const res = await client.request(`${srv.url}/blob`, { headers: {} });
      await new Promise((r) => setTimeout(r, 100)); // bytes arrive before anyone consumes
      let pauses = 0;
      const c = collector(() => {
        if (pauses >= 10 || Math.random() < 0.9) return true;
        pauses++;
        setTimeout(() => res.body.resume(), 2);
        return false;
      });
      res.body.consume(c.consumer);
      await c.done;
      assert.ok(pauses > 0);
      assert.equal(createHash('sha256').update(c.bytes()).digest('hex'), createHash('sha256').update(blob).digest('hex'));
    } finally {
      await srv.close();
    }
  });

  it('fails a body cut short, a silent one with HttpTimeout, and one with a bad Content-Length', async () => {
    const srv = await rawServer((sock, head) => {
      if (head.includes('/cut')) sock.end('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this');
      else if (head.includes('/silent')) sock.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nthen nothing');
      else sock.write('HTTP/1.1 200 OK\r\ncontent-length: 12abc\r\n\r\n');
    });
    const quick = new HttpClient({ ca: [], rejectUnauthorized: true }, 300);
    try {
      const cut = collector();
      (await client.request(`${srv.url}/cut`, { headers: {} })).body.consume(cut.consumer);
      await assert.rejects(cut.done, /the connection closed before the end of the body/);
      assert.equal(cut.bytes().toString(), 'only this');
      const silent = collector();
      (await quick.request(`${srv.url}/silent`, { headers: {} })).body.consume(silent.consumer);
      await assert.rejects(silent.done, (e: Error) => e instanceof HttpTimeout && /no data from http:\/\/127\.0\.0\.1:\d+ for 300 ms/.test(e.message));
      await assert.rejects(client.request(`${srv.url}/bad`, { headers: {} }), /malformed HTTP answer from http:\/\/127\.0\.0\.1:\d+: Content-Length "12abc"/);
    } finally {
      quick.close();
      await srv.close();
    }
  });

  it('closes the connection of a body destroyed before its end, and refuses a header that would split the head', async () => {
    const srv = await rawServer((sock) => sock.write(ok(Buffer.alloc(4 * 1024 * 1024))));
    try {
      const res = await client.request(`${srv.url}/big`, { headers: {} });
      const c = collector(() => false);
      res.body.consume(c.consumer);
      res.body.destroy(new Error('enough'));
      await assert.rejects(c.done, /enough/);
      await drain((await client.request(`${srv.url}/big`, { headers: {} })).body);
      assert.equal(srv.connections(), 2, 'the destroyed body\'s connection was not reused');
      await assert.rejects(client.request(`${srv.url}/x`, { headers: { 'x-evil': 'a\r\nhost: elsewhere' } }), /invalid value of HTTP header x-evil/);
      assert.equal(srv.connections(), 2, 'nothing was sent');
    } finally {
      await srv.close();
    }
  });
});
