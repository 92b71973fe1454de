// The shim's AppArmor and SELinux steps against this kernel: a config.json naming a
// profile or label the kernel cannot enter fails create (or exec) with a message naming
// it, and leaves no process, cgroup or container behind; none named, nothing is written.
// (What is written, in which order, is test_lsm.c's, through a recording lsm_ops.)
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { ShimError } from '../../src/shim/client';
import { TestPod, makeBundle, readCriLog, tempDir } from './fixtures';

const hasApparmor = (() => {
  try {
    return fs.readFileSync('/sys/module/apparmor/parameters/enabled', 'utf8').trim() === 'Y';
  } catch {
    return false;
  }
})();
const hasSelinux = fs.existsSync('/sys/fs/selinux/enforce');

describe('shim LSM steps on this kernel', function () {
  let t: TestPod;
  before(async () => {
    t = await TestPod.start({ hostname: 'lsmpod' });
  });
  after(async () => {
    await t.stop();
  });

  const refused = (id: string, edit: Parameters<typeof makeBundle>[0]['edit'], re: RegExp) => t.createRefused(id, makeBundle({ id, args: ['true'], edit }), re);

  it('fails create for an AppArmor profile the kernel cannot enter, naming the profile', async function () {
    if (hasApparmor) {
      console.log('      (skipped: AppArmor is enabled on this host; e2e/cri/lsm.test.ts runs it for real)');
      this.skip();
    }
    await refused('aa', (s) => (s.process.apparmorProfile = 'skiff-test-profile'), /process\.apparmorProfile "skiff-test-profile".*\/proc\/thread-self\/attr\/(apparmor\/)?exec/);
  });

  it('fails create for an SELinux label the kernel cannot enter, naming the label', async function () {
    if (hasSelinux) {
      console.log('      (skipped: SELinux is enabled on this host; e2e/cri/lsm.test.ts runs it for real)');
      this.skip();
    }
    await refused('se', (s) => (s.process.selinuxLabel = 'system_u:system_r:container_t:s0:c1,c2'), /process\.selinuxLabel "system_u:system_r:container_t:s0:c1,c2"/);
  });

  it('fails an exec naming a profile the kernel cannot enter; the container keeps running', async function () {
    if (hasApparmor) {
      console.log('      (skipped: AppArmor is enabled on this host)');
      this.skip();
    }
    const log = path.join(tempDir(), 'c.log');
    await t.run({ id: 'host', args: ['sleep', '1000'], logPath: log });
    const base = { args: ['echo', 'hi'], env: ['PATH=/bin'], cwd: '/', user: { uid: 0, gid: 0 } };
    await assert.rejects(t.client.execSync({ id: 'host', process: { ...base, apparmorProfile: 'skiff-test-profile' } }), (e: ShimError) =>
      /process\.apparmorProfile "skiff-test-profile"/.test(e.message),
    );
    const ok = await t.client.execSync({ id: 'host', process: base });
    assert.deepEqual([ok.exitCode, ok.stdout.toString()], [0, 'hi\n']);
    assert.equal((await t.client.state({ id: 'host' })).status, 'running');
    await t.client.kill({ id: 'host', signal: 9 });
    await t.client.wait({ id: 'host' });
    await t.client.delete({ id: 'host' });
    assert.deepEqual(readCriLog(log), []);
  });

  it('refuses a label with a quote or newline before making anything', async () => {
    await refused('bad', (s) => (s.linux.mountLabel = 'a"b'), /linux\.mountLabel: "a"b" has a NUL, newline or quote/);
  });
});
