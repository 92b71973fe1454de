// Bad input: a clear error with the right code, and nothing left behind (no
// process, cgroup or mount; nothing written outside the rootfs).
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { ShimError } from '../../src/shim/client';
import { TestPod, makeBundle, mountsUnder, tempDir, buildBusyboxRootfs } from './fixtures';

describe('shim bad input', function () {
  let t: TestPod;
  before(async () => {
    t = await TestPod.start({ hostname: 'badpod' });
  });
  after(async () => {
    await t.stop();
  });

  const refused = (id: string, bundle: string, code: string, re: RegExp) => t.createRefused(id, bundle, re, code);

  it('refuses malformed config.json', async () => {
    const b = tempDir();
    fs.writeFileSync(path.join(b, 'config.json'), '{"ociVersion": "1.0.2", "process": ');
    await refused('bad1', b, 'INVALID_ARGUMENT', /malformed JSON/);
  });

  it('refuses a config without process.args', async () => {
    await refused('bad2', makeBundle({ id: 'bad2', args: [] }), 'INVALID_ARGUMENT', /process\.args/);
  });

  it('refuses an unknown capability, naming it', async () => {
    const b = makeBundle({ id: 'bad3', args: ['true'], edit: (s) => s.process.capabilities!.effective!.push('CAP_FLY') });
    await refused('bad3', b, 'INVALID_ARGUMENT', /capabilities\.effective\[\d+\]: unknown capability "CAP_FLY"/);
  });

  it('refuses an unknown namespace type', async () => {
    const b = makeBundle({ id: 'bad4', args: ['true'], namespaces: [{ type: 'mount' }, { type: 'galaxy' }] });
    await refused('bad4', b, 'INVALID_ARGUMENT', /linux\.namespaces\[1\]\.type: unknown namespace type "galaxy"/);
  });

  it('refuses a namespace path of the wrong kind', async () => {
    const b = makeBundle({ id: 'bad5', args: ['true'], namespaces: [{ type: 'mount' }, { type: 'network', path: '/proc/self/ns/ipc' }] });
    await refused('bad5', b, 'INVALID_ARGUMENT', /not a network namespace/);
  });

  it('refuses a mount destination with ".."', async () => {
    const b = makeBundle({ id: 'bad6', args: ['true'], edit: (s) => s.mounts.push({ destination: '/tmp/../../etc', type: 'tmpfs', source: 'tmpfs' }) });
    await refused('bad6', b, 'INVALID_ARGUMENT', /mounts\[\d+\]\.destination: "\.\." not allowed/);
  });

  it('keeps a mount through a symlink that points out of the rootfs inside the rootfs', async () => {
    const dir = tempDir();
    const rootfs = buildBusyboxRootfs(path.join(dir, 'rootfs'));
    const outside = tempDir();
    fs.symlinkSync(outside, path.join(rootfs, 'escape')); // absolute link to a host dir
    fs.symlinkSync('../../../../../../..' + outside, path.join(rootfs, 'escape2')); // and a relative one
    const b = makeBundle({
      id: 'sym',
      args: ['sh', '-c', 'ls /escape/target /escape2/target2'],
      edit: (s) => {
        s.root.path = rootfs;
        s.mounts.push({ destination: '/escape/target', type: 'tmpfs', source: 'tmpfs' });
        s.mounts.push({ destination: '/escape2/target2', type: 'tmpfs', source: 'tmpfs' });
      },
    });
    await t.client.create({ id: 'sym', bundle: b });
    await t.client.start({ id: 'sym' });
    // Both mounts exist in the container, reached through the links inside its root.
    assert.equal((await t.client.wait({ id: 'sym' })).exitCode, 0);
    await t.client.delete({ id: 'sym' });
    assert.deepEqual(fs.readdirSync(outside), [], 'nothing created on the host side');
    assert.deepEqual(mountsUnder(outside), []);
  });

  it('fails create for an absent binary with "executable file not found"', async () => {
    await refused('bad7', makeBundle({ id: 'bad7', args: ['definitely-not-here'] }), 'NOT_FOUND', /executable file not found in \$PATH: "definitely-not-here"|"definitely-not-here": executable file not found in \$PATH/);
  });

  it('fails create for a file that is not executable', async () => {
    await refused('bad8', makeBundle({ id: 'bad8', args: ['/etc/passwd'] }), 'INTERNAL', /\/etc\/passwd.*Permission denied/);
  });

  it('refuses absurd rlimits', async () => {
    const b = makeBundle({ id: 'bad9', args: ['true'], edit: (s) => (s.process.rlimits = [{ type: 'RLIMIT_NOFILE', soft: 2048, hard: 1024 }]) });
    await refused('bad9', b, 'INVALID_ARGUMENT', /soft limit 2048 exceeds hard limit 1024/);
    const b2 = makeBundle({ id: 'bad10', args: ['true'], edit: (s) => (s.process.rlimits = [{ type: 'RLIMIT_WINGS', soft: 1, hard: 1 }]) });
    await refused('bad10', b2, 'INVALID_ARGUMENT', /unknown rlimit "RLIMIT_WINGS"/);
    const b3 = makeBundle({ id: 'bad11', args: ['true'], edit: (s) => (s.process.rlimits = [{ type: 'RLIMIT_NOFILE', soft: 1 << 30, hard: 1 << 30 }]) });
    await refused('bad11', b3, 'INTERNAL', /setrlimit RLIMIT_NOFILE/);
  });

  it('refuses uids beyond 2^31 and bad cgroup values', async () => {
    await refused('bad12', makeBundle({ id: 'bad12', args: ['true'], edit: (s) => (s.process.user = { uid: 4294967296, gid: 0 }) }), 'INVALID_ARGUMENT', /user\.uid/);
    await refused('bad13', makeBundle({ id: 'bad13', args: ['true'], edit: (s) => (s.linux.resources = { cpu: { period: 5 } }) }), 'INVALID_ARGUMENT', /cpu\.period/);
  });

  it('refuses an unsupported seccomp action', async () => {
    const b = makeBundle({ id: 'bad14', args: ['true'], edit: (s) => (s.linux.seccomp = { defaultAction: 'SCMP_ACT_EXPLODE' }) });
    await refused('bad14', b, 'INVALID_ARGUMENT', /linux\.seccomp\.defaultAction: unknown action "SCMP_ACT_EXPLODE"/);
  });

  it('refuses bad requests with clear errors', async () => {
    await assert.rejects(t.client.create({ id: '../x', bundle: '/tmp' }), (e: ShimError) => e.code === 'INVALID_ARGUMENT' && /params\.id/.test(e.message));
    await assert.rejects(t.client.create({ id: 'rel', bundle: 'relative/dir' }), (e: ShimError) => e.code === 'INVALID_ARGUMENT');
    await assert.rejects(t.client.create({ id: 'nob', bundle: '/nonexistent/bundle' }), (e: ShimError) => e.code === 'NOT_FOUND');
    await assert.rejects(t.client.kill({ id: 'nobody', signal: 9 }), (e: ShimError) => e.code === 'NOT_FOUND');
    // The shim is still fine.
    assert.equal((await t.client.version()).protocol, 1);
  });
});
