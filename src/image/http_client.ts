// The registry's HTTP client: HTTP/1.1 on node:net and node:tls, keep-alive connections
// per origin, redirects (credentials dropped when the origin changes) and an inactivity
// timeout on every request.
//
// Why not node:http. A socket here reads into one buffer of its own (`onread`), and the
// body's bytes go from it to whoever consumes them (the content store's batched writes)
// in one synchronous call: no stream, no event and no fresh 64 KiB buffer per chunk. In
// skiffd's lite mode node:http's client spent 170 ms of CPU receiving a 200 MB blob
// from loopback (its chunks' streams in interpreted JavaScript, and the page faults of a
// new buffer per read); this client spends about 30 (2026-12-08, issue 18). Responses are
// parsed by http-parser-js. It replaced undici before that, which cost skiffd about 18
// MiB of RSS once loaded (its parser is WebAssembly, which lite mode does not run).
import * as net from 'net';
import * as tls from 'tls';
import { HTTPParser } from 'http-parser-js';

export interface HttpTls {
  /** Extra CA certificates (PEM); empty: the system's. */
  ca: Buffer[];
  rejectUnauthorized: boolean;
}

export interface HttpRequest {
  method?: 'GET' | 'POST';
  headers: Record<string, string>;
  body?: string;
}

export interface HttpResponse {
  statusCode: number;
  /** By lower-case name; a repeated header's values joined with ", ". */
  headers: Record<string, string | undefined>;
  body: BodySource;
}

/** A connection silent for the client's timeout, before the answer or within its body. */
export class HttpTimeout extends Error {}
/** A body over readBody's limit. */
export class BodyTooLarge extends Error {}

/** Where a body's bytes go, as they arrive. */
export interface BodyConsumer {
  /** The next bytes, valid only during the call (the socket reads into the same buffer
   * next): copy what is kept. False: take no more until the body's resume(). */
  chunk(bytes: Buffer): boolean;
  /** All of the body came. */
  end(): void;
  /** The body failed (the connection closed, timed out or was destroyed). */
  error(e: Error): void;
}

/** A response body read by one consumer. */
export interface BodySource {
  /** Start delivering to consumer (once): what came before it first. */
  consume(consumer: BodyConsumer): void;
  /** The consumer can take more (after its chunk answered false). */
  resume(): void;
  /** Stop: the connection is closed, and the consumer (if any) told e. */
  destroy(e?: Error): void;
}

const MAX_REDIRECTS = 5;
/** Headers that carry credentials: never sent on to another origin. */
const CREDENTIAL_HEADERS = ['authorization', 'cookie', 'proxy-authorization'];
/** What a socket reads into, once per read (it is the connection's own, reused). */
const READ_BUFFER = 256 * 1024;
/** An idle keep-alive connection is closed after this long (registries close theirs
 * after a minute or more; closing first avoids reusing one the server just closed). */
const IDLE_MS = 30_000;

export class HttpClient {
  /** Idle keep-alive connections by origin. */
  private readonly idle = new Map<string, Connection[]>();
  private closed = false;

  /** timeoutMs: a request whose connection is silent this long fails. */
  constructor(private readonly tls: HttpTls, private readonly timeoutMs: number) {}

  /** Send a request, following redirects; the caller reads or drains the body. */
  async request(url: string, req: HttpRequest): Promise<HttpResponse> {
    let target = new URL(url);
    let { method = 'GET', headers, body } = req;
    for (let hop = 0; ; hop++) {
      const res = await this.once(target, method, headers, body);
      const location = res.headers.location;
      if (![301, 302, 303, 307, 308].includes(res.statusCode) || !location) return res;
      await drain(res.body);
      if (hop === MAX_REDIRECTS) throw new Error(`more than ${MAX_REDIRECTS} redirects from ${url}`);
      const next = new URL(location, target); // once() refuses a scheme other than http(s)
      if (next.origin !== target.origin) headers = Object.fromEntries(Object.entries(headers).filter(([k]) => !CREDENTIAL_HEADERS.includes(k.toLowerCase())));
      // As browsers and curl do: 303, and 301/302 after a POST, continue as a GET.
      if (res.statusCode === 303 || (method === 'POST' && res.statusCode <= 302)) {
        method = 'GET';
        body = undefined;
        headers = Object.fromEntries(Object.entries(headers).filter(([k]) => k.toLowerCase() !== 'content-type'));
      }
      target = next;
    }
  }

  /** One exchange. A kept-alive connection that closes before any answer (the server
   * closed it while idle) is replaced by a new one, once. */
  private async once(url: URL, method: string, headers: Record<string, string>, body: string | undefined): Promise<HttpResponse> {
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error(`unsupported URL scheme ${url.protocol} (${url.href})`);
    const head = requestHead(url, method, headers, body);
    const reused = this.takeIdle(url.origin);
    if (reused) {
      try {
        return await reused.exchange(head, body);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (reused.answered || (code !== 'ECONNRESET' && code !== 'EPIPE')) throw e;
      }
    }
    return this.connect(url).exchange(head, body);
  }

  private takeIdle(origin: string): Connection | undefined {
    const list = this.idle.get(origin);
    const c = list?.pop();
    if (list && !list.length) this.idle.delete(origin);
    return c;
  }

  private connect(url: URL): Connection {
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    const secure = url.protocol === 'https:';
    const port = Number(url.port) || (secure ? 443 : 80);
    const readBuffer = Buffer.allocUnsafe(READ_BUFFER);
    let conn: Connection | undefined;
    const onread = { buffer: readBuffer, callback: (n: number, buf: Buffer) => conn!.onRead(n, buf) };
    const socket = secure
      ? tls.connect({ host, port, servername: net.isIP(host) ? undefined : host, rejectUnauthorized: this.tls.rejectUnauthorized, ...(this.tls.ca.length ? { ca: this.tls.ca } : {}), onread } as tls.ConnectionOptions)
      : net.connect({ host, port, onread });
    conn = new Connection(socket, url.origin, this.timeoutMs, (c) => this.keep(c));
    return conn;
  }

  /** A connection whose exchange ended cleanly waits for the next request to its origin. */
  private keep(c: Connection): void {
    if (this.closed) return c.close();
    const list = this.idle.get(c.origin) ?? [];
    list.push(c);
    this.idle.set(c.origin, list);
    c.idleFor(IDLE_MS, () => {
      const l = this.idle.get(c.origin);
      const i = l?.indexOf(c) ?? -1;
      if (i >= 0) l!.splice(i, 1);
      if (l && !l.length) this.idle.delete(c.origin);
    });
  }

  close(): void {
    this.closed = true;
    for (const list of this.idle.values()) for (const c of list) c.close();
    this.idle.clear();
  }
}

/** The request line and headers. A header name or value that would split the head is refused. */
function requestHead(url: URL, method: string, headers: Record<string, string>, body: string | undefined): string {
  const lines = [`${method} ${url.pathname}${url.search} HTTP/1.1`, `host: ${url.host}`];
  for (const [k, v] of Object.entries(headers)) {
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(k)) throw new Error(`invalid HTTP header name ${JSON.stringify(k)}`);
    if (/[\r\n\0]/.test(v)) throw new Error(`invalid value of HTTP header ${k}`);
    if (k.toLowerCase() === 'host' || k.toLowerCase() === 'content-length') continue;
    lines.push(`${k}: ${v}`);
  }
  if (body !== undefined) lines.push(`content-length: ${Buffer.byteLength(body)}`);
  return `${lines.join('\r\n')}\r\n\r\n`;
}

/** A connection's socket ended or broke before the answer: Node's own words and code. */
function hangUp(): Error {
  return Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
}

/** A connection's socket ended or broke within the body of an answer. */
function cutShort(): Error {
  return Object.assign(new Error('the connection closed before the end of the body'), { code: 'ECONNRESET' });
}

/** One HTTP/1.1 connection: one exchange at a time, its answer parsed as it is read. */
class Connection {
  private readonly parser = new HTTPParser(HTTPParser.RESPONSE);
  /** The exchange waiting for its answer's head. */
  private waiting: { resolve: (r: HttpResponse) => void; reject: (e: Error) => void } | null = null;
  /** The answer whose body is arriving. */
  private body: Body | null = null;
  private keepAlive = false;
  /** An informational (1xx) head was read: its end is not the answer's. */
  private informational = false;
  /** Reading stopped by the body's consumer. */
  private paused = false;
  private idleTimer: NodeJS.Timeout | null = null;
  /** Told when the socket closes while idle (the pool forgets it). */
  private gone: (() => void) | null = null;
  /** Bytes of an answer came on this connection (for the exchange running). */
  answered = false;

  constructor(
    private readonly socket: net.Socket,
    readonly origin: string,
    private readonly timeoutMs: number,
    private readonly keep: (c: Connection) => void,
  ) {
    const p = this.parser;
    p[HTTPParser.kOnHeadersComplete] = (info) => this.onHead(info.statusCode, info.headers, info.shouldKeepAlive);
    p[HTTPParser.kOnBody] = (chunk: Buffer) => {
      if (this.body && !this.body.push(chunk)) this.paused = true;
    };
    p[HTTPParser.kOnMessageComplete] = () => this.onMessageEnd();
    socket.on('error', (e) => this.fail(e));
    socket.on('timeout', () => socket.destroy(new HttpTimeout(`no data from ${origin} for ${timeoutMs} ms`)));
    socket.on('end', () => {
      // An answer without a length ends with the connection (finish() completes it); any
      // other is cut short.
      if (this.body) p.finish();
      this.lost();
    });
    socket.on('close', () => {
      this.lost();
      this.gone?.();
    });
  }

  /** Send a request and wait for the head of its answer. */
  exchange(head: string, body: string | undefined): Promise<HttpResponse> {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    this.gone = null;
    this.answered = false;
    this.socket.ref();
    this.socket.setTimeout(this.timeoutMs);
    return new Promise((resolve, reject) => {
      if (this.socket.destroyed) return reject(hangUp());
      this.waiting = { resolve, reject };
      this.socket.write(body === undefined ? head : head + body);
    });
  }

  onRead(n: number, buf: Buffer): boolean {
    if (!this.waiting && !this.body) {
      this.socket.destroy(); // bytes while idle: nothing can be trusted on it any more
      return false;
    }
    this.answered = true;
    const r = this.parser.execute(buf, 0, n);
    if (r instanceof Error) {
      this.socket.destroy(new Error(`malformed HTTP answer from ${this.origin}: ${r.message}`));
      return false;
    }
    return !this.paused;
  }

  private onHead(statusCode: number, raw: string[], keepAlive: boolean): number {
    if (statusCode < 200) {
      this.informational = true;
      return 1; // no body; the answer follows
    }
    const waiting = this.waiting;
    if (!waiting) {
      this.socket.destroy();
      return 1;
    }
    const headers: Record<string, string> = {};
    for (let i = 0; i < raw.length; i += 2) {
      const k = raw[i].toLowerCase();
      headers[k] = k in headers ? `${headers[k]}, ${raw[i + 1]}` : raw[i + 1];
    }
    const length = headers['content-length'];
    if (length !== undefined && !/^\d+(\s*,\s*\d+)*$/.test(length)) {
      this.socket.destroy(new Error(`malformed HTTP answer from ${this.origin}: Content-Length "${length}"`));
      return 1;
    }
    this.waiting = null;
    this.keepAlive = keepAlive;
    this.body = new Body(this);
    waiting.resolve({ statusCode, headers, body: this.body });
    return 0;
  }

  private onMessageEnd(): void {
    if (this.informational) {
      this.informational = false;
      return;
    }
    const body = this.body;
    if (!body) return;
    this.body = null;
    this.paused = false; // a consumer's last "no more" does not hold for the next exchange
    body.end();
    if (this.keepAlive && !this.socket.destroyed) {
      this.socket.setTimeout(0);
      this.socket.unref();
      this.keep(this);
    } else {
      this.socket.destroy();
    }
  }

  /** The socket ended or closed: what was still to come of the exchange is lost. */
  private lost(): void {
    this.fail(this.body ? cutShort() : hangUp());
  }

  /** The exchange (waiting for its head, or its body) fails with e; the connection closes. */
  private fail(e: Error): void {
    const waiting = this.waiting;
    const body = this.body;
    this.waiting = null;
    this.body = null;
    waiting?.reject(e);
    body?.fail(e);
    if (!this.socket.destroyed) this.socket.destroy();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.socket.resume();
  }

  destroy(e: Error): void {
    this.socket.destroy(e);
  }

  /** Idle: closed after ms, then gone() (the pool forgets it); an early close does the same. */
  idleFor(ms: number, gone: () => void): void {
    this.idleTimer = setTimeout(() => this.close(), ms);
    this.idleTimer.unref();
    this.gone = gone;
  }

  close(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.socket.destroy();
  }
}

/** One answer's body: bytes that come before its consumer are kept (copied) for it. */
class Body implements BodySource {
  private consumer: BodyConsumer | null = null;
  private early: Buffer[] = [];
  /** null: still arriving; true: all of it came; an Error: it failed. */
  private outcome: true | Error | null = null;
  private done = false;

  constructor(private readonly conn: Connection) {}

  /** From the connection. False: read no more until resume(). */
  push(bytes: Buffer): boolean {
    if (this.consumer) return this.consumer.chunk(bytes);
    this.early.push(Buffer.from(bytes));
    return false; // nothing more until a consumer comes
  }

  end(): void {
    this.outcome ??= true;
    this.settle();
  }

  fail(e: Error): void {
    this.outcome ??= e;
    this.settle();
  }

  consume(consumer: BodyConsumer): void {
    if (this.consumer) throw new Error('a body is read once');
    this.consumer = consumer;
    const early = this.early;
    this.early = [];
    let more = true;
    for (const b of early) more = consumer.chunk(b) && more;
    this.settle();
    if (more) this.conn.resume();
  }

  resume(): void {
    // Once all of it came, its connection may be another exchange's.
    if (this.consumer && this.outcome === null) this.conn.resume();
  }

  destroy(e: Error = new Error('the body was not read')): void {
    if (this.outcome !== null) return; // all of it came: its connection may serve another exchange now
    this.fail(e);
    this.conn.destroy(e);
  }

  private settle(): void {
    const c = this.consumer;
    if (!c || this.outcome === null || this.done) return;
    this.done = true;
    if (this.outcome === true) c.end();
    else c.error(this.outcome);
  }
}

/** Read and discard a body, so that its connection can be reused. */
export function drain(body: BodySource): Promise<void> {
  return new Promise((resolve) => body.consume({ chunk: () => true, end: resolve, error: () => resolve() }));
}

/** A whole body, up to limit bytes (more fails with BodyTooLarge naming what). */
export function readBody(body: BodySource, limit: number, what: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    body.consume({
      chunk: (b) => {
        size += b.length;
        if (size > limit) {
          body.destroy(new BodyTooLarge(`${what} is larger than ${limit} bytes`));
          return false;
        }
        chunks.push(Buffer.from(b));
        return true;
      },
      end: () => resolve(Buffer.concat(chunks)),
      error: reject,
    });
  });
}
