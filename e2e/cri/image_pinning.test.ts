// The image calls' ImageSpec over gRPC: runtime handlers (KEP-4216), CreateContainer's
// image_ref, pinned images (configured, and those containers use) that RemoveImage keeps,
// and the pull's annotations kept with the image across a restart.
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import type { ServiceError } from '@grpc/grpc-js';
import { CriClient } from '../../src/cri/client';
import { CriPod, CriPods, HOST_NETWORK } from '../fixtures/cri_pods';
import { startBusyboxRegistry } from '../fixtures/node';
import type { TestRegistry } from '../fixtures/registry';
import { TestSkiffd } from '../fixtures/skiffd';

const INVALID_ARGUMENT = 3;
const NOT_FOUND = 5;
const FAILED_PRECONDITION = 9;

/** A call that fails with `code` and a message matching `message`. */
async function rejectsWith(p: Promise<unknown>, code: number, message: RegExp): Promise<void> {
  await assert.rejects(p, (e: ServiceError) => {
    assert.equal(e.code, code, e.details);
    assert.match(e.details, message);
    return true;
  });
}

describe('image specs: runtime handler, image_ref, pinned images, annotations (skiffd over gRPC)', function () {
  this.timeout(120_000);
  let reg: TestRegistry;
  let skiffd: TestSkiffd;
  let pods: CriPods;
  let pod: CriPod;
  let seq = 0;
  const blobs = () => fs.readdirSync(path.join(skiffd.root, 'content', 'blobs', 'sha256')).sort();
  const idOf = async (image: string) => (await skiffd.client.image('ImageStatus', { image: { image } })).image!.id;
  const envOf = async (id: string) => Buffer.from((await skiffd.client.runtime('ExecSync', { container_id: id, cmd: ['env'], timeout: 10 })).stdout).toString();

  before(async () => {
    // Three images, their configs differing.
    reg = await startBusyboxRegistry(Object.fromEntries(['latest', 'pinned', 'other'].map((tag) => [tag, { Cmd: ['sh'], Env: ['PATH=/bin', `TAG=${tag}`] }])));
    skiffd = await TestSkiffd.start({ args: ['--network.write_default_config', 'false', '--image.pinned_images', 'docker.io/library/busybox:pinned'] });
    skiffd.mirror('docker.io', reg.host);
    for (const tag of ['latest', 'pinned']) await skiffd.client.image('PullImage', { image: { image: `busybox:${tag}` } });
    pods = new CriPods(skiffd, { prefix: 'pinning', namespace: 'e2e', uidPrefix: 'uid-pinning-' });
    pod = await pods.runPod(HOST_NETWORK);
  });
  after(async () => {
    await skiffd?.cleanup();
    await reg?.stop();
  });

  it('refuses an unknown runtime handler in every image call with INVALID_ARGUMENT naming it, pulling nothing', async () => {
    const c = skiffd.client;
    const before = blobs();
    await rejectsWith(c.image('PullImage', { image: { image: 'busybox:other', runtime_handler: 'kata' } }), INVALID_ARGUMENT, /runtime_handler "kata" is not configured/);
    assert.deepEqual(blobs(), before, 'nothing pulled');
    assert.equal((await c.image('ImageStatus', { image: { image: 'busybox:other' } })).image, null);
    await rejectsWith(c.image('ImageStatus', { image: { image: 'busybox', runtime_handler: 'kata' } }), INVALID_ARGUMENT, /"kata"/);
    await rejectsWith(c.image('ListImages', { filter: { image: { image: '', runtime_handler: 'kata' } } }), INVALID_ARGUMENT, /"kata"/);
    await rejectsWith(c.image('RemoveImage', { image: { image: 'busybox', runtime_handler: 'kata' } }), INVALID_ARGUMENT, /"kata"/);
    assert.ok((await c.image('ImageStatus', { image: { image: 'busybox' } })).image, 'kept');
  });

  it('serves its handler and the default name, and reports the handler an image was pulled for', async () => {
    const c = skiffd.client;
    await c.image('PullImage', { image: { image: 'busybox:other', runtime_handler: 'skiff' } });
    const st = await c.image('ImageStatus', { image: { image: 'busybox:other', runtime_handler: 'skiff' } });
    assert.equal(st.image?.spec?.runtime_handler, 'skiff');
    assert.equal(st.image?.spec?.image, st.image?.id);
    const listed = await c.image('ListImages', { filter: { image: { image: 'busybox:other', runtime_handler: '' } } });
    assert.equal(listed.images[0]?.spec?.runtime_handler, 'skiff');
    assert.equal((await c.image('ImageStatus', { image: { image: 'busybox:latest', runtime_handler: 'skiff' } })).image?.spec?.runtime_handler, '');
  });

  it('creates a container from the exact image image_ref names, and answers NOT_FOUND naming a missing one', async () => {
    const c = skiffd.client;
    const other = await idOf('busybox:other');
    // image names the tag kubelet was given; image_ref the image kubelet resolved: it wins.
    const id = await pods.startCtr(pod, `ref${++seq}`, { image: { image: 'busybox:latest', image_ref: other } });
    assert.match(await envOf(id), /TAG=other/);
    const st = (await c.runtime('ContainerStatus', { container_id: id })).status!;
    assert.equal(st.image_id, other);
    assert.equal(st.image?.image, 'busybox:latest');
    const digestRef = (await c.image('ImageStatus', { image: { image: other } })).image!.repo_digests[0];
    const byDigest = await pods.startCtr(pod, `ref${++seq}`, { image: { image: 'busybox', image_ref: digestRef } });
    assert.match(await envOf(byDigest), /TAG=other/);

    const containers = (await c.runtime('ListContainers', {})).containers.length;
    const missing = `sha256:${'0'.repeat(64)}`;
    await rejectsWith(pods.createCtr(pod, `ref${++seq}`, { image: { image: 'busybox', image_ref: missing } }), NOT_FOUND, new RegExp(`image_ref "${missing}" not found`));
    await rejectsWith(pods.createCtr(pod, `ref${++seq}`, { image: { image: 'busybox', image_ref: 'busybox:latest' } }), INVALID_ARGUMENT, /image_ref "busybox:latest" is neither an image id nor a digest/);
    assert.equal((await c.runtime('ListContainers', {})).containers.length, containers, 'nothing created');
    for (const cid of [id, byDigest]) await c.runtime('RemoveContainer', { container_id: cid });
  });

  it('reports a configured pinned image pinned and refuses to remove it, keeping it usable', async () => {
    const c = skiffd.client;
    const st = await c.image('ImageStatus', { image: { image: 'busybox:pinned' } });
    assert.equal(st.image?.pinned, true);
    const pinned = (await c.image('ListImages', {})).images.filter((i) => i.pinned).map((i) => i.repo_tags[0]);
    assert.deepEqual(pinned, ['docker.io/library/busybox:pinned']);
    for (const name of ['busybox:pinned', st.image!.id]) await rejectsWith(c.image('RemoveImage', { image: { image: name } }), FAILED_PRECONDITION, /pinned by image\.pinned_images: not removed/);
    assert.ok(blobs().includes(st.image!.id.slice(7)), 'its config blob is kept');
    const id = await pods.startCtr(pod, `pinned${++seq}`, { image: { image: 'busybox:pinned' } });
    assert.match(await envOf(id), /TAG=pinned/);
    await c.runtime('RemoveContainer', { container_id: id });
  });

  it('keeps an image while a container uses it, in any state, and frees all of it once the container is removed', async () => {
    const c = skiffd.client;
    await c.image('PullImage', { image: { image: 'busybox:latest' } });
    const image = await idOf('busybox:latest');
    const { chainIds } = JSON.parse((await c.image('ImageStatus', { image: { image }, verbose: true })).info.info) as { chainIds: string[] };
    const layersDir = path.join(skiffd.root, 'snapshots', 'layers');
    const id = await pods.startCtr(pod, `inuse${++seq}`, { image: { image: 'busybox:latest' } });
    assert.equal((await c.image('ImageStatus', { image: { image: image } })).image?.pinned, true, 'a used image reads pinned');
    for (const name of ['busybox:latest', image]) await rejectsWith(c.image('RemoveImage', { image: { image: name } }), FAILED_PRECONDITION, new RegExp(`in use by container ${id}`));
    assert.match(await envOf(id), /TAG=latest/, 'the container still works');
    for (const chain of chainIds) assert.ok(fs.existsSync(path.join(layersDir, chain.slice(7))), `its layer ${chain} is kept`);
    await c.runtime('StopContainer', { container_id: id, timeout: 0 });
    await rejectsWith(c.image('RemoveImage', { image: { image: image } }), FAILED_PRECONDITION, /in use by container/);
    const st = (await c.runtime('ContainerStatus', { container_id: id })).status!;
    assert.equal(st.image_id, image, 'an exited container still names its image');

    await c.runtime('RemoveContainer', { container_id: id });
    assert.equal((await c.image('ImageStatus', { image: { image: image } })).image?.pinned, false);
    await c.image('RemoveImage', { image: { image: image } });
    assert.equal((await c.image('ImageStatus', { image: { image: image } })).image, null);
    assert.ok(!blobs().includes(image.slice(7)), 'its config blob is collected');
    // The test images are built from one busybox layer: tags built within the same second
    // share it, and a layer another image still has must stay.
    const kept = new Set<string>();
    for (const other of (await c.image('ListImages', {})).images)
      for (const chain of (JSON.parse((await c.image('ImageStatus', { image: { image: other.id }, verbose: true })).info.info) as { chainIds: string[] }).chainIds) kept.add(chain);
    for (const chain of chainIds) assert.equal(fs.existsSync(path.join(layersDir, chain.slice(7))), kept.has(chain), `its layer ${chain} is ${kept.has(chain) ? 'kept for another image' : 'collected'}`);
    assert.deepEqual(fs.readdirSync(path.join(skiffd.root, 'snapshots', 'containers')), [], 'no writable layer left');
  });

  it('keeps the pull annotations with the image, also across a restart', async () => {
    const c = skiffd.client;
    const annotations = { 'io.kubernetes.cri.image.platform': 'linux/amd64', 'example.com/from-pull': 'yes' };
    await c.image('PullImage', { image: { image: 'busybox:latest', annotations } });
    assert.deepEqual((await c.image('ImageStatus', { image: { image: 'busybox:latest' } })).image?.spec?.annotations, annotations);
    const listed = (await c.image('ListImages', {})).images.find((i) => i.repo_tags.includes('docker.io/library/busybox:latest'));
    assert.deepEqual(listed?.spec?.annotations, annotations);
    await skiffd.kill();
    await skiffd.restart();
    const after = (await skiffd.client.image('ImageStatus', { image: { image: 'busybox:latest' } })).image;
    assert.deepEqual(after?.spec?.annotations, annotations);
    assert.equal(after?.pinned, false);
    assert.equal((await skiffd.client.image('ImageStatus', { image: { image: 'busybox:pinned' } })).image?.pinned, true, 'pinned after the restart too');
    // runtime.v1alpha2's ImageSpec has annotations and no runtime handler.
    const old = new CriClient(skiffd.socket, 'runtime.v1alpha2');
    try {
      assert.deepEqual((await old.image('ImageStatus', { image: { image: 'busybox:latest' } })).image?.spec?.annotations, annotations);
    } finally {
      old.close();
    }
  });
});
