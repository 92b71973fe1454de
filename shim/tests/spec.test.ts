// More of config.json honoured: oomScoreAdj, container sysctls, a container's
// own user namespace, mount propagation, cpuset and unified cgroup files; and
// the socket refusing other users.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { TestPod, CGROUP_PARENT, cgroupDirs, readCriLog, tempDir, waitFor } from './fixtures';

describe('shim spec coverage', function () {
  let t: TestPod;
  before(async () => {
    t = await TestPod.start({ hostname: 'specpod' });
  });
  after(async () => {
    await t.stop();
  });

  async function output(id: string, script: string, edit: Parameters<TestPod['run']>[0]['edit']): Promise<string[]> {
    const log = path.join(tempDir(), 'c.log');
    await t.run({ id, args: ['sh', '-c', script], logPath: log, edit });
    const e = await t.client.wait({ id });
    await t.client.delete({ id });
    const lines = readCriLog(log).map((r) => r.text);
    assert.equal(e.exitCode, 0, lines.join('\n'));
    return lines;
  }

  it('sets process.oomScoreAdj', async () => {
    assert.deepEqual(await output('oomadj', 'cat /proc/self/oom_score_adj', (s) => (s.process.oomScoreAdj = 500)), ['500']);
  });

  it('sets namespaced linux.sysctl values in the container', async () => {
    const out = await output('sysctl', 'cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni', (s) => {
      s.linux.sysctl = { 'net.ipv4.ip_forward': '1', 'kernel.shmmni': '1234' };
    });
    assert.deepEqual(out, ['1', '1234']);
    assert.equal(fs.readFileSync('/proc/sys/kernel/shmmni', 'utf8').trim() === '1234', false, 'host untouched');
  });

  it('gives a container its own user namespace with the spec\'s mappings', async () => {
    const out = await output('ownuser', 'id -u; cat /proc/self/uid_map /proc/self/gid_map', (s) => {
      s.linux.namespaces.push({ type: 'user' });
      s.linux.uidMappings = [{ containerID: 0, hostID: 300000, size: 65536 }];
      s.linux.gidMappings = [{ containerID: 0, hostID: 300000, size: 65536 }];
      // sysfs needs the network namespace to belong to the user namespace.
      s.mounts = s.mounts.filter((m) => m.destination !== '/sys' && m.destination !== '/sys/fs/cgroup');
    });
    assert.deepEqual(out.map((l) => l.trim().split(/\s+/).join(' ')), ['0', '0 300000 65536', '0 300000 65536']);
  });

  it('propagates host mounts into an rslave bind mount, and not back', async () => {
    const src = tempDir();
    fs.mkdirSync(path.join(src, 'sub'));
    fs.mkdirSync(path.join(src, 'sub2'));
    // Propagation needs a shared source (a host without systemd has a private /).
    execFileSync('mount', ['--bind', src, src]);
    execFileSync('mount', ['--make-shared', src]);
    const log = path.join(tempDir(), 'c.log');
    await t.run({
      id: 'prop',
      args: ['sh', '-c', 'mount -t tmpfs none /data/sub2 && echo mounted; while [ ! -e /data/sub/marker ]; do sleep 0.05; done; echo seen; sleep 1000'],
      logPath: log,
      edit: (s) => {
        s.mounts.push({ destination: '/data', type: 'bind', source: src, options: ['rbind', 'rslave'] });
        for (const set of ['bounding', 'effective', 'permitted'] as const) s.process.capabilities![set]!.push('CAP_SYS_ADMIN');
      },
    });
    try {
      execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', path.join(src, 'sub')]);
      fs.writeFileSync(path.join(src, 'sub', 'marker'), 'x');
      await waitFor(() => readCriLog(log).some((r) => r.text === 'seen'), 'the host mount to appear inside');
      assert.ok(readCriLog(log).some((r) => r.text === 'mounted'), 'the container made its own mount');
      const inner = fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(path.join(src, 'sub2'));
      assert.equal(inner, false, 'a mount made inside did not reach the host');
    } finally {
      await t.client.delete({ id: 'prop', force: true });
      spawnSync('umount', [path.join(src, 'sub')]);
      execFileSync('umount', [src]);
    }
  });

  it('writes cpuset cpus and mems', async () => {
    await t.run({ id: 'cpuset', args: ['sleep', '1000'], edit: (s) => (s.linux.resources = { cpu: { cpus: '0', mems: '0' } }) });
    const dir = cgroupDirs(`${CGROUP_PARENT}/cpuset`).find((d) => fs.existsSync(path.join(d, 'cpuset.cpus')));
    assert.ok(dir);
    assert.equal(fs.readFileSync(path.join(dir!, 'cpuset.cpus'), 'utf8').trim(), '0');
    assert.equal(fs.readFileSync(path.join(dir!, 'cpuset.mems'), 'utf8').trim(), '0');
    await t.client.delete({ id: 'cpuset', force: true });
  });

  it('writes linux.resources.unified files to the cgroup2 hierarchy', async function () {
    const v2 = cgroupDirs('').find((d) => fs.existsSync(path.join(d, 'cgroup.controllers')));
    const controllers = v2 ? fs.readFileSync(path.join(v2, 'cgroup.controllers'), 'utf8') : '';
    const file = /\bpids\b/.test(controllers) ? 'pids.max' : /\bhugetlb\b/.test(controllers) ? 'hugetlb.2MB.max' : null;
    if (!file) {
      console.log('      (skipped: no cgroup2 controller with a writable file here)');
      this.skip();
    }
    await t.run({ id: 'unified', args: ['sleep', '1000'], edit: (s) => (s.linux.resources = { unified: { [file!]: '8388608' } }) });
    const dir = cgroupDirs(`${CGROUP_PARENT}/unified`).find((d) => fs.existsSync(path.join(d, file!)));
    assert.equal(fs.readFileSync(path.join(dir!, file!), 'utf8').trim(), '8388608');
    await t.client.delete({ id: 'unified', force: true });
  });

  it('closes connections from other users (SO_PEERCRED)', () => {
    const sock = path.join(t.stateDir, 'shim.sock');
    fs.chmodSync(t.stateDir, 0o755);
    fs.chmodSync(sock, 0o777); // take the file modes out of the way: the peer check alone must refuse
    try {
      const script = `const s=require('net').createConnection(${JSON.stringify(sock)});let got='';s.on('data',d=>got+=d);s.on('connect',()=>s.write('{"id":1,"method":"version"}\\n'));s.on('close',()=>{process.stdout.write(got?'ANSWERED':'CLOSED')});s.on('error',()=>{});`;
      const r = spawnSync(process.execPath, ['-e', script], { uid: 65534, gid: 65534, timeout: 10000 });
      assert.equal(r.stdout.toString(), 'CLOSED', r.stderr.toString());
    } finally {
      fs.chmodSync(sock, 0o600);
      fs.chmodSync(t.stateDir, 0o700);
    }
  });
});
