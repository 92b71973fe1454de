// The CRI ImageService of a real skiffd, over gRPC, against a loopback registry.
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import type { ServiceError } from '@grpc/grpc-js';
import { runTempDir } from '../fixtures/cleanup';
import { busyboxLayer, Layer } from '../fixtures/images';
import { TestRegistry } from '../fixtures/registry';
import { statusCode } from '../fixtures/grpc';
import { TestSkiffd } from '../fixtures/skiffd';

const code = statusCode;

describe('CRI ImageService (skiffd over gRPC)', function () {
  this.timeout(120_000);
  let reg: TestRegistry;
  let skiffd: TestSkiffd;
  let work: string;
  let layer: Layer;
  let digest: string;

  before(async () => {
    work = runTempDir('skiff-cri-image-');
    reg = await TestRegistry.start();
    layer = busyboxLayer(work);
    const pushed = await reg.pushImage('library/busybox', 'latest', [layer], undefined, { Cmd: ['sh'], User: '1000:1000', Env: ['PATH=/bin'] });
    digest = pushed.manifestDigest;
    await reg.pushImage('tools/named', 'v1', [layer], undefined, { Cmd: ['sh'], User: 'app' });
    skiffd = await TestSkiffd.start();
    skiffd.mirror('docker.io', reg.host);
  });
  after(async () => {
    await skiffd?.cleanup();
    await reg?.stop();
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('pulls a short name through the docker.io mirror and reports it as containerd does', async () => {
    const c = skiffd.client;
    const pulled = await c.image('PullImage', { image: { image: 'busybox' } });
    assert.match(pulled.image_ref, /^sha256:[a-f0-9]{64}$/);
    const st = await c.image('ImageStatus', { image: { image: 'busybox' } });
    assert.ok(st.image);
    assert.equal(st.image.id, pulled.image_ref);
    assert.deepEqual(st.image.repo_tags, ['docker.io/library/busybox:latest']);
    assert.deepEqual(st.image.repo_digests, [`docker.io/library/busybox@${digest}`]);
    assert.equal(st.image.uid?.value, 1000);
    assert.equal(st.image.username, '');
    assert.ok(st.image.size > layer.data.length);
    assert.deepEqual(st.info, {});
  });

  it('finds an image by tag, digest, full id and short id', async () => {
    const c = skiffd.client;
    const id = (await c.image('ImageStatus', { image: { image: 'docker.io/library/busybox:latest' } })).image!.id;
    for (const name of [`busybox@${digest}`, id, id.slice(7), id.slice(7, 19), 'library/busybox']) {
      const st = await c.image('ImageStatus', { image: { image: name } });
      assert.equal(st.image?.id, id, name);
    }
  });

  it('reports a username for a named USER and the config under verbose info', async () => {
    const c = skiffd.client;
    await c.image('PullImage', { image: { image: 'docker.io/tools/named:v1' } });
    const st = await c.image('ImageStatus', { image: { image: 'docker.io/tools/named:v1' }, verbose: true });
    assert.equal(st.image?.username, 'app');
    assert.equal(st.image?.uid, null);
    const info = JSON.parse(st.info.info) as { imageSpec: { config: { User: string } }; chainIds: string[] };
    assert.equal(info.imageSpec.config.User, 'app');
    assert.equal(info.chainIds.length, 1);
  });

  it('lists images, with and without a filter', async () => {
    const c = skiffd.client;
    const all = await c.image('ListImages', {});
    assert.deepEqual(all.images.flatMap((i) => i.repo_tags).sort(), ['docker.io/library/busybox:latest', 'docker.io/tools/named:v1']);
    const one = await c.image('ListImages', { filter: { image: { image: 'busybox' } } });
    assert.deepEqual(one.images.map((i) => i.repo_tags[0]), ['docker.io/library/busybox:latest']);
    const none = await c.image('ListImages', { filter: { image: { image: 'nothere' } } });
    assert.deepEqual(none.images, []);
  });

  it('answers an unknown image with no image, and bad requests with INVALID_ARGUMENT', async () => {
    const c = skiffd.client;
    const st = await c.image('ImageStatus', { image: { image: 'docker.io/library/nothere:1' } });
    assert.equal(st.image, null);
    assert.equal(await code(c.image('ImageStatus', {})), 3);
    assert.equal(await code(c.image('PullImage', { image: { image: '' } })), 3);
    assert.equal(await code(c.image('PullImage', { image: { image: 'UPPER/case' } })), 3);
    assert.equal(await code(c.image('RemoveImage', {})), 3);
  });

  it('fails a pull of a missing image with NOT_FOUND and a message naming it', async () => {
    await assert.rejects(skiffd.client.image('PullImage', { image: { image: 'docker.io/library/nothere:1' } }), (e: ServiceError) => {
      assert.equal(e.code, 5);
      assert.match(e.details, /nothere/);
      return true;
    });
  });

  it('reports image and container filesystem usage', async () => {
    const fsInfo = await skiffd.client.image('ImageFsInfo', {});
    assert.equal(fsInfo.image_filesystems.length, 1);
    const u = fsInfo.image_filesystems[0];
    assert.ok(u.used_bytes!.value >= layer.data.length, 'blobs and layers counted');
    assert.ok(u.inodes_used!.value > 200, `busybox applets counted: ${u.inodes_used!.value}`);
    assert.ok(u.fs_id!.mountpoint.startsWith(skiffd.root));
    assert.ok(Math.abs(u.timestamp / 1e6 - Date.now()) < 60_000);
    assert.equal(fsInfo.container_filesystems.length, 1);
  });

  it('serves the same calls under runtime.v1alpha2', async () => {
    const { CriClient } = await import('../../src/cri/client');
    const old = new CriClient(skiffd.socket, 'runtime.v1alpha2');
    try {
      const st = await old.image('ImageStatus', { image: { image: 'busybox' } });
      assert.deepEqual(st.image?.repo_tags, ['docker.io/library/busybox:latest']);
      assert.equal((await old.runtime('Version', {})).runtime_api_version, 'v1alpha2');
    } finally {
      old.close();
    }
  });

  it('removes images idempotently and collects their blobs', async () => {
    const c = skiffd.client;
    await c.image('RemoveImage', { image: { image: 'docker.io/tools/named:v1' } });
    await c.image('RemoveImage', { image: { image: 'busybox' } });
    await c.image('RemoveImage', { image: { image: 'busybox' } });
    assert.deepEqual((await c.image('ListImages', {})).images, []);
    const blobs = fs.readdirSync(path.join(skiffd.root, 'content', 'blobs', 'sha256'));
    assert.deepEqual(blobs, []);
  });

  it('keeps images across a restart, also after SIGKILL', async () => {
    await skiffd.client.image('PullImage', { image: { image: 'busybox' } });
    await skiffd.kill();
    await skiffd.restart();
    const st = await skiffd.client.image('ImageStatus', { image: { image: 'busybox' } });
    assert.deepEqual(st.image?.repo_tags, ['docker.io/library/busybox:latest']);
  });

  it('answers CheckpointContainer (implemented since issue 19) for an unknown container with NOT_FOUND', async () => {
    assert.equal(await code(skiffd.client.runtime('CheckpointContainer', { container_id: 'x' })), 5);
  });
});
