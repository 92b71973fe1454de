// A pod's user namespace mappings over gRPC: several ranges work, and mappings the kernel
// would refuse (overlapping, past 2^32, container id 0 unmapped, empty, NODE with mappings)
// are INVALID_ARGUMENT naming the field before anything is made.
import assert from 'node:assert/strict';
import * as path from 'path';
import type { IDMapping, PodSandboxConfig } from '../../src/cri/gen/cri';
import { NamespaceMode } from '../../src/cri/gen/cri';
import type { Reply } from '../../src/cri/server';
import { statusCode } from '../fixtures/grpc';
import { startTestNode, TestNode } from '../fixtures/node';

const INVALID_ARGUMENT = 3;

describe('pod user namespace mappings (skiffd over gRPC)', function () {
  this.timeout(120_000);
  let node: TestNode;
  let seq = 0;

  before(async () => {
    node = await startTestNode();
  });
  after(async () => {
    await node?.stop();
  });

  const podConfig = (mode: NamespaceMode, uids: Reply<IDMapping>[], gids = uids): Reply<PodSandboxConfig> => {
    const name = `userns-${++seq}`;
    return {
      metadata: { name, namespace: 'e2e', uid: `uid-${name}`, attempt: 0 },
      log_directory: path.join(node.skiffd.dir, 'logs', name),
      linux: { security_context: { namespace_options: { network: NamespaceMode.NODE, userns_options: { mode, uids, gids } } } },
    };
  };

  it('maps several ranges: the pod sees each of them', async () => {
    const c = node.skiffd.client;
    const map = [
      { container_id: 0, host_id: 310000, length: 1000 },
      { container_id: 1000, host_id: 320000, length: 64536 },
    ];
    const config = podConfig(NamespaceMode.POD, map);
    const { pod_sandbox_id } = await c.runtime('RunPodSandbox', { config });
    const { container_id } = await c.runtime('CreateContainer', {
      pod_sandbox_id,
      config: { metadata: { name: 'c', attempt: 0 }, image: { image: 'busybox' }, command: ['sleep', '1000'] },
      sandbox_config: config,
    });
    await c.runtime('StartContainer', { container_id });
    const r = await c.runtime('ExecSync', { container_id, cmd: ['cat', '/proc/self/uid_map'], timeout: 30 });
    const lines = Buffer.from(r.stdout).toString().trim().split('\n').map((l) => l.trim().split(/\s+/).map(Number));
    assert.deepEqual(lines, [[0, 310000, 1000], [1000, 320000, 64536]]);
    await c.runtime('StopPodSandbox', { pod_sandbox_id });
    await c.runtime('RemovePodSandbox', { pod_sandbox_id });
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
