// The skiff-userns runtime handler over gRPC with real containers: a pod that asks for no
// user namespace (hostUsers unset) gets one of its own anyway, with a 65536-id range of
// the pool; its root is uid 0 inside and an unprivileged host id outside; what it writes
// in its rootfs lands under its range, what it writes in volumes (a directory, a tmpfs, a
// host path) lands as the id-mapped mount makes it. Two pods get disjoint ranges; the
// allocations outlive a restart and a SIGKILL of skiffd, a crash mid-run or mid-removal
// and a pod record that vanished, and go back to the pool on removal. Pods the handler
// cannot isolate are refused with the code and the reason, as is a checkpoint of their
// containers (where a CRIU that works is found).
import assert from 'node:assert/strict';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import type { LinuxContainerSecurityContext, PodSandboxConfig } from '../../src/cri/gen/cri';
import { NamespaceMode } from '../../src/cri/gen/cri';
import type { Reply } from '../../src/cri/server';
import { probeCriu, type CriuStatus } from '../../src/checkpoint/criu';
import { CriPods, type CriPod } from '../fixtures/cri_pods';
import { statusCode } from '../fixtures/grpc';
import { startTestNode, TestNode } from '../fixtures/node';

const INVALID_ARGUMENT = 3;
const FAILED_PRECONDITION = 9;
const RESOURCE_EXHAUSTED = 8;
const UNAVAILABLE = 14;
const HANDLER = 'skiff-userns';
const RANGE = 65536;
// A pool of this suite's own: three ranges, so that the fourth pod finds it full.
const FIRST = 2 ** 30 + 64 * RANGE;
const RANGES = 3;

describe('the skiff-userns runtime handler: a user namespace for every pod (skiffd over gRPC)', function () {
  this.timeout(300_000);
  let node: TestNode;
  let cri: CriPods;
  let criu: CriuStatus;
  const poolDir = () => path.join(node.skiffd.root, 'userns');

  before(async () => {
    criu = await probeCriu(process.env.SKIFF_CRIU ?? (fs.existsSync('/opt/criu/bin/criu') ? '/opt/criu/bin/criu' : ''));
    const criuArgs = criu.available ? ['--checkpoint.criu', criu.path] : [];
    node = await startTestNode(undefined, ['--userns.first_host_id', String(FIRST), '--userns.pod_ranges', String(RANGES), ...criuArgs]);
    cri = new CriPods(node.skiffd, { prefix: 'uh-', namespace: 'e2e', uidPrefix: 'uid-uh-' });
  });
  after(async () => {
    await node?.stop();
  });

  const runPod = async (over: Reply<PodSandboxConfig> = {}): Promise<CriPod> => {
    const config = cri.podConfig(over);
    const { pod_sandbox_id } = await node.skiffd.client.runtime('RunPodSandbox', { config, runtime_handler: HANDLER });
    return { id: pod_sandbox_id, config };
  };
  const removePod = async (id: string) => {
    await node.skiffd.client.runtime('StopPodSandbox', { pod_sandbox_id: id });
    await node.skiffd.client.runtime('RemovePodSandbox', { pod_sandbox_id: id });
  };
  const removeAll = async () => {
    for (const p of (await node.skiffd.client.runtime('ListPodSandbox', {})).items) await removePod(p.id);
  };
  const sh = async (id: string, script: string) => {
    const r = await cri.exec(id, ['sh', '-c', script]);
    assert.equal(r.code, 0, `${script}: ${r.err}${r.out}`);
    return r.out.trim();
  };
  const idMap = async (id: string, file: 'uid_map' | 'gid_map') => (await sh(id, `cat /proc/self/${file}`)).split('\n').map((l) => l.trim().split(/\s+/).map(Number));
  const hostIds = (pid: number, key: 'Uid' | 'Gid') => new RegExp(`^${key}:\\s+(.*)$`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1].trim().split(/\s+/).map(Number);
  const pidOf = async (id: string) => (JSON.parse((await node.skiffd.client.runtime('ContainerStatus', { container_id: id, verbose: true })).info.info) as { pid: number }).pid;
  /** The first host id of each pod's range, from the allocation records on disk. */
  const allocations = () =>
    Object.fromEntries(
      fs.readdirSync(poolDir()).filter((n) => n.endsWith('.json')).map((n) => [n.slice(0, -5), (JSON.parse(fs.readFileSync(path.join(poolDir(), n), 'utf8')) as { hostId: number }).hostId]),
    );
  const podRange = async (id: string) => {
    const st = await node.skiffd.client.runtime('PodSandboxStatus', { pod_sandbox_id: id });
    return st.status?.linux?.namespaces?.options?.userns_options;
  };
  const rejection = async (p: Promise<unknown>) => {
    let err: (Error & { details?: string; code?: number }) | undefined;
    await p.catch((e: Error) => (err = e));
    assert.ok(err, 'accepted');
    return { code: err.code, message: err.details ?? err.message };
  };

  it('lists the handler in Status with user namespaces, and pulls images for it', async () => {
    const st = await node.skiffd.client.runtime('Status', {});
    const h = st.runtime_handlers.find((x) => x.name === HANDLER);
    assert.deepEqual(h?.features, { recursive_read_only_mounts: true, user_namespaces: true });
    await node.skiffd.client.image('PullImage', { image: { image: 'busybox', runtime_handler: HANDLER } });
  });

  it('runs a pod that asks for no user namespace in one of its own: root inside, a range of the pool outside, id-mapped rootfs and volumes', async () => {
    // A kubelet emptyDir (a directory under kubelet's pod dir), a memory emptyDir (a tmpfs),
    // and a host path with a file of host uid 1000.
    const emptyDir = path.join(node.skiffd.dir, 'empty-dir');
    const memDir = path.join(node.skiffd.dir, 'mem-dir');
    const hostPath = path.join(node.skiffd.dir, 'host-path');
    fs.mkdirSync(emptyDir, { mode: 0o777 });
    fs.chmodSync(emptyDir, 0o777);
    fs.mkdirSync(memDir);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0777', 'tmpfs', memDir]);
    fs.mkdirSync(hostPath);
    fs.writeFileSync(path.join(hostPath, 'theirs'), 'x');
    fs.chownSync(path.join(hostPath, 'theirs'), 1000, 1000);
    const pod = await runPod();
    try {
      const mounts = [
        { container_path: '/empty', host_path: emptyDir },
        { container_path: '/mem', host_path: memDir },
        { container_path: '/host', host_path: hostPath },
      ];
      // oom_score_adj as kubelet sets it for every container (the shim sets it before the
      // process is in the user namespace, where its /proc files are not its own).
      const id = await cri.startCtr(pod, 'app', { mounts, linux: { resources: { oom_score_adj: 500 } } });

      assert.equal(await sh(id, 'id -u; id -g'), '0\n0');
      assert.deepEqual(await idMap(id, 'uid_map'), [[0, FIRST, RANGE]]);
      assert.deepEqual(await idMap(id, 'gid_map'), [[0, FIRST, RANGE]]);
      const pid = await pidOf(id);
      assert.equal(fs.readFileSync(`/proc/${pid}/oom_score_adj`, 'utf8').trim(), '500');
      assert.deepEqual(hostIds(pid, 'Uid'), [FIRST, FIRST, FIRST, FIRST], "the container's root is the range's first id on the host");
      assert.deepEqual(hostIds(pid, 'Gid'), [FIRST, FIRST, FIRST, FIRST]);
      assert.deepEqual(await podRange(pod.id), { mode: NamespaceMode.POD, uids: [{ container_id: 0, host_id: FIRST, length: RANGE }], gids: [{ container_id: 0, host_id: FIRST, length: RANGE }] });

      // The rootfs: the image is root's inside; what root writes lands under the range.
      assert.equal(await sh(id, 'stat -c %u:%g / /etc/passwd /etc/hosts'), '0:0\n0:0\n0:0');
      await sh(id, 'echo r > /root/made && touch /tmp/user1000 && chown 1000:1000 /tmp/user1000');
      const upper = path.join(node.skiffd.root, 'snapshots', 'containers', id, 'upper');
      const owner = (p: string) => {
        const st = fs.statSync(p);
        return [st.uid, st.gid];
      };
      assert.deepEqual(owner(path.join(upper, 'root', 'made')), [FIRST, FIRST]);
      assert.deepEqual(owner(path.join(upper, 'tmp', 'user1000')), [FIRST + 1000, FIRST + 1000]);

      // The volumes: their host owners are the same ids inside, and what the pod writes
      // there gets the ids it has inside, on the host too (the id-mapped mounts).
      assert.equal(await sh(id, 'stat -c %u:%g /empty /mem /host /host/theirs'), '0:0\n0:0\n0:0\n1000:1000');
      await sh(id, 'for d in /empty /mem /host; do echo v > $d/made && touch $d/user1000 && chown 1000:1000 $d/user1000; done');
      for (const d of [emptyDir, memDir, hostPath]) {
        assert.deepEqual(owner(path.join(d, 'made')), [0, 0], `${d}/made`);
        assert.deepEqual(owner(path.join(d, 'user1000')), [1000, 1000], `${d}/user1000`);
      }
      // ...yet its root is no host root: it has CAP_MKNOD inside (the default set), which
      // makes device nodes only in the host's user namespace.
      const mknod = await cri.exec(id, ['mknod', '/tmp/null', 'c', '1', '3']);
      assert.notEqual(mknod.code, 0, 'a device node was made');
      assert.match(mknod.err, /Operation not permitted/);
      const isolation = (JSON.parse((await node.skiffd.client.runtime('ContainerStatus', { container_id: id, verbose: true })).info.info) as { isolation: { uid0IsHostRoot: boolean } }).isolation;
      assert.equal(isolation.uid0IsHostRoot, false);
    } finally {
      await removePod(pod.id);
      execFileSync('umount', [memDir]);
    }
    assert.deepEqual(allocations(), {}, 'the range went back to the pool');
  });

  it('gives pods run at once disjoint ranges, keeps them across a restart and a SIGKILL of skiffd, and refuses a pod once the pool is full', async () => {
    try {
      const pods = await Promise.all([runPod(), runPod()]);
      const ids = await Promise.all(pods.map((p) => cri.startCtr(p, 'c')));
      const firsts = (await Promise.all(ids.map((id) => idMap(id, 'uid_map')))).map((m) => m[0][1]).sort();
      assert.deepEqual(firsts, [FIRST, FIRST + RANGE]);
      assert.deepEqual(Object.values(allocations()).sort(), [FIRST, FIRST + RANGE]);

      await node.skiffd.stop();
      await node.skiffd.restart();
      const third = await runPod();
      assert.equal((await podRange(third.id))?.uids[0].host_id, FIRST + 2 * RANGE, 'no range handed out twice after a restart');
      assert.deepEqual((await Promise.all(pods.map((p) => podRange(p.id)))).map((u) => u?.uids[0].host_id).sort(), [FIRST, FIRST + RANGE], 'the pods keep theirs');

      const full = await rejection(runPod());
      assert.equal(full.code, RESOURCE_EXHAUSTED, full.message);
      assert.match(full.message, /the userns pool is full: all 3 ranges of 65536 host ids from \d+ are in use \(userns\.pod_ranges\)/);
      assert.equal((await node.skiffd.client.runtime('ListPodSandbox', {})).items.length, 3, 'the refused pod left nothing');
      assert.equal(Object.keys(allocations()).length, 3);

      await node.skiffd.kill();
      await node.skiffd.restart();
      assert.deepEqual(Object.values(allocations()).sort(), [FIRST, FIRST + RANGE, FIRST + 2 * RANGE]);
      // The pods still run on their ranges.
      assert.deepEqual((await Promise.all(ids.map((id) => idMap(id, 'uid_map')))).map((m) => m[0][1]).sort(), [FIRST, FIRST + RANGE]);
      await removePod(pods[0].id);
      const again = await runPod();
      assert.equal((await podRange(again.id))?.uids[0].host_id, (await podRange(pods[1].id))?.uids[0].host_id === FIRST ? FIRST + RANGE : FIRST, "a removed pod's range is the next one given");
    } finally {
      await removeAll();
    }
    assert.deepEqual(allocations(), {});
  });

  it('settles the range of a run or a removal cut short by a crash, and of a pod whose record vanished', async () => {
    try {
      // A SIGKILL once the pod's namespaces exist, before its record: undone, range freed.
      await node.skiffd.stop();
      await node.skiffd.restart({ SKIFF_FAILPOINTS: 'run_pod.shim=kill' });
      const died = node.skiffd.exited();
      assert.equal(await statusCode(runPod()), UNAVAILABLE);
      await died;
      assert.equal(Object.keys(allocations()).length, 1, 'the range was recorded before the namespace was made');
      await node.skiffd.restart({ SKIFF_FAILPOINTS: 'remove_pod.recorded=kill' });
      assert.deepEqual(allocations(), {}, 'recovery released the range of the run it undid');
      assert.match(node.skiffd.log(), /"kind":"userns_range"/);

      // A SIGKILL after the pod record is gone, before its range is released.
      const pod = await runPod();
      assert.equal((await podRange(pod.id))?.uids[0].host_id, FIRST);
      const died2 = node.skiffd.exited();
      await node.skiffd.client.runtime('StopPodSandbox', { pod_sandbox_id: pod.id });
      assert.equal(await statusCode(node.skiffd.client.runtime('RemovePodSandbox', { pod_sandbox_id: pod.id })), UNAVAILABLE);
      await died2;
      await node.skiffd.restart({});
      assert.deepEqual(allocations(), {});

      // A pod record that vanished while skiffd was down: its shim is killed, then its
      // range goes back to the pool.
      const lost = await runPod();
      const ctr = await cri.startCtr(lost, 'c');
      const pid = await pidOf(ctr);
      await node.skiffd.stop();
      fs.rmSync(path.join(node.skiffd.root, 'metadata', 'pods', `${lost.id}.json`));
      fs.rmSync(path.join(node.skiffd.root, 'metadata', 'containers', `${ctr}.json`));
      await node.skiffd.restart();
      // Killed with its shim (its parent-death signal); init reaps it a moment later.
      for (const end = Date.now() + 20_000; fs.existsSync(`/proc/${pid}`) && Date.now() < end; ) await new Promise((r) => setTimeout(r, 100));
      assert.equal(fs.existsSync(`/proc/${pid}`), false, "the pod's processes are gone");
      assert.deepEqual(allocations(), {});
      const next = await runPod();
      assert.equal((await podRange(next.id))?.uids[0].host_id, FIRST, 'its range is given again');
    } finally {
      await removeAll();
    }
  });

  it('refuses pods it cannot isolate with INVALID_ARGUMENT naming why, making nothing; keeps mappings kubelet sends', async () => {
    const ns = (o: Record<string, unknown>): Reply<PodSandboxConfig> => ({ linux: { security_context: { namespace_options: { network: NamespaceMode.POD, pid: NamespaceMode.CONTAINER, ipc: NamespaceMode.POD, ...o } } } });
    const map = (host_id: number, length = RANGE) => [{ container_id: 0, host_id, length }];
    const cases: [string, Reply<PodSandboxConfig>, RegExp][] = [
      ['host network', ns({ network: NamespaceMode.NODE }), /namespace_options\.network NODE \(the host's network\) is refused/],
      ['host PID', ns({ pid: NamespaceMode.NODE }), /namespace_options\.pid NODE \(the host's PID namespace\) is refused/],
      ['host IPC', ns({ ipc: NamespaceMode.NODE }), /namespace_options\.ipc NODE \(the host's IPC namespace\) is refused/],
      ['privileged', { linux: { security_context: { privileged: true } } }, /security_context\.privileged \(a privileged pod\) is refused/],
      ['mappings in the pool', ns({ userns_options: { mode: NamespaceMode.POD, uids: map(FIRST + RANGE), gids: map(FIRST + RANGE) } }), /userns_options\.uids\[0\]: host ids \d+\+65536 overlap the ids skiff gives the userns handler's pods/],
    ];
    const before = (await node.skiffd.client.runtime('ListPodSandbox', {})).items.length;
    for (const [what, over, message] of cases) {
      const r = await rejection(runPod(over));
      assert.equal(r.code, INVALID_ARGUMENT, `${what}: ${r.message}`);
      assert.match(r.message, /^runtime handler "skiff-userns" runs every pod in a user namespace of its own|userns_options/, what);
      assert.match(r.message, message, what);
    }
    // The pool's ids are refused to the default handler too: they belong to the handler's pods.
    const config = cri.podConfig(ns({ userns_options: { mode: NamespaceMode.POD, uids: map(FIRST), gids: map(FIRST) } }));
    const r = await rejection(node.skiffd.client.runtime('RunPodSandbox', { config }));
    assert.equal(r.code, INVALID_ARGUMENT, r.message);
    assert.equal((await node.skiffd.client.runtime('ListPodSandbox', {})).items.length, before, 'no pod was made');
    assert.deepEqual(allocations(), {}, 'no range was taken');

    // kubelet's own mappings (hostUsers: false) are kept: its volumes' mappings match them.
    const pod = await runPod(ns({ userns_options: { mode: NamespaceMode.POD, uids: map(500000), gids: map(600000) } }));
    try {
      const id = await cri.startCtr(pod, 'c');
      assert.deepEqual(await idMap(id, 'uid_map'), [[0, 500000, RANGE]]);
      assert.deepEqual(await idMap(id, 'gid_map'), [[0, 600000, RANGE]]);
      assert.deepEqual(allocations(), {}, 'no range of the pool for it');
    } finally {
      await removePod(pod.id);
    }
  });

  it('refuses to checkpoint a container of its pods with FAILED_PRECONDITION, saying why', async function () {
    if (!criu.available) {
      console.log(`    skipped: no CRIU that works here: ${criu.reason}`);
      this.skip();
    }
    const location = path.join(node.skiffd.dir, 'checkpoint.tar');
    const pod = await runPod();
    try {
      const id = await cri.startCtr(pod, 'c');
      const r = await rejection(node.skiffd.client.runtime('CheckpointContainer', { container_id: id, location }));
      assert.equal(r.code, FAILED_PRECONDITION, r.message);
      assert.match(r.message, /is in a user namespace: skiff does not checkpoint those/);
      assert.equal(fs.existsSync(location), false, 'no archive');
      assert.equal(await sh(id, 'echo alive'), 'alive', 'the container runs on');
    } finally {
      await removePod(pod.id);
    }
  });

  it('refuses a container whose user or group the pod\'s user namespace does not map, with INVALID_ARGUMENT naming it', async () => {
    const pod = await runPod();
    try {
      const bundles = () => fs.readdirSync(path.join(node.skiffd.state, 'containers')).sort();
      const before = bundles();
      const cases: [string, Reply<LinuxContainerSecurityContext>, RegExp][] = [
        ['run_as_user', { run_as_user: { value: RANGE } }, /user 65536 \(run_as_user, else the image's USER\) is not mapped in the pod's user namespace, whose uids are 0-65535/],
        ['run_as_group', { run_as_user: { value: 0 }, run_as_group: { value: 70000 } }, /group 70000 .* is not mapped .* gids are 0-65535/],
        ['supplemental_groups', { supplemental_groups: [5, 99999] }, /group 99999/],
      ];
      for (const [what, sc, message] of cases) {
        const r = await rejection(cri.createCtr(pod, 'bad', { linux: { security_context: sc } }));
        assert.equal(r.code, INVALID_ARGUMENT, `${what}: ${r.message}`);
        assert.match(r.message, message, what);
      }
      assert.deepEqual((await node.skiffd.client.runtime('ListContainers', { filter: { pod_sandbox_id: pod.id } })).containers, []);
      assert.deepEqual(bundles(), before, 'no bundle left');
      const id = await cri.startCtr(pod, 'ok', { linux: { security_context: { run_as_user: { value: RANGE - 1 }, run_as_group: { value: 1000 } } } });
      assert.equal(await sh(id, 'id -u; id -g'), '65535\n1000');
    } finally {
      await removePod(pod.id);
    }
  });
});
