// UpdatePodSandboxResources (in-place pod resize) on a real skiffd over gRPC: the pod cgroup
// skiff owns gets the new resources plus overhead, a kubelet-owned one is left alone, the
// record survives a restart and shows in PodSandboxStatus, bad values change nothing.
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import type { LinuxContainerResources, PodSandboxConfig } from '../../src/cri/gen/cri';
import type { Reply } from '../../src/cri/server';
import { statusCode } from '../fixtures/grpc';
import { startTestNode, TestNode } from '../fixtures/node';
import { TestSkiffd } from '../fixtures/skiffd';

const INVALID_ARGUMENT = 3;
const NOT_FOUND = 5;
const MiB = 1 << 20;

/** A limit file of a cgroup: the v1 controller's file, else the cgroup2 one. */
function cgroupFile(cg: string, v1: [controller: string, file: string], v2: string): string {
  const v1Path = `/sys/fs/cgroup/${v1[0]}${cg}/${v1[1]}`;
  return fs.existsSync(`/sys/fs/cgroup/${v1[0]}${cg}`) ? v1Path : `/sys/fs/cgroup${cg}/${v2}`;
}

/** The limits of cgroup `cg` the tests look at, as the host shows them. */
function limits(cg: string): { memory: string; quota: string; shares: string } {
  const read = (v1: [string, string], v2: string) => fs.readFileSync(cgroupFile(cg, v1, v2), 'utf8').trim();
  return { memory: read(['memory', 'memory.limit_in_bytes'], 'memory.max'), quota: read(['cpu', 'cpu.cfs_quota_us'], 'cpu.max'), shares: read(['cpu', 'cpu.shares'], 'cpu.weight') };
}

/** What v1 shows for "no memory limit" (a page-aligned 2^63-1), or v2's "max". */
const unlimitedMemory = (cg: string) => cgroupFile(cg, ['memory', 'x'], 'x').startsWith('/sys/fs/cgroup/memory') ? String(2n ** 63n - 4096n) : 'max';

describe('UpdatePodSandboxResources (skiffd over gRPC)', function () {
  this.timeout(180_000);
  let node: TestNode;
  let skiffd: TestSkiffd;
  let seq = 0;

  const runPod = async (linux: Reply<PodSandboxConfig>['linux']) => {
    const n = ++seq;
    const config: Reply<PodSandboxConfig> = {
      metadata: { name: `resize${n}`, namespace: 'e2e', uid: `resize-uid-${n}`, attempt: 0 },
      hostname: `resize${n}`,
      log_directory: path.join(skiffd.dir, 'logs', `resize${n}`),
      linux,
    };
    const { pod_sandbox_id } = await skiffd.client.runtime('RunPodSandbox', { config });
    return { id: pod_sandbox_id, config, cgroup: `${skiffd.cgroupParent}/skiff-pod-${pod_sandbox_id}` };
  };
  const update = (id: string, resources: Reply<LinuxContainerResources> | null, overhead: Reply<LinuxContainerResources> | null = null) =>
    skiffd.client.runtime('UpdatePodSandboxResources', { pod_sandbox_id: id, resources, overhead });
  const verbose = async (id: string) => JSON.parse((await skiffd.client.runtime('PodSandboxStatus', { pod_sandbox_id: id, verbose: true })).info.info);
  /** The gRPC error of a call that must fail. */
  const failure = async (p: Promise<unknown>, what: string) => {
    try {
      await p;
    } catch (e) {
      return e as { code: number; details: string };
    }
    throw new Error(`the call succeeded: ${what}`);
  };

  const resources = { memory_limit_in_bytes: 64 * MiB, cpu_quota: 50_000, cpu_period: 100_000, cpu_shares: 512 };
  const overhead = { memory_limit_in_bytes: 16 * MiB, cpu_quota: 5_000, cpu_period: 50_000, cpu_shares: 128 };
  const v1 = (cg: string) => fs.existsSync(`/sys/fs/cgroup/cpu${cg}`);

  before(async () => {
    node = await startTestNode();
    skiffd = node.skiffd;
  });
  after(async () => {
    await node?.stop();
  });

  it('sets the new resources plus overhead on the pod cgroup skiff made, and keeps them across a restart', async () => {
    const pod = await runPod({ resources, overhead });
    const before = limits(pod.cgroup);
    if (v1(pod.cgroup)) assert.deepEqual(before, { memory: String(80 * MiB), quota: '60000', shares: '640' }, 'as RunPodSandbox set them');

    const bigger = { memory_limit_in_bytes: 128 * MiB, cpu_quota: 100_000, cpu_period: 100_000, cpu_shares: 1024 };
    await update(pod.id, bigger, overhead);
    const after = limits(pod.cgroup);
    if (v1(pod.cgroup)) assert.deepEqual(after, { memory: String(144 * MiB), quota: '110000', shares: '1152' }, '128 MiB + 16 MiB; 100 ms + 5 ms per 50 ms; 1024 + 128');
    else assert.deepEqual({ memory: after.memory, quota: after.quota }, { memory: String(144 * MiB), quota: '110000 100000' });

    const shown = await verbose(pod.id);
    assert.equal(shown.resources.linux.memory_limit_in_bytes, 128 * MiB);
    assert.equal(shown.resources.linux.cpu_quota, 100_000);
    assert.equal(shown.overhead.linux.memory_limit_in_bytes, 16 * MiB);
    assert.equal(typeof shown.resourcesUpdatedAt, 'number');

    await skiffd.kill();
    await skiffd.restart();
    const again = await verbose(pod.id);
    assert.deepEqual({ resources: again.resources, overhead: again.overhead, at: again.resourcesUpdatedAt }, { resources: shown.resources, overhead: shown.overhead, at: shown.resourcesUpdatedAt }, 'the record survives a restart');
    assert.deepEqual(limits(pod.cgroup), after, 'and so does the cgroup');

    // A pod whose containers lost their limits: the pod cgroup's are lifted.
    await update(pod.id, { cpu_shares: 1024, cpu_quota: -1, cpu_period: 100_000 });
    const lifted = limits(pod.cgroup);
    assert.equal(lifted.memory, unlimitedMemory(pod.cgroup));
    assert.equal(lifted.quota, v1(pod.cgroup) ? '-1' : 'max 100000');
    assert.equal((await verbose(pod.id)).overhead, null);
  });

  it('shows the resources of RunPodSandbox before any update', async () => {
    const pod = await runPod({ resources, overhead });
    const shown = await verbose(pod.id);
    assert.equal(shown.resources.linux.memory_limit_in_bytes, 64 * MiB);
    assert.equal(shown.overhead.linux.cpu_shares, 128);
    assert.equal(shown.resourcesUpdatedAt, null);
  });

  it("records the resources of a pod in kubelet's cgroup and leaves that cgroup alone", async () => {
    const parent = `${skiffd.cgroupParent}/kubepods/pod-resize`;
    const pod = await runPod({ cgroup_parent: parent, resources });
    const before = limits(parent);
    await update(pod.id, { ...resources, memory_limit_in_bytes: 32 * MiB, cpu_shares: 2048 }, overhead);
    assert.deepEqual(limits(parent), before, "kubelet's pod cgroup is as it was");
    const shown = await verbose(pod.id);
    assert.equal(shown.cgroupOwned, false);
    assert.equal(shown.resources.linux.memory_limit_in_bytes, 32 * MiB);
    assert.equal(shown.overhead.linux.memory_limit_in_bytes, 16 * MiB);
  });

  it('records the resources of a pod that is not ready, as containerd and CRI-O do', async () => {
    const pod = await runPod({ resources });
    await skiffd.client.runtime('StopPodSandbox', { pod_sandbox_id: pod.id });
    await update(pod.id, { ...resources, cpu_shares: 300 });
    assert.equal((await verbose(pod.id)).resources.linux.cpu_shares, 300);
  });

  it('answers INVALID_ARGUMENT naming the field for bad values, and changes neither the cgroup nor the record', async () => {
    const pod = await runPod({ resources, overhead });
    await update(pod.id, resources, overhead);
    const files = limits(pod.cgroup);
    const record = await verbose(pod.id);
    // Each also asks for new CPU shares, written before the bad value is reached.
    const shares = 4000;
    const cases: [Reply<LinuxContainerResources>, Reply<LinuxContainerResources> | null, string][] = [
      [{ memory_limit_in_bytes: -1 }, null, 'resources.memory_limit_in_bytes'],
      [{ cpu_shares: shares, cpu_quota: 20_000, cpu_period: 0 }, null, 'resources.cpu_quota'],
      [{ cpu_shares: 1 }, null, 'resources.cpu_shares'],
      [{ cpu_shares: shares, cpu_period: 10 }, null, 'resources.cpu_period'],
      [{ cpu_shares: shares, cpuset_cpus: '0-' }, null, 'resources.cpuset_cpus'],
      [{ cpu_shares: shares, memory_limit_in_bytes: 2 ** 62 + 1 }, null, 'resources.memory_limit_in_bytes'],
      [{ cpu_shares: shares }, { memory_limit_in_bytes: -3 }, 'overhead.memory_limit_in_bytes'],
      [{ cpu_shares: shares, unified: { '../../memory.max': '1' } }, null, 'resources.unified'],
      // These pass skiffd's checks; the kernel side refuses them after the shares were written.
      [{ cpu_shares: shares, memory_limit_in_bytes: 96 * MiB, hugepage_limits: [{ page_size: '3MB', limit: 2 * MiB }] }, null, 'hugepage_limits[0].page_size'],
      [{ cpu_shares: shares, unified: { 'nosuch.file': '1' } }, null, 'unified["nosuch.file"]'],
    ];
    for (const [res, ovh, field] of cases) {
      const e = await failure(update(pod.id, { ...resources, ...res }, ovh ?? overhead), field);
      assert.equal(e.code, INVALID_ARGUMENT, `${field}: ${e.details}`);
      assert.ok(e.details.includes(field), `"${e.details}" names ${field}`);
      assert.deepEqual(limits(pod.cgroup), files, `${field}: the cgroup is as it was`);
    }
    assert.deepEqual(await verbose(pod.id), record, 'the record is as it was');
  });

  it('refuses a memory limit below what the pod uses when the kernel does, leaving everything as it was', async function () {
    const swap = fs.readFileSync('/proc/swaps', 'utf8').trim().split('\n').length > 1;
    const pod = await runPod({ resources, overhead });
    if (!v1(pod.cgroup) || swap) this.skip(); // v2 OOM-kills instead of refusing; swap would take the pages
    const { container_id } = await skiffd.client.runtime('CreateContainer', {
      pod_sandbox_id: pod.id,
      config: { metadata: { name: 'hog', attempt: 0 }, image: { image: 'busybox' }, command: ['sh', '-c', 'dd if=/dev/zero of=/dev/shm/fill bs=1M count=24 && touch /dev/shm/done && sleep 1000'] },
      sandbox_config: pod.config,
    });
    await skiffd.client.runtime('StartContainer', { container_id });
    const deadline = Date.now() + 60_000;
    const usage = () => Number(fs.readFileSync(`/sys/fs/cgroup/memory${pod.cgroup}/memory.usage_in_bytes`, 'utf8'));
    while (usage() < 24 * MiB) {
      assert.ok(Date.now() < deadline, `the pod never used 24 MiB (${usage()})`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const files = limits(pod.cgroup);
    const record = await verbose(pod.id);
    const e = await failure(update(pod.id, { ...resources, cpu_shares: 4000, memory_limit_in_bytes: 4 * MiB }, overhead), 'a memory limit below the usage');
    assert.equal(e.code, INVALID_ARGUMENT, e.details);
    assert.ok(e.details.includes('memory_limit_in_bytes'), e.details);
    assert.deepEqual(limits(pod.cgroup), files);
    assert.deepEqual(await verbose(pod.id), record, 'the record is as it was');
  });

  it('finishes a resize a crash interrupted, or goes back to the resources before it', async () => {
    const ok = await runPod({ resources, overhead });
    const refused = await runPod({ resources, overhead });
    const refusedBefore = limits(refused.cgroup);
    await skiffd.kill();
    // What updateResources records before it touches the cgroup.
    const pending = (id: string, res: Reply<LinuxContainerResources>) => {
      const file = path.join(skiffd.root, 'metadata', 'pods', `${id}.json`);
      const record = JSON.parse(fs.readFileSync(file, 'utf8'));
      const full = { ...record.config.linux.resources, ...res };
      record.podResources = { resources: full, overhead: record.config.linux.overhead, updatedAt: 1, pending: { previous: null } };
      fs.writeFileSync(file, JSON.stringify(record));
    };
    pending(ok.id, { memory_limit_in_bytes: 100 * MiB });
    pending(refused.id, { memory_limit_in_bytes: 100 * MiB, hugepage_limits: [{ page_size: '3MB', limit: 2 * MiB }] });
    await skiffd.restart();
    assert.equal(limits(ok.cgroup).memory, String(116 * MiB), 'applied at start-up');
    const shown = await verbose(ok.id);
    assert.equal(shown.resources.linux.memory_limit_in_bytes, 100 * MiB);
    assert.equal(shown.resourcesUpdatedAt, 1);
    assert.deepEqual(limits(refused.cgroup), refusedBefore, 'the cgroup refused it: unchanged');
    const back = await verbose(refused.id);
    assert.equal(back.resources.linux.memory_limit_in_bytes, 64 * MiB, "back to RunPodSandbox's resources");
    assert.equal(back.resourcesUpdatedAt, null);
    for (const id of [ok.id, refused.id])
      assert.equal(JSON.parse(fs.readFileSync(path.join(skiffd.root, 'metadata', 'pods', `${id}.json`), 'utf8')).podResources?.pending, undefined);
  });

  it('answers NOT_FOUND for an unknown pod and INVALID_ARGUMENT for none', async () => {
    assert.equal(await statusCode(update('f'.repeat(64), resources)), NOT_FOUND);
    assert.equal(await statusCode(update('', resources)), INVALID_ARGUMENT);
  });
});
