import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'crypto';
import * as fs from 'fs';
import * as http from 'http';
import * as os from 'os';
import * as path from 'path';
import * as tar from 'tar-stream';
import { gzipSync } from 'zlib';
import { freePort } from '../../e2e/fixtures/registry';
import { Unavailable } from '../errors';
import { DigestMismatch, type BlobSink, type FollowedFile } from './blob_ingest';
import type { BodySource } from './http_client';
import { fetchBlobInto, RangeOptions, splitRanges } from './blob_fetch';
import { ContentStore } from './content_store';
import { registryHosts } from './hosts';
import { ImageService } from './image_service';
import { parseReference } from './reference';
import { RegistryClient } from './registry';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** What skiff-unpack does with a FollowedFile: reads it in order as it is written, then
 * reports the digest of what it read (digestOf: a follower that gets it wrong). */
async function follow(file: FollowedFile, digestOf = sha): Promise<Buffer> {
  const fd = fs.openSync(file.path, 'r');
  const chunks: Buffer[] = [];
  let pos = 0;
  try {
    await new Promise<void>((resolve, reject) => {
      file.watch(
        (written) => {
          if (written <= pos) return;
          const b = Buffer.alloc(written - pos);
          fs.readSync(fd, b, 0, b.length, pos);
          chunks.push(b);
          pos = written;
        },
        (e) => (e ? reject(e) : resolve()),
      );
    });
  } catch (e) {
    file.release();
    throw e;
  } finally {
    fs.closeSync(fd);
  }
  const all = Buffer.concat(chunks);
  file.readAll(digestOf(all));
  return all;
}
const SMALL_RANGES: RangeOptions = { minBytes: 1, parts: 4, minPart: 1 };
const LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

/** What the fake registry does with a blob request: Range honoured or not, one range broken. */
interface Behaviour {
  ranges: boolean;
  /** A request whose range starts here has its connection cut after half its bytes. */
  cutRangeAt?: number;
  /** A request whose range starts here gets these bytes flipped (wrong content, right length). */
  corruptRangeAt?: number;
}

/** A registry of blobs and one manifest over plain HTTP that serves Range as docker-registry does (or ignores it). */
async function fakeRegistry(blobs: Map<string, Buffer>, manifest: Buffer | null, behaviour: Behaviour) {
  const port = await freePort();
  const seen: { path: string; range?: string }[] = [];
  const server = http.createServer((req, res) => {
    seen.push({ path: req.url ?? '', range: req.headers.range });
    const m = /^\/v2\/[^/]+\/[^/]+\/(blobs|manifests)\/(.+)$/.exec(req.url ?? '');
    if (m?.[1] === 'manifests' && manifest) {
      res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'content-length': manifest.length, 'docker-content-digest': sha(manifest) });
      return res.end(manifest);
    }
    const blob = m?.[1] === 'blobs' ? blobs.get(m[2]) : undefined;
    if (!blob) {
      res.writeHead(404);
      return res.end();
    }
    const r = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    if (!behaviour.ranges || !r) {
      res.writeHead(200, { 'content-length': blob.length });
      return res.end(blob);
    }
    const start = Number(r[1]);
    const end = Math.min(Number(r[2]), blob.length - 1);
    let part = Buffer.from(blob.subarray(start, end + 1));
    if (start === behaviour.corruptRangeAt) part = Buffer.from(part.map((b) => b ^ 0xff));
    res.writeHead(206, { 'content-length': part.length, 'content-range': `bytes ${start}-${end}/${blob.length}` });
    if (start === behaviour.cutRangeAt) {
      res.write(part.subarray(0, part.length >> 1), () => res.socket?.destroy());
      return;
    }
    res.end(part);
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return {
    host: `127.0.0.1:${port}`,
    seen,
    close: () => new Promise<void>((r) => server.close(() => r())).then(() => server.closeAllConnections()),
  };
}

const emptyDir = (dir: string) => !fs.existsSync(dir) || fs.readdirSync(dir).length === 0;

describe('blob fetch in ranges', function () {
  let tmp: string;
  let store: ContentStore;
  let client: RegistryClient;
  const blob = randomBytes(1_000_003);
  const digest = sha(blob);
  const desc = { mediaType: 'application/octet-stream', digest, size: blob.length };
  beforeEach(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-ranges-'));
    fs.mkdirSync(path.join(tmp, 'certs.d'));
    client = new RegistryClient({ configPath: path.join(tmp, 'certs.d'), attempts: 1, stallTimeoutMs: 5000 });
    store = new ContentStore(path.join(tmp, 'content'));
    await store.init();
  });
  afterEach(async () => {
    await client.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  /** beginIngest + fetchBlobInto from a fake registry, the blob followed to its end. */
  async function fetch(behaviour: Behaviour) {
    const reg = await fakeRegistry(new Map([[digest, blob]]), null, behaviour);
    try {
      const ref = parseReference(`${reg.host}/test/blob:v1`);
      const [host] = await registryHosts(path.join(tmp, 'certs.d'), ref.registry);
      let counted = 0;
      const ingest = await store.beginIngest(digest, blob.length, (sink, signal) => fetchBlobInto(client, host, ref, desc, undefined, sink, signal, (n) => (counted += n), SMALL_RANGES));
      assert.ok(ingest);
      const reading = follow(ingest.file);
      const [read, committed] = await Promise.allSettled([reading, ingest.committed]);
      return { read, committed, bytes: read.status === 'fulfilled' ? read.value : Buffer.alloc(0), counted, seen: reg.seen };
    } finally {
      await reg.close();
    }
  }

  it('splits a blob into at most `parts` ranges, none under minPart', () => {
    assert.deepEqual(splitRanges(100, 4, 1), [[0, 24], [25, 49], [50, 74], [75, 99]]);
    assert.deepEqual(splitRanges(100, 4, 40), [[0, 49], [50, 99]]);
    assert.deepEqual(splitRanges(10, 4, 40), [[0, 9]]);
    assert.deepEqual(splitRanges(101, 4, 1).at(-1), [78, 100]);
  });

  it('fetches a blob in ranges, reads it back in order while it arrives, and stores it verified', async () => {
    const r = await fetch({ ranges: true });
    assert.equal(r.committed.status, 'fulfilled');
    assert.equal(r.read.status, 'fulfilled');
    assert.ok(r.bytes.equals(blob), 'the reader sees the blob in order');
    assert.ok((await store.read(digest)).equals(blob), 'the stored blob is the whole blob');
    assert.equal(r.counted, blob.length);
    const ranges = r.seen.filter((s) => s.path.includes('/blobs/')).map((s) => s.range);
    assert.deepEqual(ranges, ['bytes=0-250000', 'bytes=250001-500001', 'bytes=500002-750002', 'bytes=750003-1000002']);
    assert.ok(emptyDir(path.join(tmp, 'content', 'ingest')));
  });

  it('takes the whole blob in one answer from a registry that ignores Range', async () => {
    const r = await fetch({ ranges: false });
    assert.equal(r.committed.status, 'fulfilled');
    assert.ok(r.bytes.equals(blob));
    assert.ok((await store.read(digest)).equals(blob));
    assert.equal(r.seen.filter((s) => s.path.includes('/blobs/')).length, 1, 'no request after the 200 answer');
  });

  it('fails the whole blob when one range breaks off, and stores nothing', async () => {
    const r = await fetch({ ranges: true, cutRangeAt: 500002 });
    assert.equal(r.committed.status, 'rejected');
    assert.ok((r.committed as PromiseRejectedResult).reason instanceof Unavailable, String((r.committed as PromiseRejectedResult).reason));
    assert.equal(r.read.status, 'rejected', 'the reader fails too');
    assert.equal(await store.has(digest), false);
    assert.ok(emptyDir(path.join(tmp, 'content', 'ingest')), 'no partial blob is left');
  });

  it('refuses a blob whose ranges do not add up to its digest, and stores nothing', async () => {
    const r = await fetch({ ranges: true, corruptRangeAt: 250001 });
    assert.equal(r.committed.status, 'rejected');
    const e = (r.committed as PromiseRejectedResult).reason as Error;
    assert.ok(e instanceof DigestMismatch, String(e));
    assert.match(e.message, new RegExp(`blob ${digest}: content has digest sha256:`));
    assert.equal(await store.has(digest), false);
    assert.ok(emptyDir(path.join(tmp, 'content', 'ingest')));
  });

  /** A body of these bytes in chunks of 64 KiB, each valid only during its call, as the HTTP client gives them. */
  const memoryBody = (bytes: Buffer): BodySource => ({
    consume: (c) => {
      const chunk = Buffer.alloc(64 * 1024);
      for (let o = 0; o < bytes.length; o += chunk.length) {
        const n = bytes.copy(chunk, 0, o);
        c.chunk(chunk.subarray(0, n));
        chunk.fill(0);
      }
      c.end();
    },
    resume: () => undefined,
    destroy: () => undefined,
  });

  /** A fill that writes the blob in two ranges, the second first, from memory. */
  const fillFromMemory = async (sink: BlobSink) => {
    const half = blob.length >> 1;
    await sink.writeRange(memoryBody(blob.subarray(half)), half, blob.length - half, 'second half');
    await sink.writeRange(memoryBody(blob.subarray(0, half)), 0, half, 'first half');
  };

  it('gives a follower that comes only after the download ended every byte, then commits with its digest', async () => {
    const ingest = await store.beginIngest(digest, blob.length, fillFromMemory);
    assert.ok(ingest);
    await new Promise((r) => setTimeout(r, 100)); // the fill is done; the blob waits for its follower
    assert.equal(await store.has(digest), false, 'not committed before the follower is done');
    assert.ok((await follow(ingest.file)).equals(blob));
    await ingest.committed;
    assert.ok((await store.read(digest)).equals(blob));
  });

  it('refuses a blob whose follower read other bytes than its digest names, keeping nothing', async () => {
    const ingest = await store.beginIngest(digest, blob.length, fillFromMemory);
    assert.ok(ingest);
    await follow(ingest.file, () => sha(Buffer.from('something else')));
    await assert.rejects(ingest.committed, (e: Error) => e instanceof DigestMismatch);
    assert.equal(await store.has(digest), false);
    assert.deepEqual(fs.readdirSync(path.join(tmp, 'content', 'ingest')), []);
  });

  it('hashes and stores a blob whose follower was released without reading it', async () => {
    const ingest = await store.beginIngest(digest, blob.length, fillFromMemory);
    assert.ok(ingest);
    ingest.file.release();
    await ingest.committed;
    assert.ok((await store.read(digest)).equals(blob));
    assert.equal(await store.beginIngest(digest, blob.length, fillFromMemory), null, 'a stored blob is not fetched again');
  });

  describe('through the image service', () => {
    /** A one-layer image: a 2 MB random file and a small one. */
    function image() {
      const files: [string, Buffer][] = [
        ['data.bin', randomBytes(2_000_000)],
        ['etc/motd', Buffer.from('in ranges\n')],
      ];
      const pack = tar.pack();
      pack.entry({ name: 'etc/', type: 'directory', mode: 0o755 });
      for (const [name, body] of files) pack.entry({ name, mode: 0o644 }, body);
      pack.finalize();
      return new Promise<{ blobs: Map<string, Buffer>; manifest: Buffer; layerDigest: string; files: [string, Buffer][] }>((resolve, reject) => {
        const parts: Buffer[] = [];
        pack.on('data', (c: unknown) => parts.push(c as Buffer));
        pack.on('error', reject);
        pack.on('end', () => {
          const tarBytes = Buffer.concat(parts);
          const layer = gzipSync(tarBytes, { level: 1 });
          const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [sha(tarBytes)] } }));
          const manifest = Buffer.from(
            JSON.stringify({
              schemaVersion: 2,
              mediaType: 'application/vnd.oci.image.manifest.v1+json',
              config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
              layers: [{ mediaType: LAYER, digest: sha(layer), size: layer.length }],
            }),
          );
          resolve({ blobs: new Map([[sha(config), config], [sha(layer), layer]]), manifest, layerDigest: sha(layer), files });
        });
      });
    }

    async function pullWith(behaviour: (layerSize: number) => Behaviour) {
      const img = await image();
      const reg = await fakeRegistry(img.blobs, img.manifest, behaviour(img.blobs.get(img.layerDigest)!.length));
      const svc = new ImageService({ root: path.join(tmp, 'root'), registry: { configPath: path.join(tmp, 'certs.d'), attempts: 1, platform: { os: 'linux', architecture: 'amd64' } }, ranges: SMALL_RANGES });
      await svc.init();
      try {
        const pulled = await svc.pull(`${reg.host}/test/img:v1`).then(
          (r) => ({ ok: true as const, r }),
          (e: Error) => ({ ok: false as const, e }),
        );
        return { img, svc, pulled, seen: reg.seen };
      } finally {
        await svc.close();
        await reg.close();
      }
    }

    it('unpacks a layer fetched in ranges as it arrives', async () => {
      const { img, svc, pulled, seen } = await pullWith(() => ({ ranges: true }));
      assert.ok(pulled.ok, pulled.ok ? '' : pulled.e.message);
      const dir = svc.snapshots.layerDir(pulled.r.chainIds[0]);
      for (const [name, body] of img.files) assert.ok(fs.readFileSync(path.join(dir, name)).equals(body), name);
      assert.ok((await svc.content.read(img.layerDigest, 1 << 30)).equals(img.blobs.get(img.layerDigest)!));
      assert.equal(seen.filter((s) => s.path.endsWith(img.layerDigest) && s.range).length, 4);
    });

    it('fails the pull when a range breaks off and leaves no layer, blob or temp file', async () => {
      const { img, svc, pulled } = await pullWith((size) => ({ ranges: true, cutRangeAt: splitRanges(size, 4, 1)[2][0] }));
      assert.equal(pulled.ok, false);
      assert.ok(!pulled.ok && pulled.e instanceof Unavailable, pulled.ok ? '' : String(pulled.e));
      assert.equal(await svc.content.has(img.layerDigest), false);
      assert.deepEqual(await svc.snapshots.listLayers(), []);
      assert.ok(emptyDir(path.join(tmp, 'root', 'snapshots', 'tmp')), 'no half-unpacked layer');
      assert.ok(emptyDir(path.join(tmp, 'root', 'content', 'ingest')), 'no partial blob');
      assert.deepEqual(svc.list(), []);
    });
  });
});
