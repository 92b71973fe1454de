import assert from 'node:assert/strict';
import { InvalidArgument } from '../errors';
import { SecurityProfile_ProfileType } from '../cri/gen/cri';
import type { LinuxSeccomp } from '../oci/runtime_spec';
import { CLONE_NAMESPACE_FLAGS, parseLocalhostProfile, runtimeDefaultProfile, seccompChoice } from './seccomp';

const invalid = (re: RegExp) => (e: unknown) => e instanceof InvalidArgument && re.test((e as Error).message);
const DEFAULT_CAPS = ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_SETUID', 'CAP_SYS_CHROOT', 'CAP_KILL'];

/** The action a profile takes for a syscall called without argument filters, or undefined. */
function unconditional(p: LinuxSeccomp, name: string): string | undefined {
  return p.syscalls?.find((s) => s.names.includes(name) && !s.args?.length)?.action;
}

describe('seccomp: RuntimeDefault', () => {
  it('denies with EPERM by default and allows the common syscalls', () => {
    const p = runtimeDefaultProfile(DEFAULT_CAPS, 'x64');
    assert.equal(p.defaultAction, 'SCMP_ACT_ERRNO');
    assert.equal(p.defaultErrnoRet, 1);
    for (const s of ['read', 'write', 'openat', 'execve', 'exit_group', 'futex', 'socket', 'epoll_wait', 'arch_prctl', 'chroot'])
      assert.equal(unconditional(p, s), 'SCMP_ACT_ALLOW', s);
    for (const s of ['mount', 'umount2', 'unshare', 'setns', 'reboot', 'init_module', 'kexec_load', 'bpf', 'open_by_handle_at', 'clock_settime'])
      assert.equal(unconditional(p, s), undefined, s);
  });

  it('names the architectures of the host', () => {
    assert.deepEqual(runtimeDefaultProfile(DEFAULT_CAPS, 'x64').architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
    const arm = runtimeDefaultProfile(DEFAULT_CAPS, 'arm64');
    assert.deepEqual(arm.architectures, ['SCMP_ARCH_ARM', 'SCMP_ARCH_AARCH64']);
    assert.equal(unconditional(arm, 'set_tls'), 'SCMP_ACT_ALLOW');
    assert.equal(unconditional(arm, 'arch_prctl'), undefined);
    assert.throws(() => runtimeDefaultProfile(DEFAULT_CAPS, 'mips'), invalid(/no profile for host architecture "mips"/));
  });

  it('without CAP_SYS_ADMIN: clone only without namespace flags, clone3 answers ENOSYS', () => {
    const p = runtimeDefaultProfile(DEFAULT_CAPS, 'x64');
    assert.equal(unconditional(p, 'clone'), undefined);
    assert.deepEqual(p.syscalls?.find((s) => s.names.includes('clone')), {
      names: ['clone'],
      action: 'SCMP_ACT_ALLOW',
      args: [{ index: 0, value: 0x7e020000, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }],
    });
    assert.equal(CLONE_NAMESPACE_FLAGS, 0x7e020000);
    assert.deepEqual(p.syscalls?.find((s) => s.names.includes('clone3')), { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 });
  });

  it('lets capabilities unlock their syscalls', () => {
    const p = runtimeDefaultProfile([...DEFAULT_CAPS, 'CAP_SYS_ADMIN', 'CAP_SYS_PTRACE', 'CAP_SYS_TIME', 'CAP_DAC_READ_SEARCH'], 'x64');
    for (const s of ['mount', 'unshare', 'setns', 'clone', 'clone3', 'process_vm_readv', 'clock_settime', 'open_by_handle_at'])
      assert.equal(unconditional(p, s), 'SCMP_ACT_ALLOW', s);
    assert.ok(!p.syscalls?.some((s) => s.action === 'SCMP_ACT_ERRNO' && s.names.includes('clone3')), 'no ENOSYS clone3 with CAP_SYS_ADMIN');
    assert.equal(unconditional(p, 'reboot'), undefined, 'CAP_SYS_BOOT was not given');
  });

  it('allows only the harmless personalities', () => {
    const p = runtimeDefaultProfile(DEFAULT_CAPS, 'x64');
    const values = p.syscalls?.filter((s) => s.names.includes('personality')).map((s) => s.args?.[0].value);
    assert.deepEqual(values, [0x0, 0x8, 0x20000, 0x20008, 0xffffffff]);
  });
});

describe('seccomp: which profile', () => {
  const sp = (profile_type: SecurityProfile_ProfileType, localhost_ref = '') => ({ profile_type, localhost_ref });
  it('reads the SecurityProfile field first', () => {
    assert.deepEqual(seccompChoice(sp(SecurityProfile_ProfileType.RuntimeDefault), 'unconfined'), { kind: 'runtime-default' });
    assert.deepEqual(seccompChoice(sp(SecurityProfile_ProfileType.Unconfined), ''), { kind: 'unconfined' });
    assert.deepEqual(seccompChoice(sp(SecurityProfile_ProfileType.Localhost, '/etc/p.json'), ''), { kind: 'localhost', path: '/etc/p.json' });
    assert.deepEqual(seccompChoice(sp(SecurityProfile_ProfileType.Localhost, 'localhost/p.json'), '', '/var/lib/kubelet/seccomp'), {
      kind: 'localhost',
      path: '/var/lib/kubelet/seccomp/p.json',
    });
  });
  it('falls back to the legacy seccomp_profile_path; nothing means unconfined', () => {
    assert.deepEqual(seccompChoice(null, ''), { kind: 'unconfined' });
    assert.deepEqual(seccompChoice(null, 'unconfined'), { kind: 'unconfined' });
    assert.deepEqual(seccompChoice(null, 'runtime/default'), { kind: 'runtime-default' });
    assert.deepEqual(seccompChoice(null, 'docker/default'), { kind: 'runtime-default' });
    assert.deepEqual(seccompChoice(null, 'localhost//abs/p.json'), { kind: 'localhost', path: '/abs/p.json' });
    assert.deepEqual(seccompChoice(null, 'localhost/rel/p.json', '/root'), { kind: 'localhost', path: '/root/rel/p.json' });
  });
  it('refuses bad references', () => {
    assert.throws(() => seccompChoice(null, 'bogus'), invalid(/seccomp_profile_path "bogus" is not/));
    assert.throws(() => seccompChoice(sp(SecurityProfile_ProfileType.RuntimeDefault, 'x.json'), ''), invalid(/only be set when profile_type is Localhost/));
    assert.throws(() => seccompChoice(sp(SecurityProfile_ProfileType.Localhost, ''), ''), invalid(/needs a path/));
    assert.throws(() => seccompChoice(sp(SecurityProfile_ProfileType.Localhost, 'p.json'), ''), invalid(/relative and no seccomp profile root/));
    assert.throws(() => seccompChoice(sp(SecurityProfile_ProfileType.Localhost, '../../etc/shadow'), '', '/root'), invalid(/must not contain "\.\."/));
  });
});

describe('seccomp: Localhost profiles', () => {
  it('takes an OCI LinuxSeccomp as it is', () => {
    const oci = {
      defaultAction: 'SCMP_ACT_ERRNO',
      defaultErrnoRet: 13,
      architectures: ['SCMP_ARCH_X86_64'],
      flags: ['SECCOMP_FILTER_FLAG_LOG'],
      syscalls: [
        { names: ['read', 'write'], action: 'SCMP_ACT_ALLOW' },
        { names: ['kill'], action: 'SCMP_ACT_ERRNO', errnoRet: 1, args: [{ index: 1, value: 9, op: 'SCMP_CMP_EQ' }] },
      ],
    };
    assert.deepEqual(parseLocalhostProfile(JSON.stringify(oci), '/p.json', [], 'x64'), oci);
  });

  it("reads Docker's format: archMap for the native arch, name, includes/excludes", () => {
    const docker = {
      defaultAction: 'SCMP_ACT_ERRNO',
      archMap: [
        { architecture: 'SCMP_ARCH_X86_64', subArchitectures: ['SCMP_ARCH_X86', 'SCMP_ARCH_X32'] },
        { architecture: 'SCMP_ARCH_AARCH64', subArchitectures: ['SCMP_ARCH_ARM'] },
      ],
      syscalls: [
        { name: 'read', action: 'SCMP_ACT_ALLOW', args: null, comment: '' },
        { names: ['mount'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_SYS_ADMIN'] } },
        { names: ['chroot'], action: 'SCMP_ACT_ALLOW', excludes: { caps: ['CAP_SYS_ADMIN'] } },
        { names: ['arch_prctl'], action: 'SCMP_ACT_ALLOW', includes: { arches: ['SCMP_ARCH_X86_64'] } },
        { names: ['set_tls'], action: 'SCMP_ACT_ALLOW', includes: { arches: ['SCMP_ARCH_AARCH64'] } },
        { names: ['ptrace'], action: 'SCMP_ACT_ALLOW', includes: { minKernel: '4.8' } },
      ],
    };
    const p = parseLocalhostProfile(JSON.stringify(docker), '/d.json', ['CAP_CHOWN'], 'x64');
    assert.deepEqual(p.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
    assert.deepEqual(p.syscalls?.map((s) => s.names[0]), ['read', 'chroot', 'arch_prctl', 'ptrace']);
    const admin = parseLocalhostProfile(JSON.stringify(docker), '/d.json', ['CAP_SYS_ADMIN'], 'arm64');
    assert.deepEqual(admin.architectures, ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM']);
    assert.deepEqual(admin.syscalls?.map((s) => s.names[0]), ['read', 'mount', 'set_tls', 'ptrace']);
  });

  it('refuses broken profiles naming the file', () => {
    const bad = (doc: unknown) => () => parseLocalhostProfile(typeof doc === 'string' ? doc : JSON.stringify(doc), '/x.json', [], 'x64');
    assert.throws(bad('{not json'), invalid(/seccomp profile \/x.json: not JSON/));
    assert.throws(bad([]), invalid(/must be a JSON object/));
    assert.throws(bad({}), invalid(/defaultAction: unknown action undefined/));
    assert.throws(bad({ defaultAction: 'SCMP_ACT_BOGUS' }), invalid(/unknown action "SCMP_ACT_BOGUS"/));
    assert.throws(bad({ defaultAction: 'SCMP_ACT_NOTIFY' }), invalid(/SCMP_ACT_NOTIFY is not supported/));
    assert.throws(bad({ defaultAction: 'SCMP_ACT_ALLOW', listenerPath: '/run/l.sock' }), invalid(/listenerPath/));
    assert.throws(bad({ defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_Z80'] }), invalid(/unknown architecture "SCMP_ARCH_Z80"/));
    assert.throws(bad({ defaultAction: 'SCMP_ACT_ALLOW', flags: ['NOPE'] }), invalid(/unknown flag "NOPE"/));
    assert.throws(bad({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ action: 'SCMP_ACT_ERRNO' }] }), invalid(/syscalls\[0\]: needs names/));
    assert.throws(
      bad({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['kill'], action: 'SCMP_ACT_ERRNO', args: [{ index: 6, value: 1, op: 'SCMP_CMP_EQ' }] }] }),
      invalid(/args\[0\].index: must be 0..5/),
    );
    assert.throws(
      bad({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['kill'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, value: 1, op: 'LIKE' }] }] }),
      invalid(/op: unknown operator "LIKE"/),
    );
    assert.throws(bad({ defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: 5000 }), invalid(/defaultErrnoRet: must be an errno number/));
  });
});
