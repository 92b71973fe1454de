// The registry's HTTP client, on node:http and node:https: keep-alive agents per TLS
// setting, redirects (credentials dropped when the origin changes) and an inactivity
// timeout on every request. It replaced undici, which cost skiffd about 18 MiB of RSS
// once the first pull had loaded it (its HTTP parser runs as WebAssembly); node's own
// parser is native and already in the binary.
import * as http from 'http';
import * as https from 'https';

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
  headers: http.IncomingHttpHeaders;
  body: http.IncomingMessage;
}

/** A connection silent for the client's timeout, before the answer or within its body. */
export class HttpTimeout extends Error {}
/** A body over readBody's limit. */
export class BodyTooLarge extends Error {}

const MAX_REDIRECTS = 5;
/** Headers that carry credentials: never sent on to another origin. */
const CREDENTIAL_HEADERS = ['authorization', 'cookie', 'proxy-authorization'];

export class HttpClient {
  private readonly plain: http.Agent;
  private readonly tls: https.Agent;

  /** timeoutMs: a request whose connection is silent this long fails. */
  constructor(tls: HttpTls, private readonly timeoutMs: number) {
    this.plain = new http.Agent({ keepAlive: true });
    this.tls = new https.Agent({ keepAlive: true, rejectUnauthorized: tls.rejectUnauthorized, ...(tls.ca.length ? { ca: tls.ca } : {}) });
  }

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

  private once(url: URL, method: string, headers: Record<string, string>, body: string | undefined): Promise<HttpResponse> {
    const secure = url.protocol === 'https:';
    if (!secure && url.protocol !== 'http:') return Promise.reject(new Error(`unsupported URL scheme ${url.protocol} (${url.href})`));
    return new Promise((resolve, reject) => {
      const send = secure ? https.request : http.request;
      const req = send(url, { method, headers: body === undefined ? headers : { ...headers, 'content-length': String(Buffer.byteLength(body)) }, agent: secure ? this.tls : this.plain });
      let response: http.IncomingMessage | undefined;
      // The connection's inactivity, before the answer or in the middle of its body.
      req.setTimeout(this.timeoutMs, () => {
        const e = new HttpTimeout(`no data from ${url.origin} for ${this.timeoutMs} ms`);
        if (response) response.destroy(e);
        else req.destroy(e);
      });
      req.once('error', reject);
      req.once('response', (res) => {
        response = res;
        resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body: res });
      });
      req.end(body);
    });
  }

  close(): void {
    this.plain.destroy();
    this.tls.destroy();
  }
}

/** Read and discard a body, so that its connection can be reused. */
export function drain(body: http.IncomingMessage): Promise<void> {
  return new Promise((resolve) => {
    body.resume();
    if (body.readableEnded || body.destroyed) return resolve();
    body.once('end', resolve).once('close', resolve).once('error', () => resolve());
  });
}

/** A whole body, up to limit bytes (more fails with BodyTooLarge naming what). */
export function readBody(body: http.IncomingMessage, limit: number, what: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    body.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) body.destroy(new BodyTooLarge(`${what} is larger than ${limit} bytes`));
      else chunks.push(c);
    });
    body.once('end', () => resolve(Buffer.concat(chunks)));
    body.once('error', reject);
    body.once('close', () => {
      if (!body.complete) reject(new Error(`${what}: the connection closed before the end of the body`));
    });
  });
}
