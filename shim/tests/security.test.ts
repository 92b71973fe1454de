// Security set-up of a container: hostname, mounts, masked and read-only
// paths, capabilities, no_new_privs, seccomp, users, rlimits, fds, and the
// runtime CVEs the shim defends against.
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { ShimError } from '../../src/shim/client';
import { DEFAULT_CAPS, TestPod, mountsUnder, podNamespaces, readCriLog, tempDir, sharedBusyboxRootfs, makeBundle } from './fixtures';

/** Run sh -c script in a new container; returns stdout lines and the exit. */
async function sh(t: TestPod, id: string, script: string, edit?: Parameters<typeof makeBundle>[0]['edit']) {
  const log = path.join(tempDir(), 'c.log');
  await t.run({ id, args: ['sh', '-c', script], logPath: log, edit });
  const exit = await t.client.wait({ id });
  await t.client.delete({ id });
  const recs = readCriLog(log);
  return {
    exit,
    out: recs.filter((r) => r.stream === 'stdout').map((r) => r.text),
    err: recs.filter((r) => r.stream === 'stderr').map((r) => r.text),
  };
}

const ATTACKER_CAPS = [...DEFAULT_CAPS, 'CAP_DAC_READ_SEARCH'];

function capMask(names: string[]): bigint {
  const all = ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL', 'CAP_SETGID', 'CAP_SETUID', 'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE', 'CAP_NET_BIND_SERVICE'];
  return names.reduce((m, n) => m | (1n << BigInt(all.indexOf(n))), 0n);
}

describe('shim security', function () {
  let t: TestPod;
  before(async () => {
    t = await TestPod.start({ hostname: 'secpod' });
  });
  after(async () => {
    await t.stop();
  });

  it('sets the hostname of a container with its own UTS namespace', async () => {
    const r = await sh(t, 'host', 'hostname', (s) => (s.hostname = 'my-host'));
    assert.deepEqual(r.out, ['my-host']);
  });

  it('keeps mounts made inside the container off the host', async () => {
    const probe = tempDir();
    const r = await sh(t, 'mnt', `mount -t tmpfs none /mnt && touch /mnt/inside && ls /mnt`, (s) => {
      s.mounts.push({ destination: '/mnt', type: 'bind', source: probe, options: ['rbind', 'rw'] });
      s.process.capabilities!.effective!.push('CAP_SYS_ADMIN');
      s.process.capabilities!.bounding!.push('CAP_SYS_ADMIN');
      s.process.capabilities!.permitted!.push('CAP_SYS_ADMIN');
    });
    assert.deepEqual(r.out, ['inside']);
    assert.deepEqual(fs.readdirSync(probe), []);
    assert.deepEqual(mountsUnder(probe), []);
  });

  it('masks masked paths and makes read-only paths read-only', async () => {
    const r = await sh(t, 'mask', 'cat /proc/keys | wc -c; ls /sys/firmware | wc -l; echo 1 > /proc/sys/kernel/domainname && echo wrote');
    assert.equal(r.out[0].trim(), '0');
    assert.equal(r.out[1].trim(), '0');
    assert.ok(!r.out.includes('wrote'));
    assert.match(r.err.join('\n'), /Read-only file system/);
  });

  it('makes the root read-only when root.readonly is set', async () => {
    const r = await sh(t, 'rofs', 'touch /newfile');
    assert.notEqual(r.exit.exitCode, 0);
    assert.match(r.err.join('\n'), /Read-only file system/);
  });

  it('gives the process exactly the capabilities of the spec', async () => {
    const caps = ['CAP_CHOWN', 'CAP_NET_BIND_SERVICE'];
    const r = await sh(t, 'caps', 'grep -E "^Cap(Eff|Prm|Bnd)" /proc/self/status', (s) => {
      s.process.capabilities = { bounding: caps, effective: caps, permitted: caps };
    });
    const want = capMask(caps).toString(16).padStart(16, '0');
    for (const line of r.out) assert.equal(line.split(/\s+/)[1], want, line);
  });

  it('keeps ambient capabilities for a non-root user across execve', async () => {
    const caps = ['CAP_NET_BIND_SERVICE'];
    const r = await sh(t, 'amb', 'grep -E "^Cap(Eff|Amb)" /proc/self/status', (s) => {
      s.process.user = { uid: 1000, gid: 1000 };
      s.process.capabilities = { bounding: caps, effective: caps, permitted: caps, inheritable: caps, ambient: caps };
    });
    const want = capMask(caps).toString(16).padStart(16, '0');
    for (const line of r.out) assert.equal(line.split(/\s+/)[1], want, line);
  });

  it('sets no_new_privs when asked, and only then', async () => {
    const on = await sh(t, 'nnp1', 'grep NoNewPrivs /proc/self/status');
    assert.match(on.out[0], /NoNewPrivs:\s+1/);
    const off = await sh(t, 'nnp0', 'grep NoNewPrivs /proc/self/status', (s) => (s.process.noNewPrivileges = false));
    assert.match(off.out[0], /NoNewPrivs:\s+0/);
  });

  it('denies a syscall with the errno of the seccomp profile', async () => {
    const r = await sh(t, 'sc', 'mkdir /tmp/x; echo rc=$?; ls /tmp', (s) => {
      s.linux.seccomp = {
        defaultAction: 'SCMP_ACT_ALLOW',
        architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86'],
        syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 }],
      };
    });
    assert.match(r.err.join('\n'), /Permission denied/);
    assert.ok(r.out.includes('rc=1'));
  });

  it('applies seccomp without no_new_privs too (loaded before the user switch)', async () => {
    const r = await sh(t, 'sc2', 'mkdir /tmp/x', (s) => {
      s.process.noNewPrivileges = false;
      s.process.user = { uid: 1000, gid: 1000 };
      s.linux.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }] };
    });
    assert.match(r.err.join('\n'), /Operation not permitted/);
  });

  it('runs as the given uid, gid and additional groups', async () => {
    const r = await sh(t, 'ids', 'id -u; id -g; id -G', (s) => (s.process.user = { uid: 1000, gid: 1000, additionalGids: [2000, 5] }));
    assert.deepEqual(r.out.slice(0, 2), ['1000', '1000']);
    assert.deepEqual(r.out[2].split(' ').map(Number).sort((a, b) => a - b), [5, 1000, 2000]);
  });

  it('applies rlimits', async () => {
    const r = await sh(t, 'rl', 'ulimit -n; ulimit -Hn', (s) => (s.process.rlimits = [{ type: 'RLIMIT_NOFILE', soft: 123, hard: 456 }]));
    assert.deepEqual(r.out, ['123', '456']);
  });

  it('passes only fds 0-2 to the container process (CVE-2024-21626)', async () => {
    const r = await sh(t, 'fds', 'ls /proc/self/fd');
    // ls's own directory fd is 3; nothing else of the shim's may be there.
    assert.deepEqual(r.out.map(Number).sort((a, b) => a - b), [0, 1, 2, 3]);
  });

  it('creates a missing cwd inside the container', async () => {
    const r = await sh(t, 'cwd', 'pwd', (s) => (s.process.cwd = '/tmp/work/dir'));
    assert.deepEqual(r.out, ['/tmp/work/dir']);
  });

  it('refuses a cwd that leads outside the rootfs, like /proc/self/fd/N (CVE-2024-21626)', async () => {
    for (const fd of [3, 4, 5, 7]) {
      const bundle = makeBundle({ id: `cwd${fd}`, args: ['pwd'], edit: (s) => (s.process.cwd = `/proc/self/fd/${fd}`) });
      await assert.rejects(t.client.create({ id: `cwd${fd}`, bundle }), (e: ShimError) => /process\.cwd/.test(e.message));
    }
    assert.equal((await t.client.list()).containers.filter((c) => c.id.startsWith('cwd')).length, 0);
  });

  it('keeps a created container\'s process from opening the shim binary (CVE-2019-5736)', async () => {
    const pidPod = await TestPod.start({ hostname: 'pidpod', pid: 'new' });
    try {
      const ns = podNamespaces(pidPod.pod);
      await pidPod.run({ id: 'attacker', args: ['sleep', '1000'], namespaces: ns, edit: (s) => delete s.hostname });
      const bundle = makeBundle({ id: 'victim', args: ['true'], namespaces: ns, edit: (s) => delete s.hostname });
      await pidPod.client.create({ id: 'victim', bundle });
      // The victim waits before execve: its /proc/<pid>/exe is still the shim.
      const r = await pidPod.client.execSync({
        id: 'attacker',
        process: {
          // Every process of the pod's PID namespace whose exe can be opened
          // must be busybox: the waiting victim and the pod's infra run the
          // shim's binary and must not be reachable.
          args: ['sh', '-c', 'for p in /proc/[0-9]*; do if cat $p/exe >/dev/null 2>&1; then cmp -s $p/exe /bin/busybox || echo EXPOSED $p; fi; done; echo done'],
          env: ['PATH=/bin'],
          cwd: '/',
          // A superset of the victim's capabilities (so the kernel's
          // capability-subset rule does not already refuse), without
          // CAP_SYS_PTRACE: only non-dumpability stands in the way.
          capabilities: { bounding: ATTACKER_CAPS, effective: ATTACKER_CAPS, permitted: ATTACKER_CAPS },
        },
      });
      assert.doesNotMatch(r.stdout.toString(), /EXPOSED/);
      assert.match(r.stdout.toString(), /done/);
    } finally {
      await pidPod.stop();
    }
  });

  it('refuses an exec cwd or binary outside the rootfs through a symlink', async () => {
    await t.run({ id: 'ex', args: ['sleep', '1000'] });
    await assert.rejects(
      t.client.execSync({ id: 'ex', process: { args: ['/no/such/bin'], env: ['PATH=/bin'], cwd: '/' } }),
      (e: ShimError) => /no\/such\/bin/.test(e.message),
    );
    await t.client.delete({ id: 'ex', force: true });
    assert.ok(sharedBusyboxRootfs());
  });
});
