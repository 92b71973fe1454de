// The Status features of a real skiffd on this host (Linux 6.x), on each of its runtime
// handlers (the default, and skiff-userns, which the kernel can run here): probed from the kernel
// at start-up, all present here; and what user_namespaces_host_network promises works:
// a user-namespaced pod on the host's network gets the host's /sys, read-only.
import assert from 'node:assert/strict';
import * as fs from 'fs';
import { ContainerState, NamespaceMode } from '../../src/cri/gen/cri';
import { CriPods } from '../fixtures/cri_pods';
import { skipUnderUserns } from '../fixtures/handler';
import { startTestNode, TestNode } from '../fixtures/node';

describe('CRI Status features (skiffd over gRPC)', function () {
  this.timeout(120_000);
  let node: TestNode;

  before(async () => {
    node = await startTestNode();
  });
  after(async () => {
    await node?.stop();
  });

  it('reports recursive read-only mounts, user namespaces, with the host network too, and supplemental groups policy', async () => {
    const st = await node.skiffd.client.runtime('Status', { verbose: true });
    assert.deepEqual(st.runtime_handlers.map((h) => h.name), ['', 'skiff', 'skiff-userns']);
    for (const h of st.runtime_handlers) assert.deepEqual(h.features, { recursive_read_only_mounts: true, user_namespaces: true }, h.name);
    assert.deepEqual(st.features, { supplemental_groups_policy: true, user_namespaces_host_network: true });
    const kernel = JSON.parse(st.info.kernelFeatures) as Record<string, { supported: boolean }>;
    assert.deepEqual(Object.values(kernel).map((f) => f.supported), [true, true, true, true]);
  });

  it('runs a user-namespaced pod on the host network with the host\'s /sys, read-only', async function () {
    skipUnderUserns(this, "the handler refuses host-network pods (checked in runtime and userns_handler); this feature is the default handler's, for kubelet's hostUsers: false");
    const c = node.skiffd.client;
    const map = [{ host_id: 300000, container_id: 0, length: 65536 }];
    const pods = new CriPods(node.skiffd, { prefix: 'userns-hostnet-', namespace: 'e2e', uidPrefix: 'uid-userns-hostnet-' });
    const pod = await pods.runPod({ linux: { security_context: { namespace_options: { network: NamespaceMode.NODE, userns_options: { mode: NamespaceMode.POD, uids: map, gids: map } } } } });
    const container_id = await pods.startCtr(pod, 'c');
    assert.equal((await c.runtime('ContainerStatus', { container_id })).status?.state, ContainerState.CONTAINER_RUNNING);
    const script = 'cat /proc/self/uid_map; ls -1 /sys/class/net; if touch /sys/kernel/x 2>/dev/null; then echo writable; else echo read-only; fi';
    const r = await c.runtime('ExecSync', { container_id, cmd: ['sh', '-c', script], timeout: 30 });
    const [uidMap, ...rest] = Buffer.from(r.stdout).toString().trim().split('\n');
    assert.match(uidMap, /^\s*0\s+300000\s+65536$/, 'root of the container is host uid 300000');
    assert.deepEqual(rest.slice(0, -1).sort(), fs.readdirSync('/sys/class/net').sort(), "the host's network interfaces");
    assert.equal(rest[rest.length - 1], 'read-only');
  });
});
