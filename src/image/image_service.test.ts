import assert from 'node:assert/strict';
import { execFileSync } from 'child_process';
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Readable } from 'stream';
import * as tar from 'tar-stream';
import { gunzipSync } from 'zlib';
import { TestRegistry, sha256 } from '../../e2e/fixtures/registry';
import { FailedPrecondition, InvalidArgument, NotFound } from '../errors';
import { ImageService } from './image_service';

const GZ = 'application/vnd.oci.image.layer.v1.tar+gzip';

/** A gzipped layer of a directory tree, made with tar(1). */
function layerOf(dir: string) {
  const data = execFileSync('tar', ['-C', dir, '--numeric-owner', '-czf', '-', '.'], { maxBuffer: 1 << 30 });
  return { data, diffId: sha256(gunzipSync(data)), mediaType: GZ };
}

describe('image service', function () {
  let reg: TestRegistry;
  let work: string;
  let svc: ImageService;
  let base: ReturnType<typeof layerOf>;
  let top: ReturnType<typeof layerOf>;

  before(async () => {
    reg = await TestRegistry.start();
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-images-'));
    const l1 = path.join(work, 'l1');
    fs.mkdirSync(path.join(l1, 'bin'), { recursive: true });
    fs.mkdirSync(path.join(l1, 'etc'));
    fs.copyFileSync('/bin/busybox', path.join(l1, 'bin/busybox'));
    fs.symlinkSync('busybox', path.join(l1, 'bin/sh'));
    fs.writeFileSync(path.join(l1, 'etc/group'), 'root:x:0:\n');
    fs.writeFileSync(path.join(l1, 'etc/hostname'), 'base\n');
    const l2 = path.join(work, 'l2');
    fs.mkdirSync(path.join(l2, 'etc'), { recursive: true });
    fs.writeFileSync(path.join(l2, 'etc/.wh.group'), '');
    fs.writeFileSync(path.join(l2, 'etc/motd'), 'hello from layer 2\n');
    base = layerOf(l1);
    top = layerOf(l2);
    await reg.pushImage('skiff/busybox', 'v1', [base, top]);
    await reg.pushImage('skiff/busybox', 'base', [base]);
  });
  after(async () => {
    await reg.stop();
    fs.rmSync(work, { recursive: true, force: true });
  });

  beforeEach(async () => {
    svc = new ImageService({ root: path.join(work, 'root'), registry: { configPath: path.join(work, 'certs.d') } });
    await svc.init();
  });
  afterEach(async () => {
    await svc.close();
    fs.rmSync(path.join(work, 'root'), { recursive: true, force: true });
  });

  it('pulls layers in ranges from docker-registry (it answers Range with 206)', async () => {
    const ranged = new ImageService({ root: path.join(work, 'ranged'), registry: { configPath: path.join(work, 'certs.d') }, ranges: { minBytes: 1, parts: 4, minPart: 1 } });
    await ranged.init();
    try {
      const img = await ranged.pull(`${reg.host}/skiff/busybox:v1`);
      const dir = ranged.snapshots.layerDir(img.chainIds[0]);
      assert.ok(fs.readFileSync(path.join(dir, 'bin/busybox')).equals(fs.readFileSync('/bin/busybox')));
      assert.ok((await ranged.content.read(img.blobs.at(-2)!, 1 << 30)).equals(base.data), 'the base layer blob is stored whole');
    } finally {
      await ranged.close();
      fs.rmSync(path.join(work, 'ranged'), { recursive: true, force: true });
    }
  });

  it('pulls an image whose layers mount as the expected tree', async () => {
    const img = await svc.pull(`${reg.host}/skiff/busybox:v1`);
    assert.deepEqual(img.repoTags, [`${reg.host}/skiff/busybox:v1`]);
    assert.match(img.repoDigests[0], new RegExp(`^${reg.host}/skiff/busybox@sha256:[a-f0-9]{64}$`));
    assert.deepEqual(img.config.cmd, ['/bin/sh']);
    assert.equal(img.chainIds.length, 2);
    const target = path.join(work, 'mnt');
    fs.mkdirSync(target, { recursive: true });
    await svc.snapshots.mountRootfs('c1', img.chainIds, target);
    try {
      assert.ok(fs.statSync(path.join(target, 'bin/busybox')).isFile());
      assert.equal(fs.readlinkSync(path.join(target, 'bin/sh')), 'busybox');
      assert.equal(fs.existsSync(path.join(target, 'etc/group')), false, 'whiteout hides the lower file');
      assert.equal(fs.readFileSync(path.join(target, 'etc/motd'), 'utf8'), 'hello from layer 2\n');
      assert.equal(execFileSync('chroot', [target, '/bin/sh', '-c', 'echo $((6*7))']).toString(), '42\n');
    } finally {
      await svc.snapshots.removeRootfs('c1', target);
    }
  });

  it('finds images by tag, digest, id and id prefix; short names are normalized', async () => {
    const img = await svc.pull(`${reg.host}/skiff/busybox:v1`);
    assert.equal(svc.find(`${reg.host}/skiff/busybox:v1`)?.id, img.id);
    assert.equal(svc.find(img.repoDigests[0])?.id, img.id);
    assert.equal(svc.find(img.id)?.id, img.id);
    assert.equal(svc.find(img.id.slice(7, 19))?.id, img.id);
    assert.equal(svc.find(`${reg.host}/skiff/busybox:nope`), undefined);
    assert.equal(svc.find('busybox'), undefined);
  });

  it('shares one pull between concurrent callers and shares layers between images', async () => {
    const [a, b] = await Promise.all([svc.pull(`${reg.host}/skiff/busybox:v1`), svc.pull(`${reg.host}/skiff/busybox:v1`)]);
    assert.equal(a, b);
    const baseImg = await svc.pull(`${reg.host}/skiff/busybox:base`);
    assert.equal(baseImg.chainIds[0], a.chainIds[0]);
    assert.equal((await svc.snapshots.listLayers()).length, 2);
  });

  it('keeps records across a restart, skipping a torn one', async () => {
    const img = await svc.pull(`${reg.host}/skiff/busybox:v1`);
    fs.writeFileSync(path.join(work, 'root/metadata/images', `${'f'.repeat(64)}.json`), '{"id": "sha256:ff');
    const warnings: string[] = [];
    const again = new ImageService({ root: path.join(work, 'root'), registry: { configPath: path.join(work, 'certs.d') }, warn: (m) => warnings.push(m) });
    await again.init();
    assert.deepEqual(again.list().map((r) => r.id), [img.id]);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /skipping record .*ffff\.json/);
    await again.close();
  });

  it('removes an image and collects the blobs and layers no other image uses', async () => {
    const v1 = await svc.pull(`${reg.host}/skiff/busybox:v1`);
    const beforeBase = svc.generation;
    const baseImg = await svc.pull(`${reg.host}/skiff/busybox:base`);
    assert.notEqual(svc.generation, beforeBase, 'a pull changes the generation (ListImages keeps its reply by it)');
    const blobsBefore = (await svc.content.list()).length;
    const beforeRemove = svc.generation;
    await svc.remove(`${reg.host}/skiff/busybox:v1`);
    assert.notEqual(svc.generation, beforeRemove, 'a removal changes the generation');
    assert.equal(svc.find(v1.id), undefined);
    assert.deepEqual(await svc.snapshots.listLayers(), [baseImg.chainIds[0]], 'the shared base layer stays');
    const blobs = await svc.content.list();
    assert.ok(blobs.length < blobsBefore);
    for (const b of baseImg.blobs) assert.ok(blobs.includes(b), `kept ${b}`);
    await svc.remove(baseImg.id);
    assert.deepEqual(await svc.snapshots.listLayers(), []);
    assert.deepEqual(await svc.content.list(), []);
    await assert.rejects(svc.remove(baseImg.id), (e: Error) => e instanceof NotFound);
  });

  it('refuses to remove a pinned image or one a container uses, naming why, and removes nothing', async () => {
    const inUse = new Map<string, string>();
    const pinning = new ImageService({
      root: path.join(work, 'root'),
      registry: { configPath: path.join(work, 'certs.d') },
      pinnedImages: [`${reg.host}/skiff/busybox:base`],
      imagesInUse: () => inUse,
    });
    await pinning.init();
    try {
      const baseImg = await pinning.pull(`${reg.host}/skiff/busybox:base`);
      const v1 = await pinning.pull(`${reg.host}/skiff/busybox:v1`);
      assert.equal(pinning.keepReason(baseImg), 'pinned by image.pinned_images');
      assert.equal(pinning.keepReason(v1), undefined);
      assert.deepEqual(pinning.keptIds(), new Set([baseImg.id]));
      inUse.set(v1.id, 'c'.repeat(64));
      assert.equal(pinning.keepReason(v1), `in use by container ${'c'.repeat(64)}`);
      assert.deepEqual(pinning.keptIds(), new Set([baseImg.id, v1.id]));
      const blobs = await pinning.content.list();
      await assert.rejects(pinning.remove(baseImg.id), (e: Error) => e instanceof FailedPrecondition && /pinned by image\.pinned_images/.test(e.message));
      await assert.rejects(pinning.remove(`${reg.host}/skiff/busybox:v1`), (e: Error) => e instanceof FailedPrecondition && /in use by container c+/.test(e.message));
      assert.deepEqual(await pinning.content.list(), blobs);
      assert.equal((await pinning.snapshots.listLayers()).length, 2);
      inUse.clear();
      await pinning.remove(v1.id);
      assert.equal(pinning.find(v1.id), undefined);
    } finally {
      await pinning.close();
    }
  });

  it('finds the exact image an id or digest names, and refuses a tag or short id as image_ref', async () => {
    const img = await svc.pull(`${reg.host}/skiff/busybox:v1`);
    assert.equal(svc.findExact(img.id)?.id, img.id);
    assert.equal(svc.findExact(img.id.slice(7))?.id, img.id);
    assert.equal(svc.findExact(img.repoDigests[0])?.id, img.id);
    assert.equal(svc.findExact(`sha256:${'0'.repeat(64)}`), undefined);
    assert.throws(() => svc.findExact(`${reg.host}/skiff/busybox:v1`), (e: Error) => e instanceof InvalidArgument && /neither an image id nor a digest/.test(e.message));
    assert.throws(() => svc.findExact(img.id.slice(7, 19)), InvalidArgument);
  });

  it('keeps the pull spec (annotations, runtime handler) across a restart; a later pull replaces it', async () => {
    const root = path.join(work, 'root');
    await svc.pull(`${reg.host}/skiff/busybox:v1`, undefined, { annotations: { a: '1' }, runtimeHandler: 'skiff' });
    const again = new ImageService({ root, registry: { configPath: path.join(work, 'certs.d') } });
    await again.init();
    try {
      const r = again.find(`${reg.host}/skiff/busybox:v1`)!;
      assert.deepEqual(r.annotations, { a: '1' });
      assert.equal(r.runtimeHandler, 'skiff');
      const re = await again.pull(`${reg.host}/skiff/busybox:v1`, undefined, { annotations: { b: '2' } });
      assert.deepEqual(re.annotations, { b: '2' });
      assert.equal(re.runtimeHandler, '');
    } finally {
      await again.close();
    }
  });

  it('reports images and writable layers on one filesystem as one entry, counted once', async () => {
    const img = await svc.pull(`${reg.host}/skiff/busybox:v1`);
    const target = path.join(work, 'mnt');
    fs.mkdirSync(target, { recursive: true });
    await svc.snapshots.mountRootfs('c1', img.chainIds, target);
    try {
      fs.writeFileSync(path.join(target, 'written'), Buffer.alloc(4 << 20, 1));
      const { image, container } = await svc.storageFilesystems();
      assert.equal(image, container);
      assert.equal(image.mountpoint, svc.snapshots.root);
      const images = (await svc.content.usage()).bytes + (await svc.snapshots.layersUsage()).bytes;
      assert.equal(image.bytes, images + (await svc.snapshots.containersUsage()).bytes);
      assert.ok(image.bytes >= images + (4 << 20));
    } finally {
      await svc.snapshots.removeRootfs('c1', target);
    }
  });

  it('survives a SIGKILL mid-pull: no corrupt blob or half record, and the next pull completes', async function () {
    this.timeout(120000);
    // A big incompressible layer, so the puller can be killed while it streams.
    const big = path.join(work, 'big');
    fs.mkdirSync(big, { recursive: true });
    fs.writeFileSync(path.join(big, 'blob'), randomBytes(64 * 1024 * 1024));
    await reg.pushImage('skiff/big', 'v1', [base, layerOf(big)]);
    fs.rmSync(big, { recursive: true });
    const root = path.join(work, 'root');
    const script = `
      const { ImageService } = require(${JSON.stringify(path.join(__dirname, 'image_service.js'))});
      const s = new ImageService({ root: ${JSON.stringify(root)}, registry: { configPath: ${JSON.stringify(path.join(work, 'certs.d'))} } });
      s.init().then(() => s.pull(${JSON.stringify(`${reg.host}/skiff/big:v1`)}));`;
    const { spawn } = await import('child_process');
    const child = spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
    // Kill it once it has started writing the big blob.
    const ingest = path.join(root, 'content/ingest');
    const end = Date.now() + 20000;
    let midWrite = false;
    while (!midWrite && Date.now() < end) {
      try {
        midWrite = fs.readdirSync(ingest).some((n) => fs.statSync(path.join(ingest, n)).size > 1024 * 1024);
      } catch {
        /* not there yet, or renamed away */
      }
      if (!midWrite) await new Promise((r) => setTimeout(r, 5));
    }
    child.kill('SIGKILL');
    assert.ok(midWrite, 'the puller was killed while a blob was being written');
    await new Promise((r) => child.once('exit', r));
    // What the killed process left: only temp files, never a blob under a wrong digest.
    const blobsDir = path.join(root, 'content/blobs/sha256');
    for (const n of fs.existsSync(blobsDir) ? fs.readdirSync(blobsDir) : []) {
      assert.equal(sha256(fs.readFileSync(path.join(blobsDir, n))), `sha256:${n}`, `blob ${n} intact`);
    }
    const fresh = new ImageService({ root, registry: { configPath: path.join(work, 'certs.d') } });
    await fresh.init();
    try {
      assert.deepEqual(fresh.list(), [], 'no half-written image record');
      assert.deepEqual(fs.readdirSync(ingest), [], 'partial writes dropped at start');
      const img = await fresh.pull(`${reg.host}/skiff/big:v1`);
      assert.equal(img.chainIds.length, 2);
    } finally {
      await fresh.close();
    }
  });

  describe('archives', () => {
    /** A tar of [name, bytes] entries. */
    async function tarOf(files: [string, Buffer][]): Promise<Buffer> {
      const pack = tar.pack();
      const chunks: Buffer[] = [];
      const done = (async () => {
        for await (const c of pack as AsyncIterable<Buffer>) chunks.push(Buffer.from(c));
      })();
      for (const [name, body] of files) await new Promise<void>((res, rej) => pack.entry({ name, size: body.length }, body, (e) => (e ? rej(e) : res())));
      pack.finalize();
      await done;
      return Buffer.concat(chunks);
    }

    function configFor(diffIds: string[]): Buffer {
      return Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/sh'] }, rootfs: { type: 'layers', diff_ids: diffIds } }));
    }

    async function checkMounts(id: string, chains: string[]) {
      const target = path.join(work, `mnt-${id}`);
      fs.mkdirSync(target, { recursive: true });
      await svc.snapshots.mountRootfs(id, chains, target);
      try {
        assert.equal(execFileSync('chroot', [target, '/bin/sh', '-c', 'read l < /etc/motd; echo "$l"']).toString(), 'hello from layer 2\n');
      } finally {
        await svc.snapshots.removeRootfs(id, target);
      }
    }

    it('imports an OCI image layout archive', async () => {
      const config = configFor([base.diffId, top.diffId]);
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
          layers: [base, top].map((l) => ({ mediaType: GZ, digest: sha256(l.data), size: l.data.length })),
        }),
      );
      const index = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(manifest), size: manifest.length, annotations: { 'io.containerd.image.name': 'docker.io/library/imported:v1' } }],
        }),
      );
      const blob = (b: Buffer): [string, Buffer] => [`blobs/sha256/${sha256(b).slice(7)}`, b];
      const archive = await tarOf([['oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}')], ['index.json', index], blob(manifest), blob(config), blob(base.data), blob(top.data)]);
      const [img] = await svc.importArchive(Readable.from([archive]));
      assert.deepEqual(img.repoTags, ['docker.io/library/imported:v1']);
      assert.equal(svc.find('imported:v1')?.id, sha256(config));
      await checkMounts('oci', img.chainIds);
      // Again, every blob already stored: each is read past, not left half-read (which
      // stalled the archive's reader for good), in one chunk or in many.
      const chunks = Array.from({ length: Math.ceil(archive.length / 4096) }, (_, i) => archive.subarray(i * 4096, (i + 1) * 4096));
      for (const source of [[archive], chunks]) assert.equal((await svc.importArchive(Readable.from(source)))[0].id, img.id);
    });

    it('imports a docker save archive', async () => {
      const l1 = gunzipSync(base.data);
      const l2 = gunzipSync(top.data);
      const config = configFor([sha256(l1), sha256(l2)]);
      const manifest = Buffer.from(JSON.stringify([{ Config: 'cfg.json', RepoTags: ['saved:latest'], Layers: ['aaa/layer.tar', 'bbb/layer.tar'] }]));
      const archive = await tarOf([['manifest.json', manifest], ['cfg.json', config], ['aaa/layer.tar', l1], ['bbb/layer.tar', l2]]);
      const [img] = await svc.importArchive(Readable.from([archive]));
      assert.deepEqual(img.repoTags, ['docker.io/library/saved:latest']);
      await checkMounts('docker', img.chainIds);
    });

    it('refuses an archive whose blob does not match its name, recording nothing', async () => {
      const archive = await tarOf([['index.json', Buffer.from('{"manifests":[]}')], [`blobs/sha256/${sha256('x').slice(7)}`, Buffer.from('not x')]]);
      await assert.rejects(svc.importArchive(Readable.from([archive])), /content has digest/);
      assert.deepEqual(svc.list(), []);
      await assert.rejects(svc.importArchive(Readable.from([await tarOf([['hello.txt', Buffer.from('hi')]])])), /neither index\.json/);
    });
  });

  it('fails a pull of a missing tag with NOT_FOUND and keeps nothing', async () => {
    await assert.rejects(svc.pull(`${reg.host}/skiff/busybox:missing`), (e: Error) => e instanceof NotFound);
    assert.deepEqual(svc.list(), []);
    assert.deepEqual(await svc.snapshots.listLayers(), []);
  });
});
