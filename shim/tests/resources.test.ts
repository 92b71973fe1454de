// cgroup resources: limits applied and read back, OOM kills reported, pids
// limit, live updates and stats.
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { ShimError } from '../../src/shim/client';
import { TestPod, CGROUP_PARENT, cgroupDirs, makeBundle } from './fixtures';

const PROC = { env: ['PATH=/bin'], cwd: '/' };

/** A cgroup file of the container, from the hierarchy that has it. */
function cgFile(id: string, file: string): string | null {
  for (const d of cgroupDirs(`${CGROUP_PARENT}/${id}`)) {
    const f = path.join(d, file);
    if (fs.existsSync(f)) return fs.readFileSync(f, 'utf8').trim();
  }
  return null;
}

describe('shim resources', function () {
  let t: TestPod;
  before(async () => {
    t = await TestPod.start({ hostname: 'respod' });
  });
  after(async () => {
    await t.stop();
  });

  it('applies cpu, memory and pids limits to the container cgroup', async () => {
    await t.run({
      id: 'lim',
      args: ['sleep', '1000'],
      edit: (s) =>
        (s.linux.resources = {
          cpu: { shares: 512, quota: 50000, period: 100000 },
          memory: { limit: 64 * 1024 * 1024 },
          pids: { limit: 32 },
        }),
    });
    const v2 = cgFile('lim', 'memory.max') !== null;
    if (v2) {
      assert.equal(cgFile('lim', 'memory.max'), String(64 * 1024 * 1024));
      assert.equal(cgFile('lim', 'cpu.max'), '50000 100000');
    } else {
      assert.equal(cgFile('lim', 'memory.limit_in_bytes'), String(64 * 1024 * 1024));
      assert.equal(cgFile('lim', 'cpu.shares'), '512');
      assert.equal(cgFile('lim', 'cpu.cfs_quota_us'), '50000');
    }
    assert.equal(cgFile('lim', 'pids.max'), '32');
    // The container sees its own cgroup through its cgroup mount.
    const r = await t.client.execSync({ id: 'lim', process: { args: ['sh', '-c', 'cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max'], ...PROC } });
    assert.equal(r.stdout.toString().trim(), '32');
  });

  it('updates limits of a running container', async () => {
    await t.client.update({ id: 'lim', resources: { memory: { limit: 32 * 1024 * 1024 }, pids: { limit: 16 } } });
    const mem = cgFile('lim', 'memory.max') ?? cgFile('lim', 'memory.limit_in_bytes');
    assert.equal(mem, String(32 * 1024 * 1024));
    assert.equal(cgFile('lim', 'pids.max'), '16');
    await assert.rejects(t.client.update({ id: 'lim', resources: { cpu: { shares: 1 } } }), (e: ShimError) => e.code === 'INVALID_ARGUMENT' && /cpu\.shares/.test(e.message));
  });

  it('reports stats read from the cgroup', async () => {
    const s = await t.client.stats({ id: 'lim' });
    assert.ok(s.timestamp > 0);
    assert.ok(s.memory.usageBytes > 0);
    assert.ok(s.memory.workingSetBytes <= s.memory.usageBytes);
    assert.equal(s.memory.limitBytes, 32 * 1024 * 1024);
    assert.ok(s.cpu.usageNs > 0);
    assert.equal(s.pids.current, 1);
    assert.equal(s.pids.limit, 16);
    assert.ok(s.memory.cacheBytes >= 0 && s.memory.oomKills === 0);
    if (fs.existsSync('/sys/fs/cgroup/memory/memory.memsw.usage_in_bytes')) {
      // v1 with swap accounting: no memsw limit was set, so swap is unlimited.
      assert.equal(typeof s.swap?.usageBytes, 'number');
      assert.equal(s.swap?.limitBytes, null);
    }
    await t.client.delete({ id: 'lim', force: true });
  });

  it('reports a memory-cgroup OOM kill as OOMKilled', async () => {
    await t.run({
      id: 'oom',
      args: ['sh', '-c', 'x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done'],
      edit: (s) => (s.linux.resources = { memory: { limit: 16 * 1024 * 1024, swap: 16 * 1024 * 1024 } }),
    });
    const e = await t.client.wait({ id: 'oom' });
    assert.equal(e.oomKilled, true);
    assert.equal(e.reason, 'OOMKilled');
    assert.equal(e.signal, 9);
    await t.client.delete({ id: 'oom' });
  });

  it('does not report OOMKilled for an ordinary SIGKILL', async () => {
    await t.run({ id: 'nooom', args: ['sleep', '1000'], edit: (s) => (s.linux.resources = { memory: { limit: 16 * 1024 * 1024 } }) });
    await t.client.kill({ id: 'nooom', signal: 9 });
    const e = await t.client.wait({ id: 'nooom' });
    assert.equal(e.oomKilled, false);
    await t.client.delete({ id: 'nooom' });
  });

  it('names the OOM kill and the limit when a container cannot even be set up under its memory limit', async () => {
    const bundle = makeBundle({ id: 'starved', args: ['true'], edit: (s) => (s.linux.resources = { memory: { limit: 64 * 1024 } }) });
    await t.createRefused(
      'starved',
      bundle,
      /^create container "starved": the kernel's OOM killer ended the container process before its command ran: its memory limit of 65536 bytes is too low for it to start$/,
      'RESOURCE_EXHAUSTED',
    );
  });

  it('enforces the pids limit', async () => {
    await t.run({ id: 'pids', args: ['sleep', '1000'], edit: (s) => (s.linux.resources = { pids: { limit: 4 } }) });
    const r = await t.client.execSync({
      id: 'pids',
      process: { args: ['sh', '-c', 'for i in 1 2 3 4 5 6; do sleep 5 & done 2>&1; wait'], ...PROC },
    });
    assert.match(r.stdout.toString() + r.stderr.toString(), /can't fork|Resource temporarily unavailable/);
    await t.client.delete({ id: 'pids', force: true });
  });

  it('applies device rules, always allowing the default devices', async () => {
    await t.run({ id: 'dev', args: ['sleep', '1000'], edit: (s) => (s.linux.resources = { devices: [{ allow: false, access: 'rwm' }] }) });
    const r = await t.client.execSync({
      id: 'dev',
      process: { args: ['sh', '-c', 'echo x > /dev/null && head -c 4 /dev/zero | wc -c; mknod /tmp/mem c 1 1 && echo made'], ...PROC },
    });
    assert.equal(r.stdout.toString().trim(), '4');
    assert.match(r.stderr.toString(), /Operation not permitted/);
    await t.client.delete({ id: 'dev', force: true });
  });

  it('writes hugetlb limits where the host has the controller', async function () {
    const unified = '/sys/fs/cgroup/unified/cgroup.controllers';
    const v2only = fs.existsSync('/sys/fs/cgroup/cgroup.controllers');
    const has =
      fs.existsSync('/sys/kernel/mm/hugepages/hugepages-2048kB') &&
      (fs.existsSync('/sys/fs/cgroup/hugetlb') ||
        (fs.existsSync(unified) && /\bhugetlb\b/.test(fs.readFileSync(unified, 'utf8'))) ||
        (v2only && /\bhugetlb\b/.test(fs.readFileSync('/sys/fs/cgroup/cgroup.controllers', 'utf8'))));
    if (!has) {
      console.log('      (skipped: no hugetlb controller with 2MB pages on this host)');
      this.skip();
    }
    await t.run({ id: 'huge', args: ['sleep', '1000'], edit: (s) => (s.linux.resources = { hugepageLimits: [{ pageSize: '2MB', limit: 4194304 }] }) });
    const v = cgFile('huge', 'hugetlb.2MB.max') ?? cgFile('huge', 'hugetlb.2MB.limit_in_bytes');
    assert.equal(v, '4194304');
    await t.client.delete({ id: 'huge', force: true });
  });
});
