// RegistryClient: the OCI distribution API (pull side) over HTTP (http_client.ts). Resolves a
// reference to a manifest through the configured hosts (mirrors first),
// authenticates (anonymous, Basic, Bearer tokens from WWW-Authenticate),
// picks the host's platform from an index, verifies every manifest digest,
// and streams blobs with retries and a stall timeout.
import { createHash } from 'crypto';
import { Readable } from 'stream';
import { DeadlineExceeded, InvalidArgument, NotFound, SkiffError, Unauthenticated, Unavailable } from '../errors';
import { RegistryHost, registryHosts } from './hosts';
import { BodySource, BodyTooLarge, HttpClient, HttpTimeout, drain, readBody } from './http_client';
import { ImageReference, formatReference, isSha256Digest } from './reference';

export const MEDIA = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  dockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const;

const ACCEPT = [MEDIA.ociIndex, MEDIA.ociManifest, MEDIA.dockerList, MEDIA.dockerManifest].join(', ');
const MAX_MANIFEST = 4 * 1024 * 1024;
const MAX_TOKEN_ANSWER = 1024 * 1024;

/** Credentials as the CRI AuthConfig carries them. */
export interface AuthConfig {
  username?: string;
  password?: string;
  /** base64 of "username:password" */
  auth?: string;
  identityToken?: string;
  registryToken?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os: string; architecture: string; variant?: string };
}

export interface Manifest {
  mediaType?: string;
  schemaVersion?: number;
  config: Descriptor;
  layers: Descriptor[];
  manifests?: Descriptor[];
}

export interface ResolvedManifest {
  /** Digest of the manifest (for an index: of the picked platform's manifest). */
  digest: string;
  /** Digest the reference resolved to: the index's when there is one. */
  topDigest: string;
  mediaType: string;
  body: Buffer;
  manifest: Manifest;
  host: RegistryHost;
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export function hostPlatform(): Platform {
  const arch: Record<string, Platform> = {
    x64: { os: 'linux', architecture: 'amd64' },
    arm64: { os: 'linux', architecture: 'arm64', variant: 'v8' },
    arm: { os: 'linux', architecture: 'arm', variant: 'v7' },
    ppc64: { os: 'linux', architecture: 'ppc64le' },
    s390x: { os: 'linux', architecture: 's390x' },
    riscv64: { os: 'linux', architecture: 'riscv64' },
  };
  return arch[process.arch] ?? { os: 'linux', architecture: process.arch };
}

export interface RegistryOptions {
  /** Directory of <host>/hosts.toml files (containerd's config_path). */
  configPath: string;
  /** A blob download that receives nothing for this long fails. */
  stallTimeoutMs?: number;
  /** Attempts for a request that fails in a way that can recover (see retryable). */
  attempts?: number;
  /** No new attempt of a request starts once this long has passed since its first. */
  retryWindowMs?: number;
  platform?: Platform;
}

class RetryableError extends Unavailable {}

/** Socket errors a registry or the network between recovers from: a dropped or reset
 * connection, a timeout, a route or name server that is back a moment later, a port
 * refused while a remote registry restarts. */
const TRANSIENT_SOCKET_ERRORS = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'ECONNREFUSED', 'ENETUNREACH', 'EHOSTUNREACH', 'EAI_AGAIN']);

const isLoopback = (address: string) => /^127\./.test(address) || /^::ffff:127\./i.test(address) || address === '::1';

/**
 * Whether another attempt can succeed where this one failed: 5xx and 429 answers, and the
 * transient socket errors above, but for a connection refused by this machine (nothing
 * listens on that loopback port, and nothing will a moment later). A certificate, a name
 * that does not resolve, a malformed answer or a redirect loop fail the same way again.
 */
export function retryable(e: unknown): boolean {
  if (e instanceof RetryableError || e instanceof HttpTimeout) return true;
  const err = e as Partial<NodeJS.ErrnoException & { address: string }> | null;
  if (!err?.code || !TRANSIENT_SOCKET_ERRORS.has(err.code)) return false;
  return !(err.code === 'ECONNREFUSED' && typeof err.address === 'string' && isLoopback(err.address));
}

/** The wait before attempt n+1: 200 ms doubling, at most 5 s. */
const backoffMs = (n: number) => Math.min(100 * 2 ** n, 5_000);

const plural = (n: number, one: string) => `${n} ${one}${n === 1 ? '' : 's'}`;

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Parse a WWW-Authenticate challenge: scheme and its parameters. */
export function parseChallenge(header: string): { scheme: string; params: Record<string, string> } {
  const m = /^\s*(\w+)\s*(.*)$/s.exec(header);
  if (!m) return { scheme: '', params: {} };
  const params: Record<string, string> = {};
  for (const p of m[2].matchAll(/(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g)) params[p[1].toLowerCase()] = (p[2] ?? p[3]).replace(/\\(.)/g, '$1');
  return { scheme: m[1].toLowerCase(), params };
}

export class RegistryClient {
  private readonly clients = new Map<string, HttpClient>();
  /** Bearer tokens by host origin and scope. */
  private readonly tokens = new Map<string, string>();
  private readonly stallMs: number;
  private readonly attempts: number;
  private readonly retryWindowMs: number;
  readonly platform: Platform;

  constructor(private readonly opts: RegistryOptions) {
    this.stallMs = opts.stallTimeoutMs ?? 60_000;
    this.attempts = opts.attempts ?? 4;
    this.retryWindowMs = opts.retryWindowMs ?? 30_000;
    this.platform = opts.platform ?? hostPlatform();
  }

  async close(): Promise<void> {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }

  /** The HTTP client for a host's TLS settings. Registries redirect blob downloads
   * to their storage; the client drops credentials when the origin changes. */
  private http(host: RegistryHost): HttpClient {
    const key = `${host.origin}|${host.skipVerify}|${host.ca.length}`;
    let c = this.clients.get(key);
    if (!c) {
      c = new HttpClient({ rejectUnauthorized: !host.skipVerify, ca: host.ca }, this.stallMs);
      this.clients.set(key, c);
    }
    return c;
  }

  /**
   * GET a registry path on one host, authenticating on 401. A failure that can recover
   * (retryable) is tried again with backoff, up to `attempts` times and only while the
   * retry window since the first attempt lasts; any other fails at once. Returns status,
   * headers, body.
   */
  private async get(host: RegistryHost, repo: string, subpath: string, accept: string, auth: AuthConfig | undefined, what: string, extra: Record<string, string> = {}) {
    const url = `${host.origin}${host.apiRoot}/${repo}/${subpath}`;
    const scope = `repository:${repo}:pull`;
    const deadline = Date.now() + this.retryWindowMs;
    for (let attempt = 1; ; attempt++) {
      try {
        let res = await this.send(host, url, accept, this.authHeader(host, scope, auth), extra);
        if (res.statusCode === 401) {
          const challenge = String(res.headers['www-authenticate'] ?? '');
          await drain(res.body);
          const header = await this.answerChallenge(host, challenge, scope, auth, what);
          res = await this.send(host, url, accept, header, extra);
          if (res.statusCode === 401 || res.statusCode === 403) {
            await drain(res.body);
            throw new Unauthenticated(`${what}: ${host.origin} refused the credentials (HTTP ${res.statusCode})`);
          }
        }
        if (res.statusCode >= 500 || res.statusCode === 429) {
          await drain(res.body);
          throw new RetryableError(`${what}: ${host.origin} answered HTTP ${res.statusCode}`);
        }
        return res;
      } catch (e) {
        if (e instanceof SkiffError && !(e instanceof RetryableError)) throw e;
        const msg = e instanceof Error ? e.message : String(e);
        if (!retryable(e)) throw new Unavailable(`${what}: ${host.origin} failed after ${plural(attempt, 'attempt')} (not retried: the same request would fail again): ${msg}`, { cause: e });
        const wait = backoffMs(attempt);
        if (attempt >= this.attempts || Date.now() + wait > deadline)
          throw new Unavailable(`${what}: ${host.origin} failed after ${plural(attempt, 'attempt')}: ${msg}`, { cause: e });
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }

  private send(host: RegistryHost, url: string, accept: string, authorization: string | undefined, extra: Record<string, string> = {}) {
    const headers: Record<string, string> = { ...host.headers, ...extra, accept, 'user-agent': 'skiff' };
    if (authorization) headers.authorization = authorization;
    return this.http(host).request(url, { headers });
  }

  private authHeader(host: RegistryHost, scope: string, auth: AuthConfig | undefined): string | undefined {
    if (auth?.registryToken) return `Bearer ${auth.registryToken}`;
    const t = this.tokens.get(`${host.origin}|${scope}`);
    return t ? `Bearer ${t}` : undefined;
  }

  private basic(auth: AuthConfig | undefined): string | undefined {
    if (auth?.auth) return `Basic ${auth.auth}`;
    if (auth?.username !== undefined && auth.username !== '') return `Basic ${Buffer.from(`${auth.username}:${auth.password ?? ''}`).toString('base64')}`;
    return undefined;
  }

  private async answerChallenge(host: RegistryHost, header: string, scope: string, auth: AuthConfig | undefined, what: string): Promise<string> {
    const { scheme, params } = parseChallenge(header);
    if (scheme === 'basic') {
      const b = this.basic(auth);
      if (!b) throw new Unauthenticated(`${what}: ${host.origin} asks for credentials and none were given`);
      return b;
    }
    if (scheme !== 'bearer' || !params.realm) throw new Unauthenticated(`${what}: ${host.origin} asks for unsupported authentication "${header}"`);
    const u = new URL(params.realm);
    if (params.service) u.searchParams.set('service', params.service);
    u.searchParams.set('scope', params.scope ?? scope);
    const headers: Record<string, string> = { 'user-agent': 'skiff' };
    const b = this.basic(auth);
    if (b) headers.authorization = b;
    let res;
    if (auth?.identityToken) {
      // OAuth2 refresh-token grant, as the distribution token spec describes.
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: auth.identityToken, service: params.service ?? '', scope: params.scope ?? scope, client_id: 'skiff' });
      res = await this.http(host).request(`${u.origin}${u.pathname}`, { method: 'POST', headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' }, body: form.toString() });
    } else {
      res = await this.http(host).request(u.toString(), { headers });
    }
    if (res.statusCode !== 200) {
      await drain(res.body);
      throw new Unauthenticated(`${what}: token server ${u.origin} refused (HTTP ${res.statusCode}) for ${host.origin}`);
    }
    let body: { token?: unknown; access_token?: unknown };
    try {
      body = JSON.parse((await readBody(res.body, MAX_TOKEN_ANSWER, `the answer of token server ${u.origin}`)).toString('utf8'));
    } catch (e) {
      throw new Unauthenticated(`${what}: token server ${u.origin} gave no usable answer: ${(e as Error).message}`);
    }
    const token = typeof body?.token === 'string' && body.token ? body.token : typeof body?.access_token === 'string' ? body.access_token : '';
    if (!token) throw new Unauthenticated(`${what}: token server ${u.origin} returned no token`);
    this.tokens.set(`${host.origin}|${scope}`, token);
    return `Bearer ${token}`;
  }

  /** Fetch one manifest (by tag or digest) from one host and verify it. */
  private async fetchManifest(host: RegistryHost, ref: ImageReference, tagOrDigest: string, auth: AuthConfig | undefined) {
    const what = `pull ${formatReference(ref)}`;
    const res = await this.get(host, ref.repository, `manifests/${tagOrDigest}`, ACCEPT, auth, what);
    if (res.statusCode === 404) {
      await drain(res.body);
      throw new NotFound(`${what}: manifest ${tagOrDigest} not found on ${host.origin}`);
    }
    if (res.statusCode !== 200) {
      await drain(res.body);
      throw new Unavailable(`${what}: ${host.origin} answered HTTP ${res.statusCode} for manifest ${tagOrDigest}`);
    }
    const len = Number(res.headers['content-length'] ?? 0);
    if (len > MAX_MANIFEST) {
      await drain(res.body);
      throw new InvalidArgument(`${what}: manifest of ${len} bytes is too large`);
    }
    let body: Buffer;
    try {
      body = await readBody(res.body, MAX_MANIFEST, `manifest ${tagOrDigest}`);
    } catch (e) {
      if (e instanceof BodyTooLarge) throw new InvalidArgument(`${what}: ${e.message}`);
      throw new Unavailable(`${what}: reading from ${host.origin}: ${(e as Error).message}`);
    }
    const digest = sha256(body);
    const want = isSha256Digest(tagOrDigest) ? tagOrDigest : (res.headers['docker-content-digest'] as string | undefined);
    if (want && isSha256Digest(want) && want !== digest)
      throw new InvalidArgument(`${what}: manifest from ${host.origin} has digest ${digest}, expected ${want}`);
    let manifest: Manifest;
    try {
      manifest = JSON.parse(body.toString('utf8'));
    } catch {
      throw new InvalidArgument(`${what}: manifest from ${host.origin} is not JSON`);
    }
    const headerType = String(res.headers['content-type'] ?? '').split(';')[0].trim();
    const mediaType = manifest.mediaType ?? headerType;
    if (mediaType === MEDIA.dockerSchema1 || mediaType === MEDIA.dockerSchema1Signed || manifest.schemaVersion === 1)
      throw new InvalidArgument(`${what}: Docker schema 1 manifests are not supported; push the image again with a current client`);
    return { body, digest, mediaType: mediaType || (manifest.manifests ? MEDIA.ociIndex : MEDIA.ociManifest), manifest };
  }

  private pickPlatform(index: Manifest, what: string): Descriptor {
    const p = this.platform;
    const candidates = (index.manifests ?? []).filter((m) => m.platform?.os === p.os && m.platform?.architecture === p.architecture);
    const exact = candidates.find((m) => (m.platform?.variant ?? '') === (p.variant ?? ''));
    const pick = exact ?? candidates.find((m) => !m.platform?.variant) ?? candidates[0];
    if (!pick) {
      const have = (index.manifests ?? []).map((m) => `${m.platform?.os}/${m.platform?.architecture}${m.platform?.variant ? `/${m.platform.variant}` : ''}`);
      throw new NotFound(`${what}: no manifest for ${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''} (the index has ${have.join(', ') || 'none'})`);
    }
    return pick;
  }

  /**
   * Resolve a reference to the image manifest for this host's platform,
   * trying each configured host (mirrors first) until one answers.
   */
  async resolve(ref: ImageReference, auth?: AuthConfig): Promise<ResolvedManifest> {
    const what = `pull ${formatReference(ref)}`;
    const hosts = (await registryHosts(this.opts.configPath, ref.registry)).filter((h) => h.capabilities.has('pull'));
    const errors: string[] = [];
    for (const host of hosts) {
      // A host without "resolve" may only serve content by digest.
      if (!ref.digest && !host.capabilities.has('resolve')) continue;
      try {
        const top = await this.fetchManifest(host, ref, ref.digest ?? (ref.tag as string), auth);
        if (top.mediaType === MEDIA.ociIndex || top.mediaType === MEDIA.dockerList || top.manifest.manifests) {
          const d = this.pickPlatform(top.manifest, what);
          const m = await this.fetchManifest(host, ref, d.digest, auth);
          return { ...m, topDigest: top.digest, host };
        }
        return { ...top, topDigest: top.digest, host };
      } catch (e) {
        // Auth and bad content are final; an absent or unreachable host is not.
        if (e instanceof Unauthenticated || (e instanceof InvalidArgument && hosts.length === 1)) throw e;
        errors.push(`${host.origin}: ${(e as Error).message}`);
        if (e instanceof NotFound && host === hosts[hosts.length - 1]) throw new NotFound(`${what}: ${errors.join('; ')}`);
      }
    }
    throw new Unavailable(`${what}: no host could serve it: ${errors.join('; ') || 'no host configured for pull'}`);
  }

  /**
   * A blob's bytes as a stream (the caller verifies the digest as it writes).
   * A stalled download fails with DEADLINE_EXCEEDED.
   */
  async fetchBlob(host: RegistryHost, ref: ImageReference, d: Descriptor, auth?: AuthConfig): Promise<Readable> {
    const blob = await this.openBlob(host, ref, d, auth);
    const out = new Readable({
      read: () => blob.body.resume(),
      destroy: (e, cb) => {
        blob.body.destroy();
        cb(e);
      },
    });
    blob.body.consume({ chunk: (b) => out.push(Buffer.from(b)), end: () => out.push(null), error: (e) => out.destroy(blob.error(e)) });
    return out;
  }

  /**
   * GET a blob, or with range [start, end] (inclusive) the bytes between. A registry
   * that serves ranges answers 206 with the range in Content-Range (checked here:
   * `partial`); one that does not answers 200 with the whole blob. The body is the
   * response's own (no stream in between: a big blob is thousands of chunks); error()
   * turns what it fails with into the CRI error: DEADLINE_EXCEEDED when it stalled for
   * the stall timeout, UNAVAILABLE otherwise.
   */
  async openBlob(
    host: RegistryHost,
    ref: ImageReference,
    d: Descriptor,
    auth?: AuthConfig,
    range?: [number, number],
  ): Promise<{ partial: boolean; body: BodySource; what: string; error: (e: Error) => Error }> {
    const what = `pull ${formatReference(ref)}: blob ${d.digest}${range ? ` bytes ${range[0]}-${range[1]}` : ''}`;
    const res = await this.get(host, ref.repository, `blobs/${d.digest}`, '*/*', auth, what, range ? { range: `bytes=${range[0]}-${range[1]}` } : {});
    if (res.statusCode === 404) {
      await drain(res.body);
      throw new NotFound(`${what}: not found on ${host.origin}`);
    }
    const partial = range !== undefined && res.statusCode === 206;
    if (res.statusCode !== 200 && !partial) {
      await drain(res.body);
      throw new Unavailable(`${what}: ${host.origin} answered HTTP ${res.statusCode}`);
    }
    if (partial) {
      const cr = String(res.headers['content-range'] ?? '');
      const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(cr.trim());
      if (!m || Number(m[1]) !== range[0] || Number(m[2]) !== range[1] || (m[3] !== '*' && Number(m[3]) !== d.size)) {
        await drain(res.body);
        throw new Unavailable(`${what}: ${host.origin} answered a range request with Content-Range "${cr}"`);
      }
    }
    const error = (e: Error): Error => (e instanceof SkiffError ? e : e instanceof HttpTimeout ? new DeadlineExceeded(`${what}: ${e.message}`) : new Unavailable(`${what}: ${e.message}`));
    return { partial, body: res.body, what, error };
  }
}
