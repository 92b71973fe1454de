// A pod's user namespace mappings over gRPC: several ranges work, and mappings the kernel
// would refuse (overlapping, past 2^32, container id 0 unmapped, empty, NODE with mappings)
// are INVALID_ARGUMENT naming the field before anything is made.
import assert from 'node:assert/strict';
import type { IDMapping, PodSandboxConfig } from '../../src/cri/gen/cri';
import { NamespaceMode } from '../../src/cri/gen/cri';
import type { Reply } from '../../src/cri/server';
import { CriPods } from '../fixtures/cri_pods';
import { statusCode } from '../fixtures/grpc';
import { USERNS_HANDLER } from '../fixtures/handler';
import { startTestNode, TestNode } from '../fixtures/node';

const INVALID_ARGUMENT = 3;

describe('pod user namespace mappings (skiffd over gRPC)', function () {
  this.timeout(120_000);
  let node: TestNode;
  let pods: CriPods;

  before(async () => {
    node = await startTestNode();
    pods = new CriPods(node.skiffd, { prefix: 'userns-', namespace: 'e2e', uidPrefix: 'uid-userns-' });
  });
  after(async () => {
    await node?.stop();
  });

  /** A host-network pod's config with these user namespace options (a pod network's under
   * the userns handler, which refuses the host's: the mappings are what is tested here). */
  const network = USERNS_HANDLER ? NamespaceMode.POD : NamespaceMode.NODE;
  const userns = (mode: NamespaceMode, uids: Reply<IDMapping>[], gids = uids): Reply<PodSandboxConfig> => ({
    linux: { security_context: { namespace_options: { network, userns_options: { mode, uids, gids } } } },
  });
  const podConfig = (mode: NamespaceMode, uids: Reply<IDMapping>[], gids = uids): Reply<PodSandboxConfig> => pods.podConfig(userns(mode, uids, gids));

  it('maps several ranges: the pod sees each of them', async () => {
    const c = node.skiffd.client;
    const map = [
      { container_id: 0, host_id: 310000, length: 1000 },
      { container_id: 1000, host_id: 320000, length: 64536 },
    ];
    const pod = await pods.runPod(userns(NamespaceMode.POD, map));
    const container_id = await pods.startCtr(pod, 'c');
    const lines = (await pods.exec(container_id, ['cat', '/proc/self/uid_map'])).out.trim().split('\n').map((l) => l.trim().split(/\s+/).map(Number));
    assert.deepEqual(lines, [[0, 310000, 1000], [1000, 320000, 64536]]);
    await c.runtime('StopPodSandbox', { pod_sandbox_id: pod.id });
    await c.runtime('RemovePodSandbox', { pod_sandbox_id: pod.id });
  });

  it('refuses mappings the kernel would refuse, naming the field, and makes nothing', async () => {
    const c = node.skiffd.client;
    const ok = { container_id: 0, host_id: 300000, length: 65536 };
    const field = 'userns_options';
    const cases: [string, Reply<PodSandboxConfig>, RegExp][] = [
      ['overlapping container ids', podConfig(NamespaceMode.POD, [ok, { container_id: 100, host_id: 500000, length: 10 }]), /uids: \[0\] and \[1\] overlap in their container ids/],
      ['overlapping host ids', podConfig(NamespaceMode.POD, [ok, { container_id: 70000, host_id: 300010, length: 10 }]), /uids: \[0\] and \[1\] overlap in their host ids/],
      ['past 2^32', podConfig(NamespaceMode.POD, [{ container_id: 0, host_id: 4294967000, length: 65536 }]), /uids\[0\]: host ids 4294967000\+65536 overflow 2\^32/],
      ['container id 0 unmapped', podConfig(NamespaceMode.POD, [{ container_id: 1, host_id: 300000, length: 10 }]), /uids: container id 0 is not mapped/],
      ['an empty range', podConfig(NamespaceMode.POD, [{ container_id: 0, host_id: 300000, length: 0 }]), /uids\[0\]\.length must be at least 1/],
      ['bad gids only', podConfig(NamespaceMode.POD, [ok], [{ container_id: 5, host_id: 300000, length: 10 }]), /gids: container id 0 is not mapped/],
      ['NODE with mappings', podConfig(NamespaceMode.NODE, [ok]), /mode NODE takes no mappings/],
    ];
    const before = (await c.runtime('ListPodSandbox', {})).items.length;
    for (const [what, config, message] of cases) {
      let err: (Error & { details?: string }) | undefined;
      await c.runtime('RunPodSandbox', { config }).catch((e: Error & { details?: string }) => (err = e));
      assert.ok(err, `${what}: accepted`);
      assert.equal(await statusCode(Promise.reject(err)), INVALID_ARGUMENT, `${what}: ${err.message}`);
      assert.match(err.details ?? err.message, new RegExp(field), `${what}: ${err.details ?? err.message}`);
      assert.match(err.details ?? err.message, message, `${what}: ${err.details ?? err.message}`);
    }
    assert.equal((await c.runtime('ListPodSandbox', {})).items.length, before, 'no pod was made');
  });
});
