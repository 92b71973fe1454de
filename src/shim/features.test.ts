import assert from 'node:assert/strict';
import { execFile } from 'child_process';
import * as path from 'path';
import { KERNEL_FEATURES, parseKernelFeatures, probeKernelFeatures } from './features';

const SHIM = path.resolve(__dirname, '../../../shim/build/skiff-shim');

describe('kernel features (skiff-shim --features)', () => {
  it('finds every feature on this host (Linux 6.x, run as root)', async () => {
    const f = await probeKernelFeatures(SHIM);
    for (const name of KERNEL_FEATURES) assert.deepEqual(f[name], { supported: true }, name);
  });

  it('reports each feature unsupported, with the call that failed, where the kernel refuses it (an unprivileged caller)', async () => {
    const stdout = await new Promise<string>((resolve, reject) =>
      execFile(SHIM, ['--features'], { uid: 65534, gid: 65534 }, (err, out) => (err ? reject(err) : resolve(out))),
    );
    const f = parseKernelFeatures(stdout);
    for (const name of KERNEL_FEATURES) assert.equal(f[name].supported, false, name);
    assert.match(f.recursiveReadOnlyMounts.error!, /^fsopen tmpfs: /);
    assert.match(f.idmapMounts.error!, /user namespace/);
  });

  it('counts a feature missing from the answer, or an answer that is no JSON, as unsupported', () => {
    const f = parseKernelFeatures('{"recursiveReadOnlyMounts":{"supported":true},"userNamespaces":{"supported":"yes"}}');
    assert.deepEqual(f.recursiveReadOnlyMounts, { supported: true });
    assert.equal(f.userNamespaces.supported, false);
    assert.equal(f.idmapMounts.supported, false);
    for (const name of KERNEL_FEATURES) assert.equal(parseKernelFeatures('Segmentation fault')[name].supported, false);
  });

  it('reports nothing supported when the probe cannot run', async () => {
    const f = await probeKernelFeatures('/nonexistent/skiff-shim');
    for (const name of KERNEL_FEATURES) {
      assert.equal(f[name].supported, false);
      assert.match(f[name].error!, /skiff-shim --features failed/);
    }
  });
});
