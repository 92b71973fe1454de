// Image volumes (KEP-4639, kubelet's `image` volume source) over gRPC with real containers:
// a CRI mount naming a pulled image gets the image's files, read-only, whole or from a sub
// path; RemoveImage of such an image answers as containerd does and the container keeps
// its files; removing the container releases the layers; bad sub paths and unknown images
// are refused with the right code, leaving no mount and no dir behind.
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { NamespaceMode, type Mount } from '../../src/cri/gen/cri';
import type { Reply } from '../../src/cri/server';
import { chainIds } from '../../src/image/snapshotter';
import { runTempDir } from '../fixtures/cleanup';
import { CriPods } from '../fixtures/cri_pods';
import { statusCode } from '../fixtures/grpc';
import { Layer, layerOf } from '../fixtures/images';
import { startTestNode, TestNode } from '../fixtures/node';

const INVALID_ARGUMENT = 3;
const NOT_FOUND = 5;
const UNKNOWN = 2;

describe('image volumes (skiffd over gRPC)', function () {
  this.timeout(300_000);
  let node: TestNode;
  let cri: CriPods;
  /** The chain ids of each test image's layers. */
  const chains: Record<string, string[]> = {};

  /** Push an image of the given layers (trees built by `make` in a fresh dir each). */
  async function pushTree(repo: string, makers: ((dir: string) => void)[]): Promise<void> {
    const work = runTempDir('skiff-imgvol-');
    try {
      const layers: Layer[] = makers.map((make, i) => {
        const dir = path.join(work, String(i));
        fs.mkdirSync(dir);
        make(dir);
        return layerOf(dir);
      });
      await node.reg.pushImage(`library/${repo}`, '1', layers, undefined, { Cmd: ['sh'] });
      chains[repo] = chainIds(layers.map((l) => l.diffId));
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  }

  before(async () => {
    node = await startTestNode();
    cri = new CriPods(node.skiffd, { prefix: 'imgvol', namespace: 'imgvol', uidPrefix: 'imgvol-uid-' });
    // tools: two layers (an overlay view), the second changing what the first had, with
    // links of every kind for the sub path checks.
    await pushTree('tools', [
      (d) => {
        fs.mkdirSync(path.join(d, 'data/sub'), { recursive: true });
        fs.writeFileSync(path.join(d, 'data/hello.txt'), 'hello from layer 0\n');
        fs.writeFileSync(path.join(d, 'data/sub/inner.txt'), 'inner\n');
        fs.writeFileSync(path.join(d, 'file.txt'), 'a file\n');
      },
      (d) => {
        fs.mkdirSync(path.join(d, 'data'), { recursive: true });
        fs.writeFileSync(path.join(d, 'data/hello.txt'), 'hello from layer 1\n');
        fs.symlinkSync('data/sub', path.join(d, 'inside'));
        fs.symlinkSync('/data', path.join(d, 'rooted'));
        fs.symlinkSync('../../../../..', path.join(d, 'escape'));
      },
    ]);
    // single: one layer (a read-only bind of it).
    await pushTree('single', [(d) => fs.writeFileSync(path.join(d, 'only.txt'), 'single layer\n')]);
    for (const repo of ['tools', 'single']) await node.skiffd.client.image('PullImage', { image: { image: `${repo}:1` } });
  });
  after(async () => {
    await node?.stop();
  });

  const imageMount = (containerPath: string, image: string, subPath = ''): Reply<Mount> => ({
    container_path: containerPath,
    readonly: true,
    image: { image, user_specified_image: image },
    image_sub_path: subPath,
  });

  /** This skiffd's image volume mounts, from the kernel's table: mount point, per-mount
   * options, filesystem type and the root of the mount within its filesystem. */
  const volumeMountInfo = () =>
    fs
      .readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => {
        const [fields, fsFields = ''] = l.split(' - ');
        const f = fields.split(' ');
        return { at: (f[4] ?? '').replace(/\\040/g, ' '), options: f[5] ?? '', type: fsFields.split(' ')[0], root: f[3] ?? '' };
      })
      .filter((m) => m.at.startsWith(node.skiffd.state + '/') && m.at.includes('/image-volumes/'));
  const volumeMounts = () => volumeMountInfo().map((m) => m.at);
  const layerDir = (chain: string) => path.join(node.skiffd.root, 'snapshots', 'layers', chain.slice('sha256:'.length));
  const bundles = () => fs.readdirSync(path.join(node.skiffd.state, 'containers'));

  it('mounts the image, whole or from a sub path, read-only; the files are the image layers merged', async () => {
    const pod = await cri.runPod();
    try {
      const id = await cri.startCtr(pod, 'app', {
        mounts: [imageMount('/tools', 'tools:1'), imageMount('/sub', 'tools:1', 'data/sub'), imageMount('/linked', 'tools:1', 'inside'), imageMount('/single', 'single:1')],
      });
      assert.deepEqual(await cri.exec(id, ['cat', '/tools/data/hello.txt', '/tools/data/sub/inner.txt', '/sub/inner.txt', '/linked/inner.txt', '/single/only.txt']), {
        out: 'hello from layer 1\ninner\ninner\ninner\nsingle layer\n',
        err: '',
        code: 0,
      });
      assert.equal((await cri.exec(id, ['ls', '/sub'])).out, 'inner.txt\n', 'only the sub path is mounted');
      for (const target of ['/tools/new', '/tools/data/hello.txt', '/sub/new', '/single/only.txt']) {
        const w = await cri.exec(id, ['sh', '-c', `echo x > ${target}`]);
        assert.notEqual(w.code, 0, `writing ${target} fails`);
        assert.match(w.err, /Read-only file system/, target);
      }
      assert.notEqual((await cri.exec(id, ['mkdir', '/single/d'])).code, 0);
      // The mounts sit under the container's bundle, one per image volume.
      const bundle = path.join(node.skiffd.state, 'containers', id);
      const info = volumeMountInfo().sort((a, b) => a.at.localeCompare(b.at));
      assert.deepEqual(info.map((m) => m.at), [0, 1, 2, 3].map((n) => path.join(bundle, 'image-volumes', String(n))));
      for (const m of info) assert.match(m.options, /^ro(,|$)/, `${m.at} is mounted read-only on the host too`);
      assert.deepEqual(info.map((m) => m.type).slice(0, 3), ['overlay', 'overlay', 'overlay'], 'two layers: an overlay of them');
      assert.equal(info[3].root.endsWith(`/snapshots/layers/${chains.single[0].slice('sha256:'.length)}/fs`), true, `one layer: a bind of it (${info[3].root})`);
      // ContainerStatus reports the image and where it is on the host, as containerd does.
      const status = (await node.skiffd.client.runtime('ContainerStatus', { container_id: id })).status!;
      const sub = status.mounts.find((m) => m.container_path === '/sub')!;
      assert.equal(sub.image?.image, 'tools:1');
      assert.equal(sub.image_sub_path, 'data/sub');
      assert.equal(sub.host_path, path.join(bundle, 'image-volumes', '1', 'data/sub'));
      assert.equal(sub.readonly, true);
      assert.equal(status.mounts.find((m) => m.container_path === '/linked')!.host_path, path.join(bundle, 'image-volumes', '2', 'data/sub'), 'the link resolved inside the image');
      await node.skiffd.client.runtime('RemoveContainer', { container_id: id });
      assert.deepEqual(volumeMounts(), [], 'RemoveContainer unmounts them');
      assert.equal(fs.existsSync(bundle), false);
    } finally {
      await node.skiffd.client.runtime('RemovePodSandbox', { pod_sandbox_id: pod.id });
    }
  });

  it("shows the image's files owned by the pod's root in a pod with a user namespace, the views id-mapped and read-only", async () => {
    const map = [{ container_id: 0, host_id: 430000, length: 65536 }];
    const pod = await cri.runPod({ linux: { security_context: { namespace_options: { userns_options: { mode: NamespaceMode.POD, uids: map, gids: map } } } } });
    try {
      const id = await cri.startCtr(pod, 'app', { mounts: [imageMount('/tools', 'tools:1'), imageMount('/single', 'single:1')] });
      const owners = await cri.exec(id, ['stat', '-c', '%u:%g %n', '/tools/data/hello.txt', '/single/only.txt']);
      assert.equal(owners.out, '0:0 /tools/data/hello.txt\n0:0 /single/only.txt\n', owners.err);
      assert.equal((await cri.exec(id, ['cat', '/tools/data/hello.txt'])).out, 'hello from layer 1\n');
      const w = await cri.exec(id, ['sh', '-c', 'echo x > /tools/new']);
      assert.match(w.err, /Read-only file system/);
      const bundle = path.join(node.skiffd.state, 'containers', id);
      assert.deepEqual(fs.readdirSync(path.join(bundle, 'image-volumes')).sort(), ['0', '1'], 'no layer clone left attached');
      // The layers themselves are untouched: still the host's root's.
      assert.equal(fs.statSync(path.join(layerDir(chains.single[0]), 'fs', 'only.txt')).uid, 0);
      await node.skiffd.client.runtime('RemoveContainer', { container_id: id });
      assert.deepEqual(volumeMounts(), []);
    } finally {
      await node.skiffd.client.runtime('RemovePodSandbox', { pod_sandbox_id: pod.id });
    }
  });

  it('RemoveImage of an image mounted as a volume removes it (as containerd does); the container keeps its files across a restart, and its removal releases the layers', async () => {
    await pushTree('gone', [(d) => fs.writeFileSync(path.join(d, 'kept.txt'), 'still here\n')]);
    const { image_ref } = await node.skiffd.client.image('PullImage', { image: { image: 'gone:1' } });
    const pod = await cri.runPod();
    try {
      const id = await cri.startCtr(pod, 'app', { mounts: [imageMount('/gone', image_ref)] });
      assert.equal(await statusCode(node.skiffd.client.image('RemoveImage', { image: { image: 'gone:1' } })), 0, 'RemoveImage succeeds');
      const listed = (await node.skiffd.client.image('ListImages', {})).images.flatMap((i) => i.repo_tags);
      assert.equal(listed.includes('docker.io/library/gone:1'), false, 'the image is no longer listed');
      assert.ok(fs.existsSync(layerDir(chains.gone[0])), 'its layer stays while the container exists');
      assert.equal((await cri.exec(id, ['cat', '/gone/kept.txt'])).out, 'still here\n');
      // A restart knows what the container mounts (its record): the layer is still kept.
      await node.skiffd.stop();
      await node.skiffd.restart();
      // A removal of another image collects garbage: the layer is not collected.
      await pushTree('other', [(d) => fs.writeFileSync(path.join(d, 'x'), 'x')]);
      await node.skiffd.client.image('PullImage', { image: { image: 'other:1' } });
      await node.skiffd.client.image('RemoveImage', { image: { image: 'other:1' } });
      assert.equal(fs.existsSync(layerDir(chains.other[0])), false, 'the collection ran');
      assert.ok(fs.existsSync(layerDir(chains.gone[0])), 'the layer survives a restart and a collection');
      assert.equal((await cri.exec(id, ['cat', '/gone/kept.txt'])).out, 'still here\n', 'the running container still reads it');
      await node.skiffd.client.runtime('StopContainer', { container_id: id, timeout: 0 });
      await node.skiffd.client.runtime('RemoveContainer', { container_id: id });
      assert.equal(fs.existsSync(layerDir(chains.gone[0])), false, 'removing the container released the layer');
      assert.deepEqual(volumeMounts(), []);
      assert.equal(await statusCode(node.skiffd.client.image('RemoveImage', { image: { image: 'gone:1' } })), 0, 'RemoveImage of the removed image succeeds');
    } finally {
      await node.skiffd.client.runtime('RemovePodSandbox', { pod_sandbox_id: pod.id });
    }
  });

  it('an image used by a container mounting it is removable once the container is removed; the other images stay', async () => {
    const pod = await cri.runPod();
    try {
      const id = await cri.createCtr(pod, 'app', { mounts: [imageMount('/single', 'single:1')] });
      await node.skiffd.client.runtime('RemoveContainer', { container_id: id });
      await node.skiffd.client.image('RemoveImage', { image: { image: 'single:1' } });
      assert.equal(fs.existsSync(layerDir(chains.single[0])), false, 'no container holds the layer: it goes with the image');
      assert.ok(fs.existsSync(layerDir(chains.tools[0])), 'another image keeps its own');
    } finally {
      await node.skiffd.client.runtime('RemovePodSandbox', { pod_sandbox_id: pod.id });
    }
  });

  it('refuses bad sub paths and unknown images with the right code, naming the field, and leaves nothing behind', async () => {
    const pod = await cri.runPod();
    try {
      const before = bundles();
      const cases: [Reply<Mount>[], number, RegExp][] = [
        [[imageMount('/v', 'tools:1', '/data')], INVALID_ARGUMENT, /config\.mounts\[0\]\.image_sub_path "\/data" must be a path relative/],
        [[imageMount('/v', 'tools:1', 'data/../..')], INVALID_ARGUMENT, /config\.mounts\[0\]\.image_sub_path .* must not contain "\.\."/],
        [[imageMount('/a', 'tools:1'), imageMount('/v', 'tools:1', 'escape')], INVALID_ARGUMENT, /config\.mounts\[1\]\.image_sub_path "escape" resolves through a symbolic link to outside the image/],
        [[imageMount('/a', 'tools:1'), imageMount('/v', 'tools:1', 'data/missing')], UNKNOWN, /config\.mounts\[1\]\.image_sub_path "data\/missing" does not exist in the image/],
        [[imageMount('/v', 'tools:1', 'file.txt')], UNKNOWN, /config\.mounts\[0\]\.image_sub_path "file\.txt": "file\.txt" is not a directory/],
        [[imageMount('/v', 'nothere:1')], NOT_FOUND, /config\.mounts\[0\]\.image: image "nothere:1" not found/],
        [[{ ...imageMount('/v', 'tools:1'), readonly: false }], INVALID_ARGUMENT, /config\.mounts\[0\]\.readonly must be true/],
      ];
      for (const [mounts, code, message] of cases) {
        const call = cri.createCtr(pod, 'bad', { mounts });
        assert.equal(await statusCode(call), code, String(message));
        await assert.rejects(call, (e: Error) => message.test(e.message) && /ImageVolumeMountFailed/.test(e.message));
        assert.deepEqual(volumeMounts(), [], `${message}: no mount left`);
        assert.deepEqual(bundles(), before, `${message}: no bundle left`);
      }
      assert.deepEqual((await node.skiffd.client.runtime('ListContainers', {})).containers, []);
      // The name is free again, and a sub path that resolves through a rooted link works.
      const id = await cri.startCtr(pod, 'bad', { mounts: [imageMount('/v', 'tools:1', 'rooted/sub')] });
      assert.equal((await cri.exec(id, ['cat', '/v/inner.txt'])).out, 'inner\n');
    } finally {
      await node.skiffd.client.runtime('RemovePodSandbox', { pod_sandbox_id: pod.id });
    }
    assert.deepEqual(volumeMounts(), [], 'RemovePodSandbox unmounted the last one');
  });
});
