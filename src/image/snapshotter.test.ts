import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'child_process';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Readable } from 'stream';
import { InvalidArgument } from '../errors';
import { Snapshotter, chainIds } from './snapshotter';
import { makeTar } from '../../e2e/fixtures/tar';


const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function mounted(target: string): boolean {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === target);
}

describe('snapshotter', () => {
  let root: string;
  let snap: Snapshotter;
  let target: string;
  beforeEach(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-snap-'));
    snap = new Snapshotter(path.join(root, 'snapshots'));
    await snap.init();
    target = path.join(root, 'rootfs');
    fs.mkdirSync(target);
  });
  afterEach(async () => {
    if (mounted(target)) await snap.removeRootfs('c1', target);
    fs.rmSync(root, { recursive: true, force: true });
  });

  /** Add tars as the layers of one image; returns their chain ids. */
  async function addImage(tars: Buffer[]): Promise<string[]> {
    const diffIds = tars.map((t) => sha(t));
    const chains = chainIds(diffIds);
    for (const [i, t] of tars.entries()) await snap.addLayer(chains[i], diffIds[i], async () => Readable.from([t]), 'none');
    return chains;
  }

  it('computes chain ids as the OCI image spec defines them', () => {
    const a = sha('a');
    const b = sha('b');
    const c = chainIds([a, b]);
    assert.equal(c[0], a);
    assert.equal(c[1], sha(`${a} ${b}`));
    assert.throws(() => chainIds(['nope']), (e: Error) => e instanceof InvalidArgument);
  });

  it('mounts a rootfs where whiteouts hide lower files and opaque dirs hide lower dirs', async () => {
    const l1 = await makeTar([{ name: 'etc/a', body: 'a' }, { name: 'etc/b', body: 'b' }, { name: 'var/d/x', body: 'x' }]);
    const l2 = await makeTar([{ name: 'etc/.wh.a' }, { name: 'var/d/.wh..wh..opq' }, { name: 'var/d/y', body: 'y' }]);
    const chains = await addImage([l1, l2]);
    await snap.mountRootfs('c1', chains, target);
    assert.deepEqual(fs.readdirSync(path.join(target, 'etc')), ['b']);
    assert.deepEqual(fs.readdirSync(path.join(target, 'var/d')), ['y']);
    // Writes land in the container's upper dir, never in a shared layer.
    fs.writeFileSync(path.join(target, 'etc/b'), 'changed');
    assert.equal(fs.readFileSync(path.join(snap.layerDir(chains[0]), 'etc/b'), 'utf8'), 'b');
    assert.equal(fs.readFileSync(path.join(root, 'snapshots/containers/c1/upper/etc/b'), 'utf8'), 'changed');
    await snap.removeRootfs('c1', target);
    assert.equal(mounted(target), false);
    assert.equal(fs.existsSync(path.join(root, 'snapshots/containers/c1')), false);
  });

  it("mounts a user-namespaced pod's rootfs of id-mapped layers, leaving no clone attached", async () => {
    const holder = spawn('unshare', ['--user', 'sleep', '120'], { stdio: 'ignore' });
    try {
      const ns = `/proc/${holder.pid}/ns/user`;
      const deadline = Date.now() + 60_000;
      while (fs.readlinkSync(ns) === fs.readlinkSync('/proc/self/ns/user')) {
        if (Date.now() > deadline) throw new Error('unshare --user made no user namespace in 60 s');
        await new Promise((r) => setTimeout(r, 50));
      }
      fs.writeFileSync(`/proc/${holder.pid}/uid_map`, '0 100000 65536\n');
      fs.writeFileSync(`/proc/${holder.pid}/gid_map`, '0 200000 65536\n');
      const chains = await addImage([await makeTar([{ name: 'etc/passwd', body: 'root:x:0:0::/root:/bin/sh\n' }, { name: 'root', type: 'directory' }])]);
      await snap.mountRootfs('c1', chains, target, { usernsPath: ns, rootUid: 100000, rootGid: 200000 });
      // Seen from the host, the image is the pod's root's; the layer keeps its owner.
      const st = fs.statSync(path.join(target, 'etc/passwd'));
      assert.deepEqual([st.uid, st.gid], [100000, 200000]);
      assert.equal(fs.statSync(path.join(snap.layerDir(chains[0]), 'etc/passwd')).uid, 0);
      const upper = fs.statSync(path.join(root, 'snapshots/containers/c1/upper'));
      assert.deepEqual([upper.uid, upper.gid], [100000, 200000]);
      assert.equal(fs.existsSync(path.join(root, 'snapshots/containers/c1/idmapped')), false, 'the clones are detached and gone');
      assert.equal(mounted(path.join(root, 'snapshots/containers/c1/idmapped/0')), false);
    } finally {
      holder.kill('SIGKILL');
    }
  });

  it('detaches a layer clone a crash left attached before removing a writable layer, keeping the layer', async () => {
    const chains = await addImage([await makeTar([{ name: 'keep', body: 'k' }])]);
    const clone = path.join(root, 'snapshots/containers/c2/idmapped/0');
    fs.mkdirSync(clone, { recursive: true });
    execFileSync('mount', ['--bind', snap.layerDir(chains[0]), clone]);
    await snap.removeRootfs('c2', path.join(root, 'no-rootfs'));
    assert.equal(fs.existsSync(path.join(root, 'snapshots/containers/c2')), false);
    assert.equal(fs.readFileSync(path.join(snap.layerDir(chains[0]), 'keep'), 'utf8'), 'k', 'the layer is intact');
  });

  it('mounts an image of 120 layers', async () => {
    const tars: Buffer[] = [];
    for (let i = 0; i < 120; i++) tars.push(await makeTar([{ name: `layer${i}`, body: String(i) }]));
    const chains = await addImage(tars);
    await snap.mountRootfs('c1', chains, target);
    assert.equal(fs.readdirSync(target).length, 120);
    assert.equal(fs.readFileSync(path.join(target, 'layer119'), 'utf8'), '119');
  });

  it('shares a layer between images and unpacks it once', async () => {
    const t = await makeTar([{ name: 'shared', body: 's' }]);
    let unpacks = 0;
    const src = async () => {
      unpacks++;
      return Readable.from([t]);
    };
    await Promise.all([snap.addLayer(sha(t), sha(t), src, 'none'), snap.addLayer(sha(t), sha(t), src, 'none')]);
    await snap.addLayer(sha(t), sha(t), src, 'none');
    assert.equal(unpacks, 1);
    assert.deepEqual(await snap.listLayers(), [sha(t)]);
  });

  it('lets a caller that joined an unpack which failed unpack from its own source', async () => {
    const t = await makeTar([{ name: 'f', body: 'joined' }]);
    const broken = async () => Readable.from((async function* () {
      yield t.subarray(0, 512);
      throw new Error('download stopped');
    })());
    const first = snap.addLayer(sha(t), sha(t), broken, 'none');
    const second = snap.addLayer(sha(t), sha(t), async () => Readable.from([t]), 'none');
    await assert.rejects(first, /download stopped/);
    await second;
    assert.equal(fs.readFileSync(path.join(snap.layerDir(sha(t)), 'f'), 'utf8'), 'joined');
    assert.deepEqual(fs.readdirSync(path.join(root, 'snapshots', 'tmp')), [], 'the failed unpack left nothing');
  });

  it('commits a layer only once beforeCommit resolves, and not at all when it fails', async () => {
    const t = await makeTar([{ name: 'f', body: 'x' }]);
    await assert.rejects(
      snap.addLayer(sha(t), sha(t), async () => Readable.from([t]), 'none', async () => {
        throw new Error('blob digest mismatch');
      }),
      /blob digest mismatch/,
    );
    assert.deepEqual(await snap.listLayers(), []);
    assert.deepEqual(fs.readdirSync(path.join(root, 'snapshots', 'tmp')), []);
    let stored = false;
    await snap.addLayer(sha(t), sha(t), async () => Readable.from([t]), 'none', async () => {
      assert.equal(await snap.hasLayer(sha(t)), false, 'not committed before its blob is stored');
      stored = true;
    });
    assert.ok(stored);
    assert.deepEqual(await snap.listLayers(), [sha(t)]);
  });

  it('refuses a layer whose content does not match its diff_id, keeping nothing', async () => {
    const t = await makeTar([{ name: 'f', body: 'x' }]);
    const wrong = sha('something else');
    await assert.rejects(snap.addLayer(wrong, wrong, async () => Readable.from([t]), 'none'), /content has diff_id/);
    assert.deepEqual(await snap.listLayers(), []);
    assert.deepEqual(fs.readdirSync(path.join(root, 'snapshots/tmp')), []);
  });

  it('refuses to mount layers that are not unpacked, leaving no container dir', async () => {
    await assert.rejects(snap.mountRootfs('c1', [sha('missing')], target), /is not unpacked/);
    assert.equal(fs.existsSync(path.join(root, 'snapshots/containers/c1')), false);
    await assert.rejects(snap.mountRootfs('../x', [sha('missing')], target), /bad container id/);
  });

  it('mounts a read-only view of an image (an image volume): two layers as an overlay, one as a bind, neither writable', async () => {
    const l1 = await makeTar([{ name: 'etc/a', body: 'a' }, { name: 'etc/b', body: 'b' }]);
    const l2 = await makeTar([{ name: 'etc/.wh.a' }, { name: 'etc/c', body: 'c' }]);
    const chains = await addImage([l1, l2]);
    const layersBefore = fs.readdirSync(path.join(root, 'snapshots/layers')).sort();
    for (const [layers, type] of [[chains, 'overlay'], [chains.slice(0, 1), 'bind']] as const) {
      await snap.mountView([...layers], target);
      assert.ok(mounted(target), type);
      const line = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === target)!;
      assert.match(line.split(' ')[5], /^ro(,|$)/, `${type}: read-only`);
      assert.deepEqual(fs.readdirSync(path.join(target, 'etc')).sort(), type === 'overlay' ? ['b', 'c'] : ['a', 'b']);
      assert.throws(() => fs.writeFileSync(path.join(target, 'etc/b'), 'changed'), /EROFS/);
      assert.throws(() => fs.writeFileSync(path.join(target, 'new'), 'x'), /EROFS/);
      snap.unmountView(target);
      assert.equal(mounted(target), false, `${type}: unmounted`);
    }
    assert.equal(fs.readFileSync(path.join(snap.layerDir(chains[0]), 'etc/b'), 'utf8'), 'b', 'the layers are untouched');
    assert.deepEqual(fs.readdirSync(path.join(root, 'snapshots/layers')).sort(), layersBefore, 'a view adds no snapshot');
    assert.deepEqual(fs.readdirSync(path.join(root, 'snapshots/containers')), [], 'nor a writable layer');
    snap.unmountView(target); // not mounted: nothing to do
    snap.unmountView(path.join(root, 'gone'));
  });

  it('refuses a view of layers that are not unpacked, or of no layers, mounting nothing', async () => {
    await assert.rejects(snap.mountView([sha('missing')], target), /is not unpacked/);
    await assert.rejects(snap.mountView([], target), /no layers/);
    assert.equal(mounted(target), false);
  });

  it('drops a half-unpacked layer a killed daemon left', async () => {
    fs.mkdirSync(path.join(root, 'snapshots/tmp/deadbeef/fs'), { recursive: true });
    await new Snapshotter(path.join(root, 'snapshots')).init();
    assert.deepEqual(fs.readdirSync(path.join(root, 'snapshots/tmp')), []);
  });
});
