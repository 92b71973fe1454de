// The node's mount template (--mount-template, --mount-template-fd): made once by skiffd,
// shared by the shims it starts; a shim given none makes its own.
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { MountTemplate } from '../../src/shim/mount_template';
import { SHIM_BINARY, TestPod, cleanupRun, podNamespaces, tempDir } from './fixtures';

const OWN = /made the pod's own mount template/;
const PROC = { env: ['PATH=/bin'], cwd: '/' };

describe('shim mount template from skiffd', function () {
  after(cleanupRun);

  it('is made once, shared by every shim given it, and containers run from it', async () => {
    const template = new MountTemplate();
    const fd = await template.get(SHIM_BINARY, tempDir());
    assert.ok(fd !== undefined, `the template was made: ${template.lastError ?? ''}`);
    assert.equal(await template.get(SHIM_BINARY, tempDir()), fd, 'the same template the second time');
    assert.match(fs.readlinkSync(`/proc/self/fd/${fd}`), /^mnt:\[\d+\]$/);
    const pods: TestPod[] = [];
    try {
      for (const name of ['tmpl-a', 'tmpl-b']) {
        const t = await TestPod.start({ hostname: name }, SHIM_BINARY, undefined, fd);
        pods.push(t);
        await t.run({ id: 'c', args: ['sleep', '1000'], namespaces: podNamespaces(t.pod), edit: (s) => delete s.hostname });
        const r = await t.client.execSync({ id: 'c', process: { args: ['sh', '-c', 'cat /proc/self/mountinfo; ls /'], ...PROC } });
        const out = r.stdout.toString();
        assert.match(out, / \/ ro,/, 'the rootfs is the container\'s root');
        const mountPoints = out.split('\n').map((l) => l.split(' ')[4]);
        assert.ok(mountPoints.includes('/proc') && !mountPoints.includes('/rootfs'), 'nothing of the template is left in the container');
        assert.doesNotMatch(fs.readFileSync(path.join(t.stateDir, 'shim.log'), 'utf8'), OWN);
      }
    } finally {
      for (const t of pods) await t.stop();
      fs.closeSync(fd);
    }
  });

  it('is made by the shim for its pod when none is passed, or what is passed is not a mount namespace', async () => {
    const notNs = fs.openSync('/dev/null', 'r');
    try {
      for (const fd of [undefined, notNs]) {
        const t = await TestPod.start({ hostname: 'tmpl-own' }, SHIM_BINARY, undefined, fd);
        try {
          await t.run({ id: 'c', args: ['true'], namespaces: podNamespaces(t.pod), edit: (s) => delete s.hostname });
          await t.client.wait({ id: 'c' });
          assert.match(fs.readFileSync(path.join(t.stateDir, 'shim.log'), 'utf8'), OWN);
        } finally {
          await t.stop();
        }
      }
    } finally {
      fs.closeSync(notNs);
    }
  });

  it('is not made where its maker fails, which says why', async () => {
    const template = new MountTemplate();
    assert.equal(await template.get(SHIM_BINARY, '/no/such/dir'), undefined);
    assert.match(template.lastError ?? '', /--mount-template/);
  });
});
