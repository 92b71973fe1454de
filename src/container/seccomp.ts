// Seccomp for containers: which profile a CRI security context asks for (the SecurityProfile
// field or the legacy seccomp_profile_path), containerd's RuntimeDefault profile (its allow
// list, with the syscalls some capabilities unlock) and Localhost profile files (OCI's
// LinuxSeccomp JSON, or Docker's format with archMap and includes/excludes), all as OCI
// LinuxSeccomp for the shim.
import { promises as fsp } from 'fs';
import * as path from 'path';
import { InvalidArgument } from '../errors';
import { SecurityProfile_ProfileType } from '../cri/gen/cri';
import type { SecurityProfile } from '../cri/gen/cri';
import type { LinuxSeccomp, LinuxSeccompArg, LinuxSyscall, SeccompAction, SeccompOperator } from '../oci/runtime_spec';

/** What the container asked for, resolved to a file for Localhost. */
export type SeccompChoice = { kind: 'unconfined' } | { kind: 'runtime-default' } | { kind: 'localhost'; path: string };

const LOCALHOST_PREFIX = 'localhost/';

/** An absolute, normalised file path for a Localhost ref (relative ones under root). */
function localhostPath(ref: string, root: string | undefined, field: string): string {
  const r = ref.startsWith(LOCALHOST_PREFIX) ? ref.slice(LOCALHOST_PREFIX.length) : ref;
  if (!r) throw new InvalidArgument(`${field}: a Localhost seccomp profile needs a path`);
  if (r.includes('\0')) throw new InvalidArgument(`${field}: the profile path contains a NUL byte`);
  if (r.split('/').includes('..')) throw new InvalidArgument(`${field}: profile path "${r}" must not contain ".."`);
  if (r.startsWith('/')) return path.posix.normalize(r);
  if (!root || !root.startsWith('/')) throw new InvalidArgument(`${field}: profile path "${r}" is relative and no seccomp profile root is configured`);
  return path.posix.join(root, r);
}

/**
 * The profile a CRI security context selects, as containerd decides it: the `seccomp`
 * field when set, else the legacy `seccomp_profile_path` ("runtime/default",
 * "docker/default", "unconfined", "localhost/<path>"); neither means unconfined.
 * (The caller drops seccomp altogether for privileged containers.)
 */
export function seccompChoice(profile: SecurityProfile | null, legacyPath: string, profileRoot?: string): SeccompChoice {
  if (profile) {
    if (profile.profile_type !== SecurityProfile_ProfileType.Localhost && profile.localhost_ref)
      throw new InvalidArgument('seccomp.localhost_ref must only be set when profile_type is Localhost');
    switch (profile.profile_type) {
      case SecurityProfile_ProfileType.Unconfined:
        return { kind: 'unconfined' };
      case SecurityProfile_ProfileType.RuntimeDefault:
        return { kind: 'runtime-default' };
      case SecurityProfile_ProfileType.Localhost:
        return { kind: 'localhost', path: localhostPath(profile.localhost_ref, profileRoot, 'seccomp.localhost_ref') };
      default:
        throw new InvalidArgument(`seccomp.profile_type ${String(profile.profile_type)} is not RuntimeDefault, Unconfined or Localhost`);
    }
  }
  if (legacyPath === '' || legacyPath === 'unconfined') return { kind: 'unconfined' };
  if (legacyPath === 'runtime/default' || legacyPath === 'docker/default') return { kind: 'runtime-default' };
  if (legacyPath.startsWith(LOCALHOST_PREFIX)) return { kind: 'localhost', path: localhostPath(legacyPath, profileRoot, 'seccomp_profile_path') };
  throw new InvalidArgument(`seccomp_profile_path "${legacyPath}" is not runtime/default, docker/default, unconfined or localhost/<path>`);
}

/** Read a Localhost profile file; for callers that resolve seccompChoice before building the spec. */
export async function readLocalhostProfile(file: string): Promise<string> {
  try {
    return await fsp.readFile(file, 'utf8');
  } catch (e) {
    throw new InvalidArgument(`seccomp profile ${file} cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

// ---- RuntimeDefault ------------------------------------------------------------------

// containerd's contrib/seccomp DefaultProfile allow list (the same as Docker's/moby's
// default). Names this kernel or libseccomp does not know are skipped by the shim.
const ALLOWED = `accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod chown chown32
clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64 clock_nanosleep
clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2 dup3 epoll_create epoll_create1
epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit
exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir fchmod fchmodat fchmodat2
fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat
fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 futex futex_requeue futex_time64 futex_wait
futex_waitv futex_wake futimesat getcpu getcwd getdents getdents64 getegid getegid32 geteuid geteuid32 getgid
getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp getpid getppid getpriority getrandom
getresgid getresgid32 getresuid getresuid32 getrlimit get_robust_list getrusage getsid getsockname getsockopt
get_thread_area gettid gettimeofday getuid getuid32 getxattr getxattrat inotify_add_watch inotify_init
inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy io_getevents io_pgetevents io_pgetevents_time64
ioprio_get ioprio_set io_setup io_submit ipc kill landlock_add_rule landlock_create_ruleset
landlock_restrict_self lchown lchown32 lgetxattr link linkat listen listmount listxattr listxattrat llistxattr
_llseek lremovexattr lseek lsetxattr lstat lstat64 madvise map_shadow_stack membarrier memfd_create memfd_secret
mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open
mq_timedreceive mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap mseal msgctl msgget
msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep newfstatat _newselect open openat
openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64
prctl pread64 preadv preadv2 prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read
readahead readlink readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr
removexattrat rename renameat renameat2 restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask
rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo
sched_getaffinity sched_getattr sched_getparam sched_get_priority_max sched_get_priority_min sched_getscheduler
sched_rr_get_interval sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam
sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop semtimedop_time64 send sendfile
sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32
setitimer setpgid setpriority setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid
setreuid32 setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address setuid setuid32 setxattr
setxattrat shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 sigprocmask sigreturn socket
socketcall socketpair splice stat stat64 statfs statfs64 statmount statx symlink symlinkat sync sync_file_range
syncfs sysinfo tee tgkill time timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64
timer_settime timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64
times tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat uretprobe utime utimensat utimensat_time64
utimes vfork vmsplice wait4 waitid waitpid write writev
ptrace`;
// ptrace: containerd allows it on kernels >= 4.8 (seccomp can no longer be bypassed through
// it there); every kernel skiff-shim runs on (it needs openat2, 5.6+) qualifies.

/** Syscalls a capability in the bounding set unlocks (containerd's per-capability entries). */
const BY_CAPABILITY: Record<string, string> = {
  CAP_DAC_READ_SEARCH: 'open_by_handle_at',
  CAP_SYS_ADMIN: `bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount mount_setattr
move_mount name_to_handle_at open_tree perf_event_open quotactl quotactl_fd setdomainname sethostname setns syslog
umount umount2 unshare`,
  CAP_SYS_BOOT: 'reboot',
  CAP_SYS_CHROOT: 'chroot',
  CAP_SYS_MODULE: 'delete_module init_module finit_module',
  CAP_SYS_PACCT: 'acct',
  CAP_SYS_PTRACE: 'kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace',
  CAP_SYS_RAWIO: 'iopl ioperm',
  CAP_SYS_TIME: 'settimeofday stime clock_settime clock_settime64',
  CAP_SYS_TTY_CONFIG: 'vhangup',
  CAP_SYS_NICE: 'get_mempolicy mbind set_mempolicy set_mempolicy_home_node',
  CAP_SYSLOG: 'syslog',
  CAP_BPF: 'bpf',
  CAP_PERFMON: 'perf_event_open',
};

/** Per host architecture: the seccomp architectures a process may use, and their extra syscalls. */
const ARCH_PROFILE: Record<string, { arches: string[]; extra: string }> = {
  x64: { arches: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'], extra: 'arch_prctl modify_ldt' },
  arm64: { arches: ['SCMP_ARCH_ARM', 'SCMP_ARCH_AARCH64'], extra: 'arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls' },
  ia32: { arches: ['SCMP_ARCH_X86'], extra: 'modify_ldt' },
  arm: { arches: ['SCMP_ARCH_ARM'], extra: 'arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls' },
  ppc64: { arches: ['SCMP_ARCH_PPC64LE'], extra: 'sync_file_range2 swapcontext' },
  s390x: { arches: ['SCMP_ARCH_S390', 'SCMP_ARCH_S390X'], extra: 's390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr' },
  riscv64: { arches: ['SCMP_ARCH_RISCV64'], extra: 'riscv_flush_icache riscv_hwprobe' },
};

/** The seccomp architecture name of a Node process.arch, for Docker's archMap and includes. */
const NATIVE_ARCH: Record<string, string> = {
  x64: 'SCMP_ARCH_X86_64',
  arm64: 'SCMP_ARCH_AARCH64',
  ia32: 'SCMP_ARCH_X86',
  arm: 'SCMP_ARCH_ARM',
  ppc64: 'SCMP_ARCH_PPC64LE',
  s390x: 'SCMP_ARCH_S390X',
  riscv64: 'SCMP_ARCH_RISCV64',
};

// The clone flags that create namespaces: without CAP_SYS_ADMIN clone may not use them.
const CLONE_NEWNS = 0x00020000;
const CLONE_NEWCGROUP = 0x02000000;
const CLONE_NEWUTS = 0x04000000;
const CLONE_NEWIPC = 0x08000000;
const CLONE_NEWUSER = 0x10000000;
const CLONE_NEWPID = 0x20000000;
const CLONE_NEWNET = 0x40000000;
export const CLONE_NAMESPACE_FLAGS = CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET;

const EPERM = 1;
const ENOSYS = 38;

const words = (s: string) => s.split(/\s+/).filter(Boolean);

/**
 * containerd's RuntimeDefault for a process with these bounding capabilities on a host of
 * this architecture (Node's process.arch names): default action ERRNO(EPERM), the common
 * allow list, the architecture's extras, the syscalls each capability unlocks, and without
 * CAP_SYS_ADMIN a clone that cannot make namespaces and a clone3 that says ENOSYS (so libc
 * falls back to clone, which the filter can inspect).
 */
export function runtimeDefaultProfile(boundingCaps: readonly string[], arch: string = process.arch): LinuxSeccomp {
  const a = ARCH_PROFILE[arch];
  if (!a) throw new InvalidArgument(`seccomp RuntimeDefault: no profile for host architecture "${arch}"`);
  const caps = new Set(boundingCaps);
  const syscalls: LinuxSyscall[] = [{ names: words(ALLOWED), action: 'SCMP_ACT_ALLOW' }];
  // personality: only the harmless personas (Linux, UNAME26, 32-bit PER_LINUX32 and the query).
  for (const value of [0x0, 0x8, 0x20000, 0x20008, 0xffffffff])
    syscalls.push({ names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value, op: 'SCMP_CMP_EQ' }] });
  syscalls.push({ names: words(a.extra), action: 'SCMP_ACT_ALLOW' });
  for (const [cap, names] of Object.entries(BY_CAPABILITY)) if (caps.has(cap)) syscalls.push({ names: words(names), action: 'SCMP_ACT_ALLOW' });
  if (!caps.has('CAP_SYS_ADMIN')) {
    // s390's clone takes the flags second.
    const index = arch === 's390x' ? 1 : 0;
    syscalls.push({ names: ['clone'], action: 'SCMP_ACT_ALLOW', args: [{ index, value: CLONE_NAMESPACE_FLAGS, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }] });
    syscalls.push({ names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS });
  }
  return { defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: EPERM, architectures: [...a.arches], syscalls };
}

// ---- Localhost profiles --------------------------------------------------------------

const ACTIONS: readonly SeccompAction[] = [
  'SCMP_ACT_KILL', 'SCMP_ACT_KILL_PROCESS', 'SCMP_ACT_KILL_THREAD', 'SCMP_ACT_TRAP', 'SCMP_ACT_ERRNO', 'SCMP_ACT_TRACE', 'SCMP_ACT_ALLOW',
  'SCMP_ACT_LOG', 'SCMP_ACT_NOTIFY',
];
const OPERATORS: readonly SeccompOperator[] = ['SCMP_CMP_NE', 'SCMP_CMP_LT', 'SCMP_CMP_LE', 'SCMP_CMP_EQ', 'SCMP_CMP_GE', 'SCMP_CMP_GT', 'SCMP_CMP_MASKED_EQ'];
const ARCHITECTURES = [
  'SCMP_ARCH_X86', 'SCMP_ARCH_X86_64', 'SCMP_ARCH_X32', 'SCMP_ARCH_ARM', 'SCMP_ARCH_AARCH64', 'SCMP_ARCH_MIPS', 'SCMP_ARCH_MIPS64',
  'SCMP_ARCH_MIPS64N32', 'SCMP_ARCH_MIPSEL', 'SCMP_ARCH_MIPSEL64', 'SCMP_ARCH_MIPSEL64N32', 'SCMP_ARCH_PPC', 'SCMP_ARCH_PPC64',
  'SCMP_ARCH_PPC64LE', 'SCMP_ARCH_S390', 'SCMP_ARCH_S390X', 'SCMP_ARCH_PARISC', 'SCMP_ARCH_PARISC64', 'SCMP_ARCH_RISCV64',
  'SCMP_ARCH_LOONGARCH64', 'SCMP_ARCH_M68K', 'SCMP_ARCH_SH', 'SCMP_ARCH_SHEB',
];
const FLAGS = ['SECCOMP_FILTER_FLAG_TSYNC', 'SECCOMP_FILTER_FLAG_LOG', 'SECCOMP_FILTER_FLAG_SPEC_ALLOW', 'SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV'];

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');
const isUint = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;

function action(v: unknown, where: string): SeccompAction {
  if (typeof v !== 'string' || !(ACTIONS as readonly string[]).includes(v)) throw new InvalidArgument(`${where}: unknown action ${JSON.stringify(v)}`);
  // The shim runs no notify listener: a profile that needs one could never work.
  if (v === 'SCMP_ACT_NOTIFY') throw new InvalidArgument(`${where}: SCMP_ACT_NOTIFY is not supported`);
  return v as SeccompAction;
}

function errnoRet(v: unknown, where: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isUint(v) || v > 4095) throw new InvalidArgument(`${where}: must be an errno number (0..4095)`);
  return v;
}

function syscallArg(v: unknown, where: string): LinuxSeccompArg {
  if (!isObject(v)) throw new InvalidArgument(`${where}: must be an object`);
  if (!isUint(v.index) || v.index > 5) throw new InvalidArgument(`${where}.index: must be 0..5`);
  if (!isUint(v.value)) throw new InvalidArgument(`${where}.value: must be a non-negative integer`);
  if (v.valueTwo !== undefined && v.valueTwo !== null && !isUint(v.valueTwo)) throw new InvalidArgument(`${where}.valueTwo: must be a non-negative integer`);
  if (typeof v.op !== 'string' || !(OPERATORS as readonly string[]).includes(v.op)) throw new InvalidArgument(`${where}.op: unknown operator ${JSON.stringify(v.op)}`);
  const out: LinuxSeccompArg = { index: v.index, value: v.value, op: v.op as SeccompOperator };
  if (isUint(v.valueTwo)) out.valueTwo = v.valueTwo;
  return out;
}

/** Docker's includes/excludes: caps all held / any held, and the native arch listed. */
function ruleApplies(rule: Json, caps: Set<string>, nativeArch: string | undefined, where: string): boolean {
  for (const key of ['includes', 'excludes'] as const) {
    const f = rule[key];
    if (f === undefined || f === null) continue;
    if (!isObject(f)) throw new InvalidArgument(`${where}.${key}: must be an object`);
    const fcaps = f.caps ?? [];
    const farches = f.arches ?? [];
    if (!isStringArray(fcaps) || !isStringArray(farches)) throw new InvalidArgument(`${where}.${key}: caps and arches must be lists of strings`);
    // minKernel is not checked: every kernel the shim supports (5.6+) is newer than any
    // minKernel in the profiles Docker and the security-profiles-operator ship.
    if (key === 'includes') {
      if (fcaps.some((c) => !caps.has(c))) return false;
      if (farches.length && !(nativeArch && farches.includes(nativeArch))) return false;
    } else {
      if (fcaps.some((c) => caps.has(c))) return false;
      if (nativeArch && farches.includes(nativeArch)) return false;
    }
  }
  return true;
}

/**
 * A Localhost profile file as OCI LinuxSeccomp: OCI's own fields, plus Docker's format
 * (archMap narrowed to the native architecture, `name`, includes/excludes by capability
 * and architecture), validated so a bad file fails CreateContainer naming the file.
 */
export function parseLocalhostProfile(text: string, file: string, boundingCaps: readonly string[], arch: string = process.arch): LinuxSeccomp {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new InvalidArgument(`seccomp profile ${file}: not JSON: ${(e as Error).message}`);
  }
  const w = `seccomp profile ${file}`;
  if (!isObject(doc)) throw new InvalidArgument(`${w}: must be a JSON object`);
  const nativeArch = NATIVE_ARCH[arch];
  const out: LinuxSeccomp = { defaultAction: action(doc.defaultAction, `${w}: defaultAction`) };
  const defErrno = errnoRet(doc.defaultErrnoRet, `${w}: defaultErrnoRet`);
  if (defErrno !== undefined) out.defaultErrnoRet = defErrno;
  if (typeof doc.listenerPath === 'string' && doc.listenerPath) throw new InvalidArgument(`${w}: listenerPath (seccomp notify) is not supported`);

  let arches: string[] = [];
  if (doc.architectures !== undefined && doc.architectures !== null) {
    if (!isStringArray(doc.architectures)) throw new InvalidArgument(`${w}: architectures must be a list of strings`);
    arches = [...doc.architectures];
  }
  if (Array.isArray(doc.archMap)) {
    for (const [i, m] of doc.archMap.entries()) {
      if (!isObject(m) || typeof m.architecture !== 'string') throw new InvalidArgument(`${w}: archMap[${i}] needs an architecture`);
      const subs = m.subArchitectures ?? [];
      if (!isStringArray(subs)) throw new InvalidArgument(`${w}: archMap[${i}].subArchitectures must be a list of strings`);
      // As Docker: only the native architecture's entry counts.
      if (m.architecture === nativeArch) arches.push(m.architecture, ...subs);
    }
  }
  for (const a of arches) if (!ARCHITECTURES.includes(a)) throw new InvalidArgument(`${w}: unknown architecture "${a}"`);
  if (arches.length) out.architectures = [...new Set(arches)];

  if (doc.flags !== undefined && doc.flags !== null) {
    if (!isStringArray(doc.flags)) throw new InvalidArgument(`${w}: flags must be a list of strings`);
    for (const f of doc.flags) if (!FLAGS.includes(f)) throw new InvalidArgument(`${w}: unknown flag "${f}"`);
    if (doc.flags.length) out.flags = [...doc.flags];
  }

  const rules = doc.syscalls ?? [];
  if (!Array.isArray(rules)) throw new InvalidArgument(`${w}: syscalls must be a list`);
  const caps = new Set(boundingCaps);
  const syscalls: LinuxSyscall[] = [];
  for (const [i, r] of rules.entries()) {
    const rw = `${w}: syscalls[${i}]`;
    if (!isObject(r)) throw new InvalidArgument(`${rw}: must be an object`);
    if (!ruleApplies(r, caps, nativeArch, rw)) continue;
    const names = r.names ?? (typeof r.name === 'string' ? [r.name] : undefined);
    if (!isStringArray(names) || names.length === 0) throw new InvalidArgument(`${rw}: needs names`);
    const rule: LinuxSyscall = { names: [...names], action: action(r.action, `${rw}.action`) };
    const e = errnoRet(r.errnoRet, `${rw}.errnoRet`);
    if (e !== undefined) rule.errnoRet = e;
    if (r.args !== undefined && r.args !== null) {
      if (!Array.isArray(r.args)) throw new InvalidArgument(`${rw}.args: must be a list`);
      if (r.args.length > 6) throw new InvalidArgument(`${rw}.args: at most 6 comparisons`);
      if (r.args.length) rule.args = r.args.map((a, k) => syscallArg(a, `${rw}.args[${k}]`));
    }
    syscalls.push(rule);
  }
  out.syscalls = syscalls;
  return out;
}
