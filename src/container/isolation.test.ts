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
