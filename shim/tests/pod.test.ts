// Pod namespaces held by the shim's infra process and joined by containers.
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { ShimError } from '../../src/shim/client';
import { cgroupTree } from '../../e2e/fixtures/cleanup';
import { CGROUP_PARENT, TestPod, WAIT_MS, podNamespaces, readCriLog, tempDir } from './fixtures';

const PROC = { env: ['PATH=/bin'], cwd: '/' };

describe('shim pod', function () {
  it('removes the pod cgroup, the infra\'s and the containers\' at shutdown, and says so', async () => {
    const podCg = `${CGROUP_PARENT}/shutdown-pod`;
    const t = await TestPod.start({ hostname: 'shutdown-pod', cgroupsPath: `${podCg}/infra`, podCgroup: { path: podCg, resources: {} } });
    try {
      await t.run({ id: 'c', args: ['sleep', '1000'], namespaces: podNamespaces(t.pod), edit: (s) => void (s.linux.cgroupsPath = `${podCg}/c`) });
      assert.ok(cgroupTree(podCg).length > 0, 'the pod cgroup exists');
      assert.deepEqual(await t.client.shutdown(), { cgroupsRemoved: true });
      assert.deepEqual(cgroupTree(podCg), [], 'no cgroup of the pod is left in any hierarchy');
    } finally {
      await t.stop();
    }
  });

  it('shares network, IPC and UTS namespaces between the containers of a pod', async () => {
    const t = await TestPod.start({ hostname: 'shared-pod' });
    try {
      const ns = podNamespaces(t.pod);
      const edit = (s: { hostname?: string }) => delete s.hostname;
      await t.run({ id: 'a', args: ['sleep', '1000'], namespaces: ns, edit });
      await t.run({ id: 'b', args: ['sleep', '1000'], namespaces: ns, edit });
      const read = async (id: string) =>
        (await t.client.execSync({ id, process: { args: ['sh', '-c', 'for n in net ipc uts; do readlink /proc/self/ns/$n; done; hostname'], ...PROC } })).stdout.toString();
      const a = await read('a');
      assert.equal(a, await read('b'));
      assert.match(a, /shared-pod\n$/);
      // ...and they are the infra process's, not the host's.
      for (const kind of ['net', 'ipc', 'uts'] as const) {
        assert.ok(a.includes(fs.readlinkSync(t.pod.namespaces[kind]!)), kind);
        assert.notEqual(fs.readlinkSync(t.pod.namespaces[kind]!), fs.readlinkSync(`/proc/self/ns/${kind}`));
      }
      // The pod's loopback interface is up.
      const lo = await t.client.execSync({ id: 'b', process: { args: ['ip', 'link', 'show', 'lo'], ...PROC } });
      assert.match(lo.stdout.toString(), /<LOOPBACK,UP/);
    } finally {
      await t.stop();
    }
  });

  it('shares one PID namespace across the pod when asked', async () => {
    const t = await TestPod.start({ hostname: 'pidpod', pid: 'new' });
    try {
      assert.ok(t.pod.namespaces.pid);
      const ns = podNamespaces(t.pod);
      const edit = (s: { hostname?: string }) => delete s.hostname;
      await t.run({ id: 'first', args: ['sleep', '4242'], namespaces: ns, edit });
      const log = path.join(tempDir(), 'c.log');
      await t.run({ id: 'second', args: ['ps', '-o', 'pid,args'], namespaces: ns, edit, logPath: log });
      await t.client.wait({ id: 'second' });
      const ps = readCriLog(log).map((r) => r.text.trim());
      assert.ok(ps.some((l) => /^1 /.test(l)), 'the infra process is PID 1');
      assert.ok(ps.some((l) => l.endsWith('sleep 4242')), 'the first container is visible');
      // An orphan in the shared namespace is reaped by the infra process.
      await t.client.execSync({ id: 'first', process: { args: ['sh', '-c', 'sh -c "sleep 0.1 &" ; sleep 0.3'], ...PROC } });
      const zombies = await t.client.execSync({ id: 'first', process: { args: ['sh', '-c', 'grep -l "^State:.*Z" /proc/[0-9]*/status | wc -l'], ...PROC } });
      assert.equal(zombies.stdout.toString().trim(), '0');
    } finally {
      await t.stop();
    }
  });

  it('ends the other processes of a container without its own PID namespace when its init exits', async () => {
    const t = await TestPod.start({ hostname: 'pidpod2', pid: 'new' });
    try {
      const ns = podNamespaces(t.pod);
      await t.run({ id: 'c', args: ['sh', '-c', 'sleep 1000 & sleep 0.2; exit 0'], namespaces: ns, edit: (s) => delete s.hostname });
      await t.client.wait({ id: 'c' });
      // The shim sent SIGKILL to the rest at the exit; dying takes a moment.
      let left = -1;
      for (const end = Date.now() + WAIT_MS; left !== 0 && Date.now() < end; ) {
        left = (await t.client.stats({ id: 'c' })).pids.current;
        if (left) await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal(left, 0);
      await t.client.delete({ id: 'c' });
    } finally {
      await t.stop();
    }
  });

  it('uses the host network namespace when asked', async () => {
    const t = await TestPod.start({ hostname: 'hostnet', network: 'host' });
    try {
      assert.equal(t.pod.namespaces.net, undefined);
      const ns = podNamespaces(t.pod);
      await t.run({ id: 'h', args: ['sleep', '1000'], namespaces: ns, edit: (s) => delete s.hostname });
      const r = await t.client.execSync({ id: 'h', process: { args: ['readlink', '/proc/self/ns/net'], ...PROC } });
      assert.equal(r.stdout.toString().trim(), fs.readlinkSync('/proc/self/ns/net'));
    } finally {
      await t.stop();
    }
  });

  it('runs containers in the pod\'s user namespace, root inside mapped to the given host ids', async () => {
    const t = await TestPod.start({
      hostname: 'userns',
      pid: 'new',
      userns: { uidMappings: [{ containerID: 0, hostID: 200000, size: 65536 }], gidMappings: [{ containerID: 0, hostID: 200000, size: 65536 }] },
    });
    try {
      assert.ok(t.pod.namespaces.user);
      assert.equal(fs.readFileSync(`/proc/${t.pod.pid}/uid_map`, 'utf8').trim().split(/\s+/).join(' '), '0 200000 65536');
      const ns = [{ type: 'user', path: t.pod.namespaces.user }, ...podNamespaces(t.pod)];
      const log = path.join(tempDir(), 'c.log');
      await t.run({ id: 'u', args: ['sh', '-c', 'id -u; cat /proc/self/uid_map; touch /tmp/x && stat -c %u /tmp/x; cat /dev/null && echo devnull-ok'], namespaces: ns, logPath: log, edit: (s) => delete s.hostname });
      const e = await t.client.wait({ id: 'u' });
      const out = readCriLog(log).map((r) => r.text.trim().split(/\s+/).join(' '));
      assert.equal(e.exitCode, 0, out.join('\n'));
      assert.deepEqual(out, ['0', '0 200000 65536', '0', 'devnull-ok']);
      // Seen from the host, the container's root is the mapped uid.
      await t.run({ id: 'u2', args: ['sleep', '1000'], namespaces: ns, edit: (s) => delete s.hostname });
      const pid = (await t.client.state({ id: 'u2' })).pid;
      assert.match(fs.readFileSync(`/proc/${pid}/status`, 'utf8'), /Uid:\s+200000/);
    } finally {
      await t.stop();
    }
  });

  it('sets namespaced sysctls in the pod and refuses a second pod on one shim', async () => {
    const t = await TestPod.start({ hostname: 'sys', sysctls: { 'net.ipv4.ip_unprivileged_port_start': '0' } });
    try {
      const ns = podNamespaces(t.pod);
      await t.run({ id: 's', args: ['sleep', '1000'], namespaces: ns, edit: (s) => delete s.hostname });
      const r = await t.client.execSync({ id: 's', process: { args: ['cat', '/proc/sys/net/ipv4/ip_unprivileged_port_start'], ...PROC } });
      assert.equal(r.stdout.toString().trim(), '0');
      await assert.rejects(t.client.pod({ hostname: 'again' }), (e: ShimError) => e.code === 'ALREADY_EXISTS');
    } finally {
      await t.stop();
    }
  });
});
