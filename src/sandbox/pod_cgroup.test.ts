import assert from 'node:assert/strict';
import type { LinuxContainerResources } from '../cri/gen/cri';
import { InvalidArgument } from '../errors';
import { criFieldNames, podCgroup, podCgroupUpdate, podLimits } from './pod_cgroup';

const res = (over: Partial<LinuxContainerResources>): LinuxContainerResources => ({
  cpu_period: 0, cpu_quota: 0, cpu_shares: 0, memory_limit_in_bytes: 0, oom_score_adj: 0,
  cpuset_cpus: '', cpuset_mems: '', hugepage_limits: [], unified: {}, memory_swap_limit_in_bytes: 0, ...over,
});
const ID = 'a'.repeat(64);

describe('podLimits', () => {
  it('adds the overhead to the sum of the containers', () => {
    const l = podLimits(res({ memory_limit_in_bytes: 100, cpu_quota: 50_000, cpu_period: 100_000, cpu_shares: 512, hugepage_limits: [{ page_size: '2MB', limit: 4 << 20 }] }),
      res({ memory_limit_in_bytes: 10, cpu_quota: 5_000, cpu_period: 50_000, cpu_shares: 128, hugepage_limits: [{ page_size: '2MB', limit: 2 << 20 }] }))!;
    assert.equal(l.memory_limit_in_bytes, 110);
    assert.equal(l.cpu_period, 100_000);
    assert.equal(l.cpu_quota, 60_000);
    assert.equal(l.cpu_shares, 640);
    assert.deepEqual(l.hugepage_limits, [{ page_size: '2MB', limit: 6 << 20 }]);
  });
  it('keeps a pod unlimited where its containers are', () => {
    const l = podLimits(res({ cpu_shares: 2 }), res({ memory_limit_in_bytes: 10, cpu_quota: 5_000, cpu_shares: 128 }))!;
    assert.equal(l.memory_limit_in_bytes, 0);
    assert.equal(l.cpu_quota, 0);
    assert.equal(l.cpu_shares, 130);
    assert.equal(podLimits(null, null), null);
  });
});

describe('podCgroup', () => {
  it("uses kubelet's cgroup_parent as it is, with no limits of skiff's", () => {
    assert.deepEqual(podCgroup(ID, { parent: '/kubepods/burstable/pod1', overhead: null, resources: res({ memory_limit_in_bytes: 5 }) }, '/kubepods'), { path: '/kubepods/burstable/pod1', owned: false });
  });
  it('makes its own under the default parent, with the limits', () => {
    const cg = podCgroup(ID, { parent: '', overhead: res({ memory_limit_in_bytes: 1 }), resources: res({ memory_limit_in_bytes: 5 }) }, '/kubepods');
    assert.deepEqual(cg, { path: `/kubepods/skiff-pod-${ID}`, owned: true, resources: { memory: { limit: 6 } } });
    assert.deepEqual(podCgroup(ID, { parent: '', resources: null, overhead: null }, '/x'), { path: `/x/skiff-pod-${ID}`, owned: true });
  });
  it('refuses a relative parent or one with ..', () => {
    for (const p of ['kubepods', '/a/../b']) assert.throws(() => podCgroup(ID, { parent: p, overhead: null, resources: null }, '/kubepods'), InvalidArgument);
  });
});

describe('podCgroupUpdate', () => {
  it('sets the same sum as RunPodSandbox', () => {
    const r = res({ memory_limit_in_bytes: 100, cpu_quota: 50_000, cpu_period: 100_000, cpu_shares: 512 });
    const o = res({ memory_limit_in_bytes: 10, cpu_quota: 5_000, cpu_period: 50_000, cpu_shares: 128 });
    const run = podCgroup(ID, { parent: '', overhead: o, resources: r }, '/kubepods').resources;
    assert.deepEqual(podCgroupUpdate(r, o), { ...run, memory: { limit: 110, swap: -1 } });
    assert.deepEqual(podCgroupUpdate(r, o)?.cpu, { shares: 640, quota: 60_000, period: 100_000 });
  });
  it('lifts the memory and CPU limits a pod no longer has', () => {
    assert.deepEqual(podCgroupUpdate(res({ cpu_shares: 1024, cpu_quota: -1, cpu_period: 100_000 }), null), {
      cpu: { quota: -1, shares: 1024 },
      memory: { limit: -1, swap: -1 },
    });
    assert.equal(podCgroupUpdate(null, null), undefined);
  });
});

describe('criFieldNames', () => {
  it("names the CRI fields in a shim's message", () => {
    assert.equal(criFieldNames('pod cgroup: linux.resources.hugepageLimits[1].pageSize: no 3MB pages; linux.resources.memory.limit'),
      'resources (plus overhead): pod cgroup: hugepage_limits[1].page_size: no 3MB pages; memory_limit_in_bytes');
  });
});
