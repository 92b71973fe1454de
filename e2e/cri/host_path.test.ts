// A CRI mount whose host_path names nothing on the host: kubelet hands hostPath volumes of
// type "" (the default) over unchecked, and containerd and CRI-O make the path an empty
// directory. skiff does too, and takes back what it made when the create fails later.
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { CriPods } from '../fixtures/cri_pods';
import { statusCode } from '../fixtures/grpc';
import { startTestNode, TestNode } from '../fixtures/node';

describe('CRI mounts of a missing host path (skiffd over gRPC)', function () {
  this.timeout(180_000);
  let node: TestNode;
  let cri: CriPods;

  before(async () => {
    node = await startTestNode();
    cri = new CriPods(node.skiffd, { prefix: 'hostpath', namespace: 'hostpath', uidPrefix: 'hostpath-uid-' });
  });
  after(async () => {
    await node?.stop();
  });

  it('makes a missing host path an empty 0755 directory, with its missing parents, and the container sees it', async () => {
    const base = path.join(node.skiffd.dir, 'volumes');
    const host = path.join(base, 'a', 'b');
    const pod = await cri.runPod();
    const id = await cri.startCtr(pod, 'app', { mounts: [{ container_path: '/data', host_path: host }] });
    const st = fs.statSync(host);
    assert.ok(st.isDirectory());
    assert.equal(st.mode & 0o7777, 0o755);
    await cri.exec(id, ['sh', '-c', 'echo hi > /data/f']);
    assert.equal(fs.readFileSync(path.join(host, 'f'), 'utf8'), 'hi\n', 'the container writes into the host path');
    await node.skiffd.client.runtime('RemovePodSandbox', { pod_sandbox_id: pod.id });
    assert.ok(fs.existsSync(host), "a volume outlives the container, as a hostPath's does");
  });

  it('leaves a path that names something (a dangling link) as it is, and the create fails', async () => {
    const link = path.join(node.skiffd.dir, 'dangling');
    fs.symlinkSync(path.join(node.skiffd.dir, 'nowhere'), link);
    const pod = await cri.runPod();
    assert.notEqual(await statusCode(cri.createCtr(pod, 'app', { mounts: [{ container_path: '/data', host_path: link }] })), 0);
    assert.equal(fs.lstatSync(link).isSymbolicLink(), true);
    assert.equal(fs.existsSync(path.join(node.skiffd.dir, 'nowhere')), false, 'nothing made through the link');
    await node.skiffd.client.runtime('RemovePodSandbox', { pod_sandbox_id: pod.id });
  });

  it('removes the directories it made when the create fails after making them', async () => {
    const made = path.join(node.skiffd.dir, 'undo', 'x', 'y');
    const pod = await cri.runPod();
    // The second mount's source is a dangling link: the create fails after the first
    // mount's path was made.
    const link = path.join(node.skiffd.dir, 'dangling2');
    fs.symlinkSync(path.join(node.skiffd.dir, 'nowhere2'), link);
    const code = await statusCode(
      cri.createCtr(pod, 'app', { mounts: [{ container_path: '/one', host_path: made }, { container_path: '/two', host_path: link }] }),
    );
    assert.notEqual(code, 0, 'the create fails');
    assert.equal(fs.existsSync(path.join(node.skiffd.dir, 'undo')), false, 'every directory it made is gone');
    await node.skiffd.client.runtime('RemovePodSandbox', { pod_sandbox_id: pod.id });
  });
});
