import assert from 'node:assert/strict';
import * as fs from 'fs';
import { execFileSync } from 'child_process';
import * as http from 'http';
import * as https from 'https';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { gzipSync } from 'zlib';
import { TestRegistry, freePort, sha256 } from '../../e2e/fixtures/registry';
import { DeadlineExceeded, InvalidArgument, NotFound, Unauthenticated, Unavailable } from '../errors';
import { ContentStore } from './content_store';
import { registryHosts } from './hosts';
import { parseReference } from './reference';
import { HttpTimeout } from './http_client';
import { MEDIA, RegistryClient, parseChallenge, retryable } from './registry';

const GZ = 'application/vnd.oci.image.layer.v1.tar+gzip';

function layer(text: string) {
  const tar = Buffer.from(text.padEnd(1024, '\0'));
  return { data: gzipSync(tar), diffId: sha256(tar), mediaType: GZ };
}

/** A fake registry for behaviours a real one will not show on demand. */
async function fakeRegistry(handler: (req: http.IncomingMessage, res: http.ServerResponse) => void) {
  const port = await freePort();
  const server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return { host: `127.0.0.1:${port}`, close: () => new Promise<void>((r) => server.close(() => r())) };
}

describe('registry client', function () {
  let tmp: string;
  let hostsDir: string;
  let client: RegistryClient;
  let store: ContentStore;
  beforeEach(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-reg-'));
    hostsDir = path.join(tmp, 'certs.d');
    fs.mkdirSync(hostsDir);
    client = new RegistryClient({ configPath: hostsDir, attempts: 3, stallTimeoutMs: 2000, platform: { os: 'linux', architecture: 'amd64' } });
    store = new ContentStore(path.join(tmp, 'content'));
    await store.init();
  });
  afterEach(async () => {
    await client.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  describe('against docker-registry', () => {
    let reg: TestRegistry;
    before(async () => {
      reg = await TestRegistry.start();
    });
    after(async () => reg.stop());

    it('resolves a tag and fetches verified blobs', async () => {
      const img = await reg.pushImage('test/one', 'v1', [layer('a'), layer('b')]);
      const ref = parseReference(`${reg.host}/test/one:v1`);
      const r = await client.resolve(ref);
      assert.equal(r.digest, img.manifestDigest);
      assert.equal(r.manifest.layers.length, 2);
      for (const d of [r.manifest.config, ...r.manifest.layers]) {
        await store.ingest(d.digest, () => client.fetchBlob(r.host, ref, d), { size: d.size });
      }
      assert.deepEqual(await store.read(r.manifest.config.digest), img.config);
    });

    it('resolves by digest', async () => {
      const img = await reg.pushImage('test/two', 'v1', [layer('c')]);
      const r = await client.resolve(parseReference(`${reg.host}/test/two@${img.manifestDigest}`));
      assert.equal(r.digest, img.manifestDigest);
    });

    it('picks the host platform from a multi-platform index', async () => {
      const amd = await reg.pushImage('test/multi', 'amd', [layer('amd64')]);
      const arm = await reg.pushImage('test/multi', 'arm', [layer('arm64')], { os: 'linux', architecture: 'arm64' });
      const index = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MEDIA.ociIndex,
          manifests: [
            { mediaType: MEDIA.ociManifest, digest: arm.manifestDigest, size: arm.manifest.length, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
            { mediaType: MEDIA.ociManifest, digest: amd.manifestDigest, size: amd.manifest.length, platform: { os: 'linux', architecture: 'amd64' } },
          ],
        }),
      );
      const indexDigest = await reg.pushManifest('test/multi', 'latest', index, MEDIA.ociIndex);
      const r = await client.resolve(parseReference(`${reg.host}/test/multi`));
      assert.equal(r.digest, amd.manifestDigest);
      assert.equal(r.topDigest, indexDigest);
      const s390 = new RegistryClient({ configPath: hostsDir, platform: { os: 'linux', architecture: 's390x' } });
      await assert.rejects(s390.resolve(parseReference(`${reg.host}/test/multi`)), (e: Error) => e instanceof NotFound && /linux\/arm64\/v8, linux\/amd64/.test(e.message));
      await s390.close();
    });

    it('answers NOT_FOUND for a missing tag', async () => {
      await assert.rejects(client.resolve(parseReference(`${reg.host}/test/none:nope`)), (e: Error) => e instanceof NotFound && /manifest nope not found/.test(e.message));
    });

    it('serves docker.io names from a mirror in hosts.toml, after a dead mirror', async () => {
      await reg.pushImage('library/busybox', 'mirrored', [layer('m')]);
      fs.mkdirSync(path.join(hostsDir, 'docker.io'));
      const dead = await freePort();
      // No upstream: the server is the local registry too (no DNS lookup of a public name).
      fs.writeFileSync(
        path.join(hostsDir, 'docker.io', 'hosts.toml'),
        `server = "http://${reg.host}"\n\n[host."http://127.0.0.1:${dead}"]\n  capabilities = ["pull", "resolve"]\n\n[host."http://${reg.host}"]\n  capabilities = ["pull", "resolve"]\n`,
      );
      const hosts = await registryHosts(hostsDir, 'docker.io');
      assert.deepEqual(hosts.map((h) => h.origin), [`http://127.0.0.1:${dead}`, `http://${reg.host}`, `http://${reg.host}`]);
      const r = await client.resolve(parseReference('busybox:mirrored'));
      assert.equal(r.host.origin, `http://${reg.host}`);
    });
  });

  describe('with Basic auth', () => {
    let reg: TestRegistry;
    before(async () => {
      reg = await TestRegistry.start({ auth: { username: 'alice', password: 's3cret' } });
      await reg.pushImage('private/img', 'v1', [layer('p')]);
    });
    after(async () => reg.stop());

    it('pulls with username and password, or the auth string', async () => {
      const ref = parseReference(`${reg.host}/private/img:v1`);
      assert.ok((await client.resolve(ref, { username: 'alice', password: 's3cret' })).digest);
      assert.ok((await client.resolve(ref, { auth: Buffer.from('alice:s3cret').toString('base64') })).digest);
    });

    it('fails clearly without or with wrong credentials, naming the registry', async () => {
      const ref = parseReference(`${reg.host}/private/img:v1`);
      await assert.rejects(client.resolve(ref), (e: Error) => e instanceof Unauthenticated && e.message.includes(reg.host) && /no(ne)? were given/.test(e.message));
      await assert.rejects(client.resolve(ref, { username: 'alice', password: 'wrong' }), (e: Error) => e instanceof Unauthenticated && /refused the credentials/.test(e.message));
    });
  });

  it('follows the Bearer token flow and reuses the token', async () => {
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.ociManifest, config: { mediaType: 'x', digest: sha256('c'), size: 1 }, layers: [] }));
    let tokenRequests = 0;
    let seenScope = '';
    const tokens = await fakeRegistry((req, res) => {
      tokenRequests++;
      const u = new URL(req.url!, 'http://x');
      seenScope = String(u.searchParams.get('scope'));
      const ok = req.headers.authorization === `Basic ${Buffer.from('bob:pw').toString('base64')}` && u.searchParams.get('service') === 'test-registry';
      res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json' }).end(ok ? JSON.stringify({ token: 'tok-123' }) : '{}');
    });
    const reg = await fakeRegistry((req, res) => {
      if (req.headers.authorization !== 'Bearer tok-123') {
        res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${tokens.host}/token",service="test-registry",scope="repository:app/x:pull"` }).end();
        return;
      }
      res.writeHead(200, { 'content-type': MEDIA.ociManifest, 'docker-content-digest': sha256(manifest) }).end(manifest);
    });
    try {
      const ref = parseReference(`${reg.host}/app/x:v1`);
      await client.resolve(ref, { username: 'bob', password: 'pw' });
      await client.resolve(ref, { username: 'bob', password: 'pw' });
      assert.equal(tokenRequests, 1, 'token reused');
      assert.equal(seenScope, 'repository:app/x:pull');
      const fresh = new RegistryClient({ configPath: hostsDir, attempts: 1 });
      await assert.rejects(fresh.resolve(ref, { username: 'bob', password: 'bad' }), (e: Error) => e instanceof Unauthenticated && /token server/.test(e.message));
      await fresh.close();
    } finally {
      await reg.close();
      await tokens.close();
    }
  });

  it('retries 5xx answers, then gives up with UNAVAILABLE', async () => {
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.ociManifest, config: { mediaType: 'x', digest: sha256('c'), size: 1 }, layers: [] }));
    let calls = 0;
    let failFirst = 2;
    const reg = await fakeRegistry((_req, res) => {
      calls++;
      if (failFirst-- > 0) res.writeHead(503).end();
      else res.writeHead(200, { 'content-type': MEDIA.ociManifest }).end(manifest);
    });
    try {
      await client.resolve(parseReference(`${reg.host}/r/x:v1`));
      assert.equal(calls, 3);
      failFirst = 100;
      await assert.rejects(client.resolve(parseReference(`${reg.host}/r/x:v1`)), (e: Error) => e instanceof Unavailable && /after 3 attempts/.test(e.message));
    } finally {
      await reg.close();
    }
  });

  it('tries again only what can recover: resets and timeouts, not a refused loopback port, a certificate or a bad name', () => {
    const sys = (code: string, address?: string) => Object.assign(new Error(code), { code, address });
    for (const e of [sys('ECONNRESET'), sys('EPIPE'), sys('ETIMEDOUT'), sys('EAI_AGAIN'), sys('EHOSTUNREACH'), sys('ECONNREFUSED', '10.1.2.3'), sys('ECONNREFUSED', '2001:db8::1'), new HttpTimeout('silent')])
      assert.equal(retryable(e), true, e.message);
    for (const e of [sys('ECONNREFUSED', '127.0.0.1'), sys('ECONNREFUSED', '127.8.0.1'), sys('ECONNREFUSED', '::1'), sys('ECONNREFUSED', '::ffff:127.0.0.1'), sys('ENOTFOUND'),
      sys('ERR_TLS_CERT_ALTNAME_INVALID'), sys('DEPTH_ZERO_SELF_SIGNED_CERT'), sys('HPE_INVALID_CONSTANT'), new Error('more than 5 redirects'), new Unavailable('x'), null])
      assert.equal(retryable(e), false, String(e?.message));
  });

  it('fails at once, naming the address, when a loopback port refuses the connection', async () => {
    const port = await freePort(); // free: nothing listens on it
    const eager = new RegistryClient({ configPath: hostsDir, attempts: 50, retryWindowMs: 600_000 });
    try {
      await assert.rejects(eager.resolve(parseReference(`127.0.0.1:${port}/r/x:v1`)), (e: Error) => {
        assert.ok(e instanceof Unavailable, e.message);
        assert.match(e.message, new RegExp(`http://127\\.0\\.0\\.1:${port} failed after 1 attempt \\(not retried.*ECONNREFUSED 127\\.0\\.0\\.1:${port}`));
        return true;
      });
    } finally {
      await eager.close();
    }
  });

  it('retries a reset connection up to the attempts, and a malformed answer not at all', async () => {
    let conns = 0;
    let mode: 'reset' | 'garbage' = 'reset';
    const open = new Set<net.Socket>();
    const server = net.createServer((sock) => {
      conns++;
      open.add(sock.on('close', () => open.delete(sock)));
      if (mode === 'reset') sock.resetAndDestroy();
      else sock.end('SPEAK FRIEND\r\n\r\n');
    });
    const port = await freePort();
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    try {
      await assert.rejects(client.resolve(parseReference(`127.0.0.1:${port}/r/x:v1`)), (e: Error) => e instanceof Unavailable && /failed after 3 attempts/.test(e.message));
      assert.equal(conns, 3, 'the configured 3 attempts');
      conns = 0;
      mode = 'garbage';
      await assert.rejects(client.resolve(parseReference(`127.0.0.1:${port}/r/x:v1`)), (e: Error) => e instanceof Unavailable && /failed after 1 attempt \(not retried/.test(e.message));
      assert.equal(conns, 1, 'a malformed answer is not asked for again');
    } finally {
      for (const sock of open) sock.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('starts no attempt after the retry window, whatever the attempts allow', async () => {
    let calls = 0;
    const reg = await fakeRegistry((_req, res) => {
      calls++;
      res.writeHead(503).end();
    });
    // Backoff waits 200, 400, 800 ms: a 1 s window has room for three attempts at most.
    const patient = new RegistryClient({ configPath: hostsDir, attempts: 1000, retryWindowMs: 1000 });
    try {
      const err = await patient.resolve(parseReference(`${reg.host}/r/x:v1`)).then(() => assert.fail('resolved'), (e: Error) => e);
      assert.ok(err instanceof Unavailable, err.message);
      assert.ok(calls >= 1 && calls <= 3, `${calls} attempts`);
      assert.match(err.message, new RegExp(`failed after ${calls} attempts?: .*HTTP 503`));
    } finally {
      await patient.close();
      await reg.close();
    }
  });

  it('refuses a manifest whose content does not match its digest, and schema 1', async () => {
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.ociManifest, config: { mediaType: 'x', digest: sha256('c'), size: 1 }, layers: [] }));
    const schema1 = Buffer.from(JSON.stringify({ schemaVersion: 1, name: 'x', tag: 'old', fsLayers: [] }));
    const reg = await fakeRegistry((req, res) => {
      if (req.url!.includes('old')) res.writeHead(200, { 'content-type': MEDIA.dockerSchema1Signed }).end(schema1);
      else res.writeHead(200, { 'content-type': MEDIA.ociManifest, 'docker-content-digest': sha256('something else') }).end(body);
    });
    try {
      await assert.rejects(client.resolve(parseReference(`${reg.host}/r/x:v1`)), (e: Error) => e instanceof InvalidArgument && /has digest sha256:.*expected/.test(e.message));
      await assert.rejects(client.resolve(parseReference(`${reg.host}/r/x:old`)), (e: Error) => e instanceof InvalidArgument && /schema 1/.test(e.message));
    } finally {
      await reg.close();
    }
  });

  it('fails a stalled blob download with DEADLINE_EXCEEDED, and a truncated one by digest', async () => {
    const blob = Buffer.alloc(100000, 1);
    const reg = await fakeRegistry((req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(blob.length) });
      res.write(blob.subarray(0, 1000));
      if (req.url!.includes('truncate')) res.destroy();
      // else: stall forever (the server is closed at the end)
    });
    const stally = new RegistryClient({ configPath: hostsDir, attempts: 1, stallTimeoutMs: 300 });
    try {
      const ref = parseReference(`${reg.host}/r/stall:v1`);
      const hosts = await registryHosts(hostsDir, ref.registry);
      const d = { mediaType: GZ, digest: sha256(blob), size: blob.length };
      await assert.rejects(store.ingest(d.digest, () => stally.fetchBlob(hosts[0], ref, d), { size: d.size }), (e: Error) => e instanceof DeadlineExceeded);
      const t = parseReference(`${reg.host}/r/truncate:v1`);
      await assert.rejects(store.ingest(d.digest, () => stally.fetchBlob(hosts[0], t, d), { size: d.size }));
      assert.equal(await store.has(d.digest), false);
    } finally {
      await stally.close();
      await reg.close();
    }
  });

  it('follows a blob redirect to storage without the credentials, and refuses a redirect loop or to another scheme', async () => {
    const blob = Buffer.alloc(5000, 7);
    let storageAuth: string | undefined = 'unset';
    const storage = await fakeRegistry((req, res) => {
      storageAuth = req.headers.authorization;
      res.writeHead(200, { 'content-length': String(blob.length) }).end(blob);
    });
    const basic = `Basic ${Buffer.from('bob:pw').toString('base64')}`;
    const reg = await fakeRegistry((req, res) => {
      if (req.headers.authorization !== basic) res.writeHead(401, { 'www-authenticate': 'Basic realm="r"' }).end();
      else if (req.url!.includes('/loop/')) res.writeHead(302, { location: req.url! }).end();
      else if (req.url!.includes('/ftp/')) res.writeHead(302, { location: 'ftp://127.0.0.1/blob' }).end();
      // A same-origin hop first: it keeps the credentials, the next one drops them.
      else if (!req.url!.endsWith('?hop')) res.writeHead(307, { location: `${req.url}?hop` }).end();
      else res.writeHead(307, { location: `http://${storage.host}/bucket/blob?sig=1` }).end();
    });
    try {
      const ref = parseReference(`${reg.host}/r/x:v1`);
      const hosts = await registryHosts(hostsDir, ref.registry);
      const d = { mediaType: GZ, digest: sha256(blob), size: blob.length };
      await store.ingest(d.digest, () => client.fetchBlob(hosts[0], ref, d, { username: 'bob', password: 'pw' }), { size: d.size });
      assert.equal(await store.has(d.digest), true);
      assert.equal(storageAuth, undefined, 'no credentials sent to the storage origin');
      const loop = parseReference(`${reg.host}/loop/x:v1`);
      await assert.rejects(client.fetchBlob(hosts[0], loop, d, { username: 'bob', password: 'pw' }), (e: Error) => e instanceof Unavailable && /more than 5 redirects/.test(e.message));
      const ftp = parseReference(`${reg.host}/ftp/x:v1`);
      await assert.rejects(client.fetchBlob(hosts[0], ftp, d, { username: 'bob', password: 'pw' }), (e: Error) => e instanceof Unavailable && /unsupported URL scheme ftp:/.test(e.message));
    } finally {
      await reg.close();
      await storage.close();
    }
  });

  it('speaks TLS with a CA from hosts.toml, or skip_verify, and refuses an unknown certificate', async () => {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', path.join(tmp, 'key.pem'), '-out', path.join(tmp, 'cert.pem')], { stdio: 'ignore' });
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.ociManifest, config: { mediaType: 'x', digest: sha256('c'), size: 1 }, layers: [] }));
    const port = await freePort();
    const server = https.createServer({ key: fs.readFileSync(path.join(tmp, 'key.pem')), cert: fs.readFileSync(path.join(tmp, 'cert.pem')) }, (_req, res) => {
      res.writeHead(200, { 'content-type': MEDIA.ociManifest }).end(manifest);
    });
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    const hostDir = path.join(hostsDir, `127.0.0.1:${port}`);
    fs.mkdirSync(hostDir);
    const ref = parseReference(`127.0.0.1:${port}/r/x:v1`);
    const resolveWith = async (toml: string) => {
      fs.writeFileSync(path.join(hostDir, 'hosts.toml'), `server = "https://127.0.0.1:${port}"\n${toml}`);
      const c = new RegistryClient({ configPath: hostsDir, attempts: 1 });
      try {
        return await c.resolve(ref);
      } finally {
        await c.close();
      }
    };
    try {
      assert.equal((await resolveWith(`ca = "${path.join(tmp, 'cert.pem')}"\n`)).digest, sha256(manifest));
      assert.equal((await resolveWith('skip_verify = true\n')).digest, sha256(manifest));
      await assert.rejects(resolveWith(''), (e: Error) => e instanceof Unavailable && /certificate/.test(e.message));
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('parses WWW-Authenticate challenges', () => {
    assert.deepEqual(parseChallenge('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"'), {
      scheme: 'bearer',
      params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull,push' },
    });
    assert.deepEqual(parseChallenge('Basic realm="x"'), { scheme: 'basic', params: { realm: 'x' } });
  });
});
