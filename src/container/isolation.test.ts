import assert from 'node:assert/strict';
import { isolationFromSpec } from './isolation';
import type { Spec } from '../oci/runtime_spec';

const spec = (process: Partial<Spec['process']> = {}): Spec => ({
  ociVersion: '1.1.0',
  process: { user: { uid: 0, gid: 0 }, args: ['sh'], env: [], cwd: '/', ...process },
  root: { path: '/rootfs' },
  mounts: [],
  linux: { namespaces: [{ type: 'mount' }, { type: 'pid' }] },
});

describe('isolation report: mandatory access control', () => {
  it('a container without a profile or label is LSM-unconfined', () => {
    const i = isolationFromSpec(spec(), false);
    assert.deepEqual([i.lsm, i.lsmUnconfined], [{ apparmor: null, selinux: null }, true]);
  });

  it('an AppArmor profile or an SELinux label confines it, and is named', () => {
    const aa = isolationFromSpec(spec({ apparmorProfile: 'skiff-default' }), false);
    assert.deepEqual([aa.lsm, aa.lsmUnconfined], [{ apparmor: 'skiff-default', selinux: null }, false]);
    const se = isolationFromSpec(spec({ selinuxLabel: 'system_u:system_r:container_t:s0:c1,c2' }), false);
    assert.deepEqual([se.lsm, se.lsmUnconfined], [{ apparmor: null, selinux: 'system_u:system_r:container_t:s0:c1,c2' }, false]);
  });
});

describe('isolation report: unbounded resources', () => {
  const withResources = (resources: NonNullable<Spec['linux']['resources']>): Spec => ({ ...spec(), linux: { ...spec().linux, resources } });

  it('flags memory, pids, cpu and IO for a container its cgroup does not bound', () => {
    assert.deepEqual(isolationFromSpec(spec(), false).unbounded, ['memory', 'pids', 'cpu', 'io']);
    assert.deepEqual(isolationFromSpec(withResources({ cpu: { shares: 1024 } }), false).unbounded, ['memory', 'pids', 'cpu', 'io'], 'shares are a weight, not a quota');
  });

  it('a memory limit, a pids limit, a cpu quota and an IO weight each take their flag away', () => {
    const bounded = isolationFromSpec(withResources({ memory: { limit: 64 << 20 }, pids: { limit: 100 }, cpu: { quota: 50_000, period: 100_000 }, blockIO: { weight: 500 } }), false);
    assert.deepEqual(bounded.unbounded, []);
    assert.deepEqual(bounded.limits, { cpus: 0.5, memoryBytes: 64 << 20, pids: 100 });
    assert.deepEqual(isolationFromSpec(withResources({ pids: { limit: 100 } }), false).unbounded, ['memory', 'cpu', 'io']);
  });

  it('reads the same limits from cgroup v2 unified files, where "max" is no limit', () => {
    const v2 = isolationFromSpec(withResources({ unified: { 'memory.max': '1048576', 'pids.max': '64', 'cpu.max': '25000 100000', 'io.weight': 'default 200' } }), false);
    assert.deepEqual([v2.unbounded, v2.limits], [[], { cpus: 0.25, memoryBytes: 1048576, pids: 64 }]);
    const open = isolationFromSpec(withResources({ unified: { 'memory.max': 'max', 'pids.max': 'max', 'cpu.max': 'max 100000' } }), false);
    assert.deepEqual(open.unbounded, ['memory', 'pids', 'cpu', 'io']);
  });
});
