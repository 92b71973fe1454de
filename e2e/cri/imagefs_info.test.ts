// ImageFsInfo as kubelet reads it: images and writable layers on one filesystem read as
// one ("not split"), a containers dir on a filesystem of its own as two ("split").
import assert from 'node:assert/strict';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import type { ImageFsInfoResponse } from '../../src/cri/gen/cri';
import { CriPods, HOST_NETWORK } from '../fixtures/cri_pods';
import { startBusyboxRegistry } from '../fixtures/node';
import type { TestRegistry } from '../fixtures/registry';
import { TestSkiffd } from '../fixtures/skiffd';

/**
 * kubelet's rule, mirrored: pkg/kubelet/container/container_gc.go
 * (IsContainerFsSeparateFromImageFs, which turns on the containerfs eviction signals and
 * ranking of KEP-4191) and pkg/kubelet/stats/cadvisor_stats_provider.go (ImageFsStats,
 * "Detect Split Filesystem") both compare ImageFilesystems[0].FsId.Mountpoint with
 * ContainerFilesystems[0].FsId.Mountpoint; an empty list or a missing fs_id means "not split".
 */
function kubeletSeesSplitImageFs(resp: ImageFsInfoResponse): boolean {
  if (resp.container_filesystems.length === 0 || resp.image_filesystems.length === 0) return false;
  const container = resp.container_filesystems[0].fs_id;
  const image = resp.image_filesystems[0].fs_id;
  if (container && image) return container.mountpoint !== image.mountpoint;
  return false;
}

const WRITTEN = 16 * 1048576;

describe('ImageFsInfo as kubelet reads it (skiffd over gRPC)', function () {
  this.timeout(120_000);
  let reg: TestRegistry;

  before(async () => {
    reg = await startBusyboxRegistry();
  });
  after(async () => {
    await reg?.stop();
  });

  /** A skiffd with busybox pulled and one running host-network container that wrote 16 MiB
   * to its writable layer; returns the container's id. */
  const startWithWriter = async (skiffd: TestSkiffd): Promise<string> => {
    const c = skiffd.client;
    skiffd.mirror('docker.io', reg.host);
    await c.image('PullImage', { image: { image: 'busybox' } });
    const pods = new CriPods(skiffd, { prefix: 'fs', namespace: 'e2e', uidPrefix: 'uid-fs-' });
    const container_id = await pods.startCtr(await pods.runPod(HOST_NETWORK), 'writer');
    const r = await c.runtime('ExecSync', { container_id, cmd: ['dd', 'if=/dev/zero', 'of=/written', 'bs=1048576', 'count=16'], timeout: 30 });
    assert.equal(r.exit_code, 0, Buffer.from(r.stderr).toString());
    return container_id;
  };

  it('reports one filesystem as one: kubelet sees no split, and nothing is counted twice', async () => {
    const skiffd = await TestSkiffd.start({ args: ['--network.write_default_config', 'false'] });
    try {
      const id = await startWithWriter(skiffd);
      const resp = await skiffd.client.image('ImageFsInfo', {});
      assert.equal(kubeletSeesSplitImageFs(resp), false, JSON.stringify(resp));
      assert.equal(resp.image_filesystems.length, 1);
      assert.equal(resp.container_filesystems.length, 1);
      // kubelet reads image_filesystems[0] for both: it holds images and writable layers once.
      assert.deepEqual(resp.container_filesystems[0], resp.image_filesystems[0]);
      const used = resp.image_filesystems[0].used_bytes!.value;
      assert.ok(used >= WRITTEN + fs.statSync('/bin/busybox').size, `images and the 16 MiB written: ${used}`);
      const stats = await skiffd.client.runtime('ContainerStats', { container_id: id });
      assert.equal(stats.stats?.writable_layer?.fs_id?.mountpoint, resp.container_filesystems[0].fs_id!.mountpoint);
    } finally {
      await skiffd.cleanup();
    }
  });

  it('reports a containers dir on a filesystem of its own as a split image filesystem', async () => {
    const skiffd = await TestSkiffd.start({
      args: ['--network.write_default_config', 'false'],
      before: (d) => {
        const dir = path.join(d.root, 'snapshots', 'containers');
        fs.mkdirSync(dir, { recursive: true });
        execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64m,mode=0700', 'skiff-test-containers', dir]);
      },
    });
    try {
      const id = await startWithWriter(skiffd);
      const resp = await skiffd.client.image('ImageFsInfo', {});
      assert.equal(kubeletSeesSplitImageFs(resp), true, JSON.stringify(resp));
      const image = resp.image_filesystems[0];
      const container = resp.container_filesystems[0];
      assert.equal(container.fs_id!.mountpoint, path.join(skiffd.root, 'snapshots', 'containers'));
      assert.ok(container.used_bytes!.value >= WRITTEN, `the 16 MiB written: ${container.used_bytes!.value}`);
      // The image (busybox, a few MiB unpacked and compressed) without the writable layer.
      assert.ok(image.used_bytes!.value >= fs.statSync('/bin/busybox').size, `the image: ${image.used_bytes!.value}`);
      assert.ok(image.used_bytes!.value < WRITTEN, `no writable layer in the image filesystem: ${image.used_bytes!.value}`);
      const stats = await skiffd.client.runtime('ContainerStats', { container_id: id });
      assert.equal(stats.stats?.writable_layer?.fs_id?.mountpoint, container.fs_id!.mountpoint);
    } finally {
      await skiffd.cleanup();
    }
  });
});
