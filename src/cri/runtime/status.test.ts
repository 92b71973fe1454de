import assert from 'node:assert/strict';
import { KERNEL_FEATURES, KernelFeatureName, KernelFeatures } from '../../shim/features';
import { status, usernsUnavailable } from './status';

const cni = { status: async () => ({ ready: true }) };
const kernel = (lacks: KernelFeatureName[] = []): KernelFeatures =>
  Object.fromEntries(KERNEL_FEATURES.map((n) => [n, lacks.includes(n) ? { supported: false, error: 'ENOSYS' } : { supported: true }])) as KernelFeatures;
const ask = (k: KernelFeatures, verbose = false, userns = '') => status(cni, { default: 'skiff', userns, usernsUnavailable: usernsUnavailable(k) }, k, () => ({}))({ verbose });

describe('Status features from the kernel features', () => {
  it('reports every feature, on both handlers, on a kernel that has them all', async () => {
    const r = await ask(kernel());
    assert.deepEqual(r.runtime_handlers?.map((h) => h?.name), ['', 'skiff']);
    for (const h of r.runtime_handlers!) assert.deepEqual(h?.features, { recursive_read_only_mounts: true, user_namespaces: true });
    assert.deepEqual(r.features, { supplemental_groups_policy: true, user_namespaces_host_network: true });
  });

  it('does not report recursive read-only mounts to a kernel without mount_setattr', async () => {
    const r = await ask(kernel(['recursiveReadOnlyMounts']));
    assert.deepEqual(r.runtime_handlers?.[0]?.features, { recursive_read_only_mounts: false, user_namespaces: true });
  });

  it('does not report user namespaces without id-mapped mounts, nor without user namespaces (and then no host network either)', async () => {
    assert.deepEqual((await ask(kernel(['idmapMounts']))).runtime_handlers?.[1]?.features, { recursive_read_only_mounts: true, user_namespaces: false });
    const r = await ask(kernel(['userNamespaces']));
    assert.equal(r.runtime_handlers?.[1]?.features?.user_namespaces, false);
    assert.deepEqual(r.features, { supplemental_groups_policy: true, user_namespaces_host_network: false });
  });

  it('does not report user namespaces with the host network when /sys cannot be had there', async () => {
    const r = await ask(kernel(['userNamespacesHostNetwork']));
    assert.equal(r.runtime_handlers?.[1]?.features?.user_namespaces, true);
    assert.equal(r.features?.user_namespaces_host_network, false);
  });

  it('keeps supplemental_groups_policy, which needs no kernel support', async () => {
    assert.equal((await ask(kernel([...KERNEL_FEATURES]))).features?.supplemental_groups_policy, true);
  });

  it('lists the userns handler, with user_namespaces, only where the kernel can run its pods', async () => {
    const r = await ask(kernel(), false, 'skiff-userns');
    assert.deepEqual(r.runtime_handlers?.map((h) => h?.name), ['', 'skiff', 'skiff-userns']);
    assert.deepEqual(r.runtime_handlers?.[2]?.features, { recursive_read_only_mounts: true, user_namespaces: true });
    for (const lacks of ['userNamespaces', 'idmapMounts'] as const) {
      assert.deepEqual((await ask(kernel([lacks]), false, 'skiff-userns')).runtime_handlers?.map((h) => h?.name), ['', 'skiff'], lacks);
      assert.equal(usernsUnavailable(kernel([lacks])), `${lacks}: ENOSYS`);
    }
    assert.equal(usernsUnavailable(kernel(['recursiveReadOnlyMounts', 'userNamespacesHostNetwork'])), '');
  });

  it('shows the kernel features with their reasons in the verbose info', async () => {
    const r = await ask(kernel(['idmapMounts']), true);
    assert.deepEqual(JSON.parse(r.info!.kernelFeatures!).idmapMounts, { supported: false, error: 'ENOSYS' });
    assert.deepEqual((await ask(kernel())).info, {});
  });
});
