// The shim on a pure cgroup v2 host. This project's host is hybrid (v1
// controllers, cgroup2 at /sys/fs/cgroup/unified), so the shim runs in a
// private mount namespace where /sys/fs/cgroup is that cgroup2 hierarchy:
// only the controllers it holds (hugetlb here) can be limited, but cgroup
// creation, process placement, the BPF device filter, freezing and removal
// take their v2 paths.
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { TestPod, CGROUP_PARENT, SHIM_BINARY, tempDir } from './fixtures';

const PROC = { env: ['PATH=/bin'], cwd: '/' };
const UNIFIED = '/sys/fs/cgroup/unified';

describe('shim on a cgroup v2 host', function () {
  let t: TestPod;
  before(async function () {
    if (fs.existsSync('/sys/fs/cgroup/cgroup.controllers')) {
      // A real v2 host: the other suites already run on v2.
      console.log('      (skipped: this host is cgroup v2; the other suites cover it)');
      this.skip();
    }
    if (!fs.existsSync(path.join(UNIFIED, 'cgroup.controllers'))) {
      console.log(`      (skipped: no cgroup2 hierarchy at ${UNIFIED})`);
      this.skip();
    }
    const wrapper = path.join(tempDir(), 'shim-on-v2');
    fs.writeFileSync(
      wrapper,
      `#!/bin/sh\nexec unshare -m --propagation private sh -c 'mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec "$0" "$@"' ${SHIM_BINARY} "$@"\n`,
      { mode: 0o755 },
    );
    t = await TestPod.start({ hostname: 'v2pod' }, wrapper);
  });
  after(async () => {
    if (t) await t.stop();
  });

  it('creates the container cgroup on cgroup2 and removes it on delete', async () => {
    await t.run({ id: 'v2', args: ['sleep', '1000'] });
    const dir = path.join(UNIFIED, CGROUP_PARENT, 'v2');
    const pid = (await t.client.state({ id: 'v2' })).pid;
    assert.ok(fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').includes(String(pid)));
    // Inside, the cgroup mount is cgroup2 too.
    const r = await t.client.execSync({ id: 'v2', process: { args: ['sh', '-c', 'cat /proc/self/cgroup; ls /sys/fs/cgroup/cgroup.procs'], ...PROC } });
    assert.match(r.stdout.toString(), /^0::/m);
    await t.client.delete({ id: 'v2', force: true });
    assert.equal(fs.existsSync(dir), false);
  });

  it('enforces device rules with a BPF program, allowing the default devices', async () => {
    await t.run({
      id: 'dev2',
      args: ['sleep', '1000'],
      edit: (s) => {
        s.linux.resources = { devices: [{ allow: false, access: 'rwm' }, { allow: true, type: 'c', major: 1, minor: 1, access: 'm' }] };
        for (const set of ['bounding', 'effective', 'permitted'] as const) s.process.capabilities![set]!.push('CAP_SYS_ADMIN');
      },
    });
    const r = await t.client.execSync({
      id: 'dev2',
      process: {
        args: ['sh', '-c', 'head -c 3 /dev/zero | wc -c; echo ok > /dev/null && echo null-ok; mknod /tmp/mem c 1 1 && echo made; cat /tmp/mem > /dev/null || echo read-denied; mknod /tmp/port c 1 4 || echo mknod-denied'],
        ...PROC,
      },
    });
    const out = r.stdout.toString().split('\n');
    assert.deepEqual(out.slice(0, 5), ['3', 'null-ok', 'made', 'read-denied', 'mknod-denied'], r.stderr.toString());
    await t.client.delete({ id: 'dev2', force: true });
  });

  it('applies a controller the cgroup2 hierarchy holds (hugetlb) and refuses one it does not', async function () {
    const controllers = fs.readFileSync(path.join(UNIFIED, 'cgroup.controllers'), 'utf8');
    if (!/\bhugetlb\b/.test(controllers) || !fs.existsSync('/sys/kernel/mm/hugepages/hugepages-2048kB')) {
      console.log('      (skipped: hugetlb is not on the cgroup2 hierarchy)');
      this.skip();
    }
    await t.run({ id: 'huge2', args: ['sleep', '1000'], edit: (s) => (s.linux.resources = { hugepageLimits: [{ pageSize: '2MB', limit: 2097152 }] }) });
    assert.equal(fs.readFileSync(path.join(UNIFIED, CGROUP_PARENT, 'huge2', 'hugetlb.2MB.max'), 'utf8').trim(), '2097152');
    await t.client.delete({ id: 'huge2', force: true });
    if (!/\bmemory\b/.test(controllers)) {
      const { makeBundle } = await import('./fixtures');
      const b = makeBundle({ id: 'mem2', args: ['true'], edit: (s) => (s.linux.resources = { memory: { limit: 1 << 24 } }) });
      await assert.rejects(t.client.create({ id: 'mem2', bundle: b }), /memory\.max|memory/);
      assert.equal(fs.existsSync(path.join(UNIFIED, CGROUP_PARENT, 'mem2')), false);
    }
  });
});
