// A user-namespaced pod (kubelet's hostUsers: false) with real containers over gRPC: the
// image is id-mapped (its root owns its files and can write them; what it writes lands in
// the container's upper dir under the pod's host ids), a hostPath volume with the
// mappings kubelet sends (the pod's own) is id-mapped (what the pod's root makes there
// belongs to the volume's owner on the host), the pod's files and /dev/shm are usable, the
// processes run as the mapped host ids, and the isolation report and gauge say the root is
// not the host's. Bad mount mappings are INVALID_ARGUMENT naming the field, a source that
// cannot be id-mapped FAILED_PRECONDITION naming it; either leaves nothing.
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import type { IDMapping, PodSandboxConfig } from '../../src/cri/gen/cri';
import { NamespaceMode } from '../../src/cri/gen/cri';
import type { Reply } from '../../src/cri/server';
import { CriPods } from '../fixtures/cri_pods';
import { skipUnderUserns } from '../fixtures/handler';
import { statusCode } from '../fixtures/grpc';
import { startTestNode, TestNode } from '../fixtures/node';

const INVALID_ARGUMENT = 3;
const FAILED_PRECONDITION = 9;
const HOST_UID = 410000;
const HOST_GID = 420000;
const UIDS = [{ container_id: 0, host_id: HOST_UID, length: 65536 }];
const GIDS = [{ container_id: 0, host_id: HOST_GID, length: 65536 }];

describe('id-mapped rootfs and volumes of user-namespaced pods (skiffd over gRPC)', function () {
  this.timeout(180_000);
  let node: TestNode;
  let cri: CriPods;

  before(async () => {
    node = await startTestNode();
    cri = new CriPods(node.skiffd, { prefix: 'idmap-', namespace: 'e2e', uidPrefix: 'uid-idmap-' });
  });
  after(async () => {
    await node?.stop();
  });

  const userns = (uids: Reply<IDMapping>[], gids: Reply<IDMapping>[], network = NamespaceMode.POD): Reply<PodSandboxConfig> => ({
    linux: { security_context: { namespace_options: { network, userns_options: { mode: NamespaceMode.POD, uids, gids } } } },
  });
  const info = async (id: string) =>
    JSON.parse((await node.skiffd.client.runtime('ContainerStatus', { container_id: id, verbose: true })).info.info) as {
      pid: number;
      isolation: { uid: number; uid0IsHostRoot: boolean };
    };
  const sh = async (id: string, script: string) => {
    const r = await cri.exec(id, ['sh', '-c', script]);
    assert.equal(r.code, 0, `${script}: ${r.err}${r.out}`);
    return r.out;
  };
  const statusIds = (pid: number, key: 'Uid' | 'Gid') =>
    new RegExp(`^${key}:\\s+(.*)$`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1].trim().split(/\s+/).map(Number);
  // Mount points (mountinfo's fifth field) of id-mapped layer clones under this skiffd.
  const idmappedClonesLeft = () =>
    fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '').filter((p) => p.startsWith(`${node.skiffd.dir}/`) && p.includes('/idmapped/'));
  /** The pod cgroup's children but its infra process's: the containers' cgroups. */
  const containerCgroups = (podId: string) => {
    const podCg = `${node.skiffd.cgroupParent}/skiff-pod-${podId}`;
    const dir = [`/sys/fs/cgroup/memory${podCg}`, `/sys/fs/cgroup${podCg}`].find((d) => fs.existsSync(d));
    assert.ok(dir, `pod cgroup ${podCg} not found`);
    return fs.readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory() && e.name !== podId).map((e) => e.name);
  };
  const removePod = async (id: string) => {
    await node.skiffd.client.runtime('StopPodSandbox', { pod_sandbox_id: id });
    await node.skiffd.client.runtime('RemovePodSandbox', { pod_sandbox_id: id });
  };

  it("gives the pod's root its image and an id-mapped volume, and runs it as the mapped host ids", async () => {
    const vol = path.join(node.skiffd.dir, 'vol-root');
    fs.mkdirSync(vol, { mode: 0o755 });
    fs.chownSync(vol, 0, 0);
    fs.writeFileSync(path.join(vol, 'pre'), 'from the host\n', { mode: 0o644 });
    const pod = await cri.runPod(userns(UIDS, GIDS));
    try {
      // What kubelet sends for a volume of such a pod: the pod's own mappings.
      const id = await cri.startCtr(pod, 'app', { mounts: [{ container_path: '/vol', host_path: vol, uidMappings: UIDS, gidMappings: GIDS }] });

      // Inside: root, owning the image's files, writing where the image's root may.
      assert.equal((await sh(id, 'id -u; id -g')).trim(), '0\n0');
      assert.equal((await sh(id, 'stat -c %u:%g /etc/passwd /root /')).trim(), '0:0\n0:0\n0:0');
      assert.equal((await sh(id, 'echo mine > /root/made && mkdir /etc/new.d && stat -c %u:%g /root/made /etc/new.d')).trim(), '0:0\n0:0');
      assert.match(await sh(id, 'ls -ln /etc/passwd'), /^-\S+\s+\d+\s+0\s+0\s/);

      // The volume: the host's root-owned dir is the pod root's.
      assert.equal((await sh(id, 'stat -c %u:%g /vol /vol/pre')).trim(), '0:0\n0:0');
      await sh(id, 'echo from-pod > /vol/made && mkdir /vol/dir');

      // The pod's files and /dev/shm, as in a pod without a user namespace.
      assert.match(await sh(id, 'cat /etc/hostname /etc/hosts /etc/resolv.conf'), new RegExp(pod.config.metadata!.name!));
      assert.equal((await sh(id, 'stat -c %u:%g /etc/hosts /etc/hostname /etc/resolv.conf /dev/shm')).trim(), '0:0\n0:0\n0:0\n0:0');
      assert.equal((await sh(id, 'echo shm > /dev/shm/s && cat /dev/shm/s')).trim(), 'shm');

      // On the host: the processes run as the mapped ids, never 0.
      const { pid, isolation } = await info(id);
      assert.deepEqual(statusIds(pid, 'Uid'), [HOST_UID, HOST_UID, HOST_UID, HOST_UID]);
      assert.deepEqual(statusIds(pid, 'Gid'), [HOST_GID, HOST_GID, HOST_GID, HOST_GID]);
      // What the pod's root wrote into its image is in its upper dir under its host ids.
      const upper = path.join(node.skiffd.root, 'snapshots', 'containers', id, 'upper');
      for (const p of ['root/made', 'etc/new.d']) {
        const st = fs.statSync(path.join(upper, p));
        assert.deepEqual([st.uid, st.gid], [HOST_UID, HOST_GID], p);
      }
      // The image's layers keep their own owners.
      assert.equal(fs.statSync(upper).uid, HOST_UID);
      // What it wrote into the volume belongs to the volume's owner, the host's root.
      for (const p of ['made', 'dir']) {
        const st = fs.statSync(path.join(vol, p));
        assert.deepEqual([st.uid, st.gid], [0, 0], p);
      }
      assert.equal(fs.readFileSync(path.join(vol, 'made'), 'utf8'), 'from-pod\n');

      // The isolation report and its gauge.
      assert.deepEqual([isolation.uid, isolation.uid0IsHostRoot], [0, false]);
      const status = await node.skiffd.client.runtime('Status', { verbose: true });
      const address = (JSON.parse(status.info.config) as { metricsAddress: string }).metricsAddress;
      const text = await (await fetch(`http://${address}/metrics`)).text();
      assert.match(text, new RegExp(`skiff_container_isolation\\{namespace="e2e",pod="${pod.config.metadata!.name}",container="app",check="root_on_host"\\} 0`));

      assert.deepEqual(idmappedClonesLeft(), [], 'no id-mapped layer clone stays attached');
    } finally {
      await removePod(pod.id);
    }
    assert.equal(fs.existsSync(path.join(vol, 'made')), true, 'the volume outlives the pod');
  });

  it('works with several mapping ranges and the host network', async function () {
    skipUnderUserns(this, 'the handler refuses host-network pods (its refusal is checked in runtime and userns_handler); several ranges are checked in userns_mappings');
    const status = await node.skiffd.client.runtime('Status', {});
    if (!status.features?.user_namespaces_host_network) {
      console.log('      (skipped: this kernel gives no /sys to a user namespace in the host network namespace)');
      this.skip();
    }
    const uids = [{ container_id: 0, host_id: 430000, length: 1000 }, { container_id: 1000, host_id: 440000, length: 64536 }];
    const gids = [{ container_id: 0, host_id: 450000, length: 65536 }];
    const pod = await cri.runPod(userns(uids, gids, NamespaceMode.NODE));
    try {
      const id = await cri.startCtr(pod, 'app');
      assert.equal((await sh(id, 'stat -c %u:%g /etc/passwd /root')).trim(), '0:0\n0:0');
      assert.deepEqual((await sh(id, 'cat /proc/self/uid_map')).trim().split('\n').map((l) => l.trim().split(/\s+/).map(Number)), [[0, 430000, 1000], [1000, 440000, 64536]]);
      await sh(id, 'echo x > /root/made && chown 1000:1000 /root/made');
      const st = fs.statSync(path.join(node.skiffd.root, 'snapshots', 'containers', id, 'upper', 'root', 'made'));
      assert.deepEqual([st.uid, st.gid], [440000, 451000], 'container uid 1000 lands as the second range maps it');
      assert.deepEqual(statusIds((await info(id)).pid, 'Uid'), [430000, 430000, 430000, 430000]);
    } finally {
      await removePod(pod.id);
    }
  });

  it('refuses bad mount mappings with INVALID_ARGUMENT naming the field, and a source that cannot be id-mapped, leaving nothing', async () => {
    const pod = await cri.runPod(userns(UIDS, GIDS));
    try {
      const vol = path.join(node.skiffd.dir, 'vol-bad');
      fs.mkdirSync(vol);
      const cases: [string, Reply<IDMapping>[], Reply<IDMapping>[], RegExp][] = [
        ['overlapping ranges', [{ container_id: 0, host_id: HOST_UID, length: 100 }, { container_id: 50, host_id: 600000, length: 10 }], GIDS, /mounts\[0\]\.uidMappings: \[0\] and \[1\] overlap in their container ids/],
        ['past 2^32', UIDS, [{ container_id: 0, host_id: 4294967000, length: 65536 }], /mounts\[0\]\.gidMappings\[0\]: host ids 4294967000\+65536 overflow 2\^32/],
        ['uids without gids', UIDS, [], /mounts\[0\]\.gidMappings: required with uidMappings/],
      ];
      const containersDir = path.join(node.skiffd.root, 'snapshots', 'containers');
      const layersBefore = fs.readdirSync(containersDir).sort();
      const bundlesBefore = fs.readdirSync(path.join(node.skiffd.state, 'containers')).sort();
      for (const [what, uidMappings, gidMappings, message] of cases) {
        let err: (Error & { details?: string }) | undefined;
        await cri.createCtr(pod, 'bad', { mounts: [{ container_path: '/vol', host_path: vol, uidMappings, gidMappings }] }).catch((e: Error) => (err = e));
        assert.ok(err, `${what}: accepted`);
        assert.equal(await statusCode(Promise.reject(err)), INVALID_ARGUMENT, `${what}: ${err.message}`);
        assert.match(err.details ?? err.message, message, what);
      }
      assert.deepEqual((await node.skiffd.client.runtime('ListContainers', { filter: { pod_sandbox_id: pod.id } })).containers, []);
      assert.deepEqual(fs.readdirSync(containersDir).sort(), layersBefore, 'no writable layer left');
      assert.deepEqual(fs.readdirSync(path.join(node.skiffd.state, 'containers')).sort(), bundlesBefore, 'no bundle left');
      const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8');
      for (const dir of fs.readdirSync(containersDir)) assert.ok(!mounts.includes(dir), `a mount of ${dir} is left`);
      assert.deepEqual(idmappedClonesLeft(), []);
      assert.deepEqual(containerCgroups(pod.id), [], 'no container cgroup left');

      // A source whose file system cannot be id-mapped (sysfs) fails in the shim, named,
      // and what the create made is taken back.
      let err: (Error & { details?: string }) | undefined;
      await cri.createCtr(pod, 'sys', { mounts: [{ container_path: '/k', host_path: '/sys/kernel', uidMappings: UIDS, gidMappings: GIDS }] }).catch((e: Error) => (err = e));
      assert.ok(err, 'an id-mapped sysfs was accepted');
      assert.equal(await statusCode(Promise.reject(err)), FAILED_PRECONDITION, err.message);
      assert.match(err.details ?? err.message, /\/k.*\/sys\/kernel.*does not support id-mapped mounts/);
      assert.deepEqual((await node.skiffd.client.runtime('ListContainers', { filter: { pod_sandbox_id: pod.id } })).containers, []);
      assert.deepEqual(fs.readdirSync(containersDir).sort(), layersBefore, 'no writable layer left');
      assert.deepEqual(fs.readdirSync(path.join(node.skiffd.state, 'containers')).sort(), bundlesBefore, 'no bundle left');
      assert.deepEqual(idmappedClonesLeft(), []);
      assert.deepEqual(containerCgroups(pod.id), [], 'no container cgroup left');

      // The pod is still good: a well-mapped container runs in it.
      const id = await cri.startCtr(pod, 'good', { mounts: [{ container_path: '/vol', host_path: vol, uidMappings: UIDS, gidMappings: GIDS }] });
      assert.equal((await sh(id, 'stat -c %u /vol')).trim(), '0');
    } finally {
      await removePod(pod.id);
    }
  });
});
