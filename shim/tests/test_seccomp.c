/* test_seccomp.c: OCI seccomp profiles: validation messages, and real filters
 * loaded in forked children (errno actions, argument rules, allow lists,
 * kill/trap, unknown names, several architectures, execve under a filter). */
#include "harness.h"

#include <fcntl.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/skiff-test-seccomp-XXXXXX";

/* ---- running a body under a filter in a child ---------------------------- */

/* A body runs after the filter is loaded; it reports through fd and returns
 * 0 when every expectation held. */
typedef int (*body_fn)(int fd);

struct result {
  int exit_code; /* -1 if killed */
  int signal;    /* the killing signal, or 0 */
  char out[4096];
};

struct filter_case {
  const char *profile;
  body_fn body;
};

static int filter_child(int fd, void *arg)
{
  const struct filter_case *c = arg;
  struct shim_err err;
  struct seccomp_filter *f;
  json_t *p = test_json(c->profile);
  if (seccomp_parse(p, &f, &err) < 0) {
    dprintf(fd, "validate: %s", err.msg);
    return 3;
  }
  if (seccomp_apply(f, &err) < 0) {
    dprintf(fd, "apply: %s", err.msg);
    return 3;
  }
  return c->body(fd) == 0 ? 0 : 1;
}

static void run(const char *profile, body_fn body, struct result *res)
{
  struct filter_case c = { profile, body };
  struct child_result cr;
  run_child(filter_child, &c, res->out, sizeof(res->out), &cr);
  res->exit_code = cr.exit_code;
  res->signal = cr.signal;
}

/* seccomp_parse, for what it accepts and refuses. */
static int validate(json_t *profile, struct shim_err *err)
{
  struct seccomp_filter *f = NULL;
  int r = seccomp_parse(profile, &f, err);
  seccomp_free(f);
  return r;
}

/* mkdir through the raw syscall (glibc may pick mkdirat); returns errno or 0. */
static int try_mkdir(const char *name)
{
  char path[256];
  snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
  if (syscall(SYS_mkdir, path, 0700) < 0)
    return errno;
  rmdir(path);
  return 0;
}

static int expect_errno(int fd, const char *what, int got, int want)
{
  if (got == want)
    return 0;
  dprintf(fd, "%s: got %s (%d), want %s (%d); ", what, got ? strerror(got) : "success", got,
          want ? strerror(want) : "success", want);
  return 1;
}

/* Other calls still work: getpid, open, write, stat. */
static int others_work(int fd)
{
  struct stat st;
  int bad = 0, f = open("/dev/null", O_WRONLY | O_CLOEXEC);
  bad |= expect_errno(fd, "open /dev/null", f < 0 ? errno : 0, 0);
  bad |= expect_errno(fd, "write /dev/null", f >= 0 && write(f, "x", 1) == 1 ? 0 : errno, 0);
  bad |= expect_errno(fd, "stat /", stat("/", &st) < 0 ? errno : 0, 0);
  bad |= expect_errno(fd, "getpid", syscall(SYS_getpid) > 0 ? 0 : errno, 0);
  if (f >= 0)
    close(f);
  return bad;
}

static int body_mkdir_eperm(int fd)
{
  return expect_errno(fd, "mkdir", try_mkdir("a"), EPERM) | others_work(fd);
}

static int body_mkdir_enosys(int fd)
{
  return expect_errno(fd, "mkdir", try_mkdir("b"), ENOSYS) | others_work(fd);
}

static int body_mkdir_works(int fd)
{
  return expect_errno(fd, "mkdir", try_mkdir("c"), 0) | others_work(fd);
}

static int body_personality(int fd)
{
  int bad = 0;
  /* 0xffffffff only queries the persona. */
  bad |= expect_errno(fd, "personality(0xffffffff)", personality(0xffffffff) < 0 ? errno : 0, 0);
  bad |= expect_errno(fd, "personality(PER_LINUX)", personality(PER_LINUX) < 0 ? errno : 0, EPERM);
  bad |= expect_errno(fd, "personality(PER_LINUX32)", personality(PER_LINUX32) < 0 ? errno : 0, EPERM);
  return bad;
}

/* Rule: ERRNO for personality with arg0 == PER_LINUX32 and (second rule, same
 * index) arg0 == PER_BSD: both are denied, everything else works. */
static int body_personality_or(int fd)
{
  int bad = 0;
  bad |= expect_errno(fd, "personality(PER_LINUX32)", personality(PER_LINUX32) < 0 ? errno : 0, EPERM);
  bad |= expect_errno(fd, "personality(PER_BSD)", personality(PER_BSD) < 0 ? errno : 0, EPERM);
  bad |= expect_errno(fd, "personality(0xffffffff)", personality(0xffffffff) < 0 ? errno : 0, 0);
  bad |= expect_errno(fd, "personality(PER_LINUX)", personality(PER_LINUX) < 0 ? errno : 0, 0);
  return bad;
}

/* MASKED_EQ on arg 2 (mode) of fchmodat: (mode & 07000) == 04000, i.e. setuid
 * without setgid or sticky, is denied. */
static int body_masked(int fd)
{
  char path[256];
  int bad = 0;
  snprintf(path, sizeof(path), "%s/f", tmpdir);
  bad |= expect_errno(fd, "fchmodat 0644", syscall(SYS_fchmodat, AT_FDCWD, path, 0644) < 0 ? errno : 0, 0);
  bad |= expect_errno(fd, "fchmodat 04755", syscall(SYS_fchmodat, AT_FDCWD, path, 04755) < 0 ? errno : 0, EPERM);
  bad |= expect_errno(fd, "fchmodat 02755", syscall(SYS_fchmodat, AT_FDCWD, path, 02755) < 0 ? errno : 0, 0);
  bad |= expect_errno(fd, "fchmodat 06755", syscall(SYS_fchmodat, AT_FDCWD, path, 06755) < 0 ? errno : 0, 0);
  return bad;
}

static int body_allowlist(int fd)
{
  int bad = 0;
  bad |= expect_errno(fd, "getppid (not listed)", syscall(SYS_getppid) < 0 ? errno : 0, ENOSYS);
  bad |= expect_errno(fd, "mkdir (not listed)", try_mkdir("d"), ENOSYS);
  bad |= expect_errno(fd, "getpid (listed)", syscall(SYS_getpid) > 0 ? 0 : errno, 0);
  return bad;
}

static int body_kill(int fd)
{
  try_mkdir("e");
  dprintf(fd, "still alive after mkdir");
  return 1;
}

static volatile sig_atomic_t trapped_nr = -1;
static void on_sigsys(int sig, siginfo_t *si, void *uc)
{
  trapped_nr = si->si_syscall;
}

static int body_trap(int fd)
{
  struct sigaction sa = { .sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO };
  int e;
  sigaction(SIGSYS, &sa, NULL);
  e = try_mkdir("f");
  if (trapped_nr != SYS_mkdir) {
    dprintf(fd, "no SIGSYS for mkdir (nr %d, errno %d)", (int) trapped_nr, e);
    return 1;
  }
  return 0;
}

static int body_no_nnp(int fd)
{
  int v = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
  if (v != 0) {
    dprintf(fd, "no_new_privs is %d", v);
    return 1;
  }
  return body_mkdir_eperm(fd);
}

/* execve /bin/sh under the filter: mkdir(1) is refused, the rest runs. */
static int body_exec_sh(int fd)
{
  char script[512];
  char *envp[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", NULL };
  snprintf(script, sizeof(script), "echo started; mkdir %s/g 2>&1; ls -d %s >/dev/null && echo listed", tmpdir, tmpdir);
  char *argv[] = { "/bin/sh", "-c", script, NULL };
  dup2(fd, 1);
  dup2(fd, 2);
  execve(argv[0], argv, envp);
  dprintf(fd, "execve: %s", strerror(errno));
  return 1;
}

/* ---- validation ----------------------------------------------------------- */

static void refused(const char *profile, const char *want, const char *name)
{
  struct shim_err err = { 0 };
  json_t *p = test_json(profile);
  int r = validate(p, &err);
  check(r < 0 && err.code == SHIM_INVALID_ARGUMENT && strstr(err.msg, want), "validate: %s (%s)", name,
        r < 0 ? err.msg : "accepted");
  json_decref(p);
}

static void accepted(const char *profile, const char *name)
{
  struct shim_err err = { 0 };
  json_t *p = test_json(profile);
  int r = validate(p, &err);
  check(r == 0, "validate: %s (%s)", name, r < 0 ? err.msg : "accepted");
  json_decref(p);
}

static void test_validate(void)
{
  refused("{\"defaultAction\":\"SCMP_ACT_EXPLODE\"}", "linux.seccomp.defaultAction: unknown action \"SCMP_ACT_EXPLODE\"",
          "an unknown default action");
  refused("{}", "linux.seccomp.defaultAction: required", "a missing default action");
  refused("{\"defaultAction\":\"SCMP_ACT_NOTIFY\"}", "SCMP_ACT_NOTIFY is not supported", "a NOTIFY default action");
  refused("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"read\"],\"action\":\"SCMP_ACT_ALLOW\"},"
          "{\"names\":[\"mkdir\"],\"action\":\"SCMP_ACT_NOTIFY\"}]}",
          "linux.seccomp.syscalls[1].action: SCMP_ACT_NOTIFY is not supported", "a NOTIFY rule");
  refused("{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"defaultErrnoRet\":\"x\"}", "linux.seccomp.defaultErrnoRet",
          "a non-integer defaultErrnoRet");
  refused("{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"defaultErrnoRet\":-1}", "linux.seccomp.defaultErrnoRet: -1",
          "a negative defaultErrnoRet");
  refused("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"mkdir\"],\"action\":\"SCMP_ACT_ERRNO\","
          "\"errnoRet\":5000}]}",
          "linux.seccomp.syscalls[0].errnoRet: 5000", "an errnoRet above 4095");
  refused("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"architectures\":[\"SCMP_ARCH_X86_64\",\"SCMP_ARCH_VAX\"]}",
          "linux.seccomp.architectures[1]: unknown architecture \"SCMP_ARCH_VAX\"", "an unknown architecture");
  refused("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"flags\":[\"SECCOMP_FILTER_FLAG_TSYNC\",\"SECCOMP_FILTER_FLAG_FAST\"]}",
          "linux.seccomp.flags[1]: unknown flag \"SECCOMP_FILTER_FLAG_FAST\"", "an unknown flag");
  refused("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"mkdir\"],\"action\":\"SCMP_ACT_ERRNO\"},"
          "{\"names\":[\"personality\"],\"action\":\"SCMP_ACT_ERRNO\",\"args\":[{\"index\":0,\"value\":1,"
          "\"op\":\"SCMP_CMP_EQ\"},{\"index\":1,\"value\":1,\"op\":\"SCMP_CMP_APPROX\"}]}]}",
          "linux.seccomp.syscalls[1].args[1].op: unknown operator \"SCMP_CMP_APPROX\"", "an unknown operator");
  refused("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"personality\"],\"action\":\"SCMP_ACT_ERRNO\","
          "\"args\":[{\"index\":6,\"value\":1,\"op\":\"SCMP_CMP_EQ\"}]}]}",
          "linux.seccomp.syscalls[0].args[0].index: 6 not in 0..5", "an argument index above 5");
  refused("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"personality\"],\"action\":\"SCMP_ACT_ERRNO\","
          "\"args\":[{\"value\":1,\"op\":\"SCMP_CMP_EQ\"}]}]}",
          "linux.seccomp.syscalls[0].args[0].index: required", "a missing argument index");
  refused("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"personality\"],\"action\":\"SCMP_ACT_ERRNO\","
          "\"args\":[{\"index\":0,\"value\":-3,\"op\":\"SCMP_CMP_EQ\"}]}]}",
          "linux.seccomp.syscalls[0].args[0].value", "a negative argument value");
  refused("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"personality\"],\"action\":\"SCMP_ACT_ERRNO\","
          "\"args\":[{\"index\":0,\"value\":1}]}]}",
          "linux.seccomp.syscalls[0].args[0].op: required", "a missing operator");
  refused("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":\"mkdir\",\"action\":\"SCMP_ACT_ERRNO\"}]}",
          "linux.seccomp.syscalls[0].names", "names that are not an array");
  refused("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"mkdir\",3],\"action\":\"SCMP_ACT_ERRNO\"}]}",
          "linux.seccomp.syscalls[0].names[1]: must be a string", "a name that is not a string");
  refused("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"mkdir\"]}]}",
          "linux.seccomp.syscalls[0].action: required", "a rule without an action");
  refused("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[\"mkdir\"]}", "linux.seccomp.syscalls[0]: must be an object",
          "a rule that is not an object");
  refused("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"listenerPath\":\"/run/notify.sock\"}", "linux.seccomp.listenerPath",
          "a notify listener path");
  refused("[]", "linux.seccomp: must be an object", "a profile that is not an object");

  accepted("{\"defaultAction\":\"SCMP_ACT_KILL\",\"architectures\":[\"SCMP_ARCH_X86_64\",\"SCMP_ARCH_X86\","
           "\"SCMP_ARCH_X32\",\"SCMP_ARCH_AARCH64\",\"SCMP_ARCH_ARM\",\"SCMP_ARCH_RISCV64\",\"SCMP_ARCH_LOONGARCH64\"],"
           "\"flags\":[\"SECCOMP_FILTER_FLAG_TSYNC\",\"SECCOMP_FILTER_FLAG_LOG\",\"SECCOMP_FILTER_FLAG_SPEC_ALLOW\"],"
           "\"syscalls\":[{\"names\":[\"read\",\"no_such_syscall_in_any_kernel\"],\"action\":\"SCMP_ACT_ALLOW\"},"
           "{\"names\":[\"ptrace\"],\"action\":\"SCMP_ACT_TRACE\",\"errnoRet\":3},"
           "{\"names\":[\"reboot\"],\"action\":\"SCMP_ACT_KILL_PROCESS\"},{\"names\":[\"kexec_load\"],\"action\":\"SCMP_ACT_KILL_THREAD\"},"
           "{\"names\":[\"acct\"],\"action\":\"SCMP_ACT_TRAP\"},{\"names\":[\"swapon\"],\"action\":\"SCMP_ACT_LOG\"},"
           "{\"names\":[\"clone\"],\"action\":\"SCMP_ACT_ALLOW\",\"args\":[{\"index\":0,\"value\":2114060288,"
           "\"valueTwo\":0,\"op\":\"SCMP_CMP_MASKED_EQ\"}]}]}",
           "every action, known architectures and flags, and an unknown syscall name");
}

/* ---- a large allow list: every syscall libseccomp knows but mkdir -------- */

static char *allow_all_but_mkdir(void)
{
  json_t *names = json_array(), *profile;
  char *text;
  uint32_t native = seccomp_arch_native();
  for (int nr = 0; nr < 1024; nr++) {
    char *name = seccomp_syscall_resolve_num_arch(native, nr);
    if (name && strcmp(name, "mkdir") != 0 && strcmp(name, "mkdirat") != 0)
      json_array_append_new(names, json_string(name));
    free(name);
  }
  /* Names of other architectures and of kernels newer than libseccomp. */
  json_array_append_new(names, json_string("mmap2"));
  json_array_append_new(names, json_string("socketcall"));
  json_array_append_new(names, json_string("breakpoint"));
  json_array_append_new(names, json_string("a_syscall_from_the_future"));
  profile = json_pack("{s:s, s:i, s:[s,s,s], s:[{s:o, s:s}, {s:[s], s:s, s:[{s:i, s:I, s:I, s:s}]}]}", "defaultAction",
                      "SCMP_ACT_ERRNO", "defaultErrnoRet", EPERM, "architectures", "SCMP_ARCH_X86_64", "SCMP_ARCH_X86",
                      "SCMP_ARCH_X32", "syscalls", "names", names, "action", "SCMP_ACT_ALLOW", "names", "clone", "action",
                      "SCMP_ACT_ALLOW", "args", "index", 0, "value", (json_int_t) 2114060288, "valueTwo", (json_int_t) 0,
                      "op", "SCMP_CMP_MASKED_EQ");
  text = json_dumps(profile, JSON_COMPACT);
  json_decref(profile);
  return text;
}

static void test_filters(void)
{
  struct result res;
  char *big;

  run("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"mkdir\"],\"action\":\"SCMP_ACT_ERRNO\","
      "\"errnoRet\":1}]}",
      body_mkdir_eperm, &res);
  check(res.exit_code == 0, "mkdir -> SCMP_ACT_ERRNO errnoRet 1 fails with EPERM, other calls work (%s)", res.out);

  run("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"mkdir\"],\"action\":\"SCMP_ACT_ERRNO\"}]}",
      body_mkdir_eperm, &res);
  check(res.exit_code == 0, "SCMP_ACT_ERRNO without errnoRet means EPERM (%s)", res.out);

  run("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"mkdir\"],\"action\":\"SCMP_ACT_ERRNO\","
      "\"errnoRet\":38}]}",
      body_mkdir_enosys, &res);
  check(res.exit_code == 0, "errnoRet 38 gives ENOSYS (%s)", res.out);

  run("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"getpid\"],\"action\":\"SCMP_ACT_ALLOW\"}]}",
      body_mkdir_works, &res);
  check(res.exit_code == 0, "a rule with the default action is skipped, not an error (%s)", res.out);

  run("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"personality\"],\"action\":\"SCMP_ACT_ERRNO\","
      "\"args\":[{\"index\":0,\"value\":4294967295,\"op\":\"SCMP_CMP_NE\"}]}]}",
      body_personality, &res);
  check(res.exit_code == 0, "personality: arg0 == 0xffffffff allowed, anything else ERRNO (%s)", res.out);

  run("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"personality\"],\"action\":\"SCMP_ACT_ERRNO\","
      "\"args\":[{\"index\":0,\"value\":8,\"op\":\"SCMP_CMP_EQ\"},{\"index\":0,\"value\":6,\"op\":\"SCMP_CMP_EQ\"}]}]}",
      body_personality_or, &res);
  check(res.exit_code == 0, "two comparisons on one argument become one rule each (%s)", res.out);

  {
    char path[256];
    FILE *f;
    snprintf(path, sizeof(path), "%s/f", tmpdir);
    f = fopen(path, "w");
    if (f)
      fclose(f);
    run("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"fchmodat\"],\"action\":\"SCMP_ACT_ERRNO\","
        "\"args\":[{\"index\":2,\"value\":3584,\"valueTwo\":2048,\"op\":\"SCMP_CMP_MASKED_EQ\"}]}]}",
        body_masked, &res);
    check(res.exit_code == 0, "SCMP_CMP_MASKED_EQ: (arg & value) == valueTwo (%s)", res.out);
    unlink(path);
  }

  run("{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"defaultErrnoRet\":38,\"syscalls\":[{\"names\":[\"getpid\",\"write\","
      "\"exit_group\",\"exit\",\"rt_sigreturn\",\"brk\",\"mmap\",\"munmap\",\"futex\"],\"action\":\"SCMP_ACT_ALLOW\"}]}",
      body_allowlist, &res);
  check(res.exit_code == 0, "defaultAction SCMP_ACT_ERRNO (defaultErrnoRet 38) with an allow list (%s)", res.out);

  run("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"no_such_syscall\",\"mkdir\","
      "\"another_unknown_one\"],\"action\":\"SCMP_ACT_ERRNO\"}]}",
      body_mkdir_eperm, &res);
  check(res.exit_code == 0, "unknown syscall names are skipped, the known ones filtered (%s)", res.out);

  run("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"architectures\":[\"SCMP_ARCH_X86_64\",\"SCMP_ARCH_X86\",\"SCMP_ARCH_X32\"],"
      "\"syscalls\":[{\"names\":[\"mkdir\",\"socketcall\",\"mmap2\"],\"action\":\"SCMP_ACT_ERRNO\"}]}",
      body_mkdir_eperm, &res);
  check(res.exit_code == 0, "x86_64+x86+x32 with names of the 32-bit ABI (%s)", res.out);

  run("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"flags\":[\"SECCOMP_FILTER_FLAG_TSYNC\",\"SECCOMP_FILTER_FLAG_LOG\","
      "\"SECCOMP_FILTER_FLAG_SPEC_ALLOW\"],\"syscalls\":[{\"names\":[\"mkdir\"],\"action\":\"SCMP_ACT_ERRNO\"}]}",
      body_mkdir_eperm, &res);
  check(res.exit_code == 0, "the filter flags are applied and the filter loads (%s)", res.out);

  run("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"mkdir\"],\"action\":\"SCMP_ACT_KILL_PROCESS\"}]}",
      body_kill, &res);
  check(res.signal == SIGSYS, "SCMP_ACT_KILL_PROCESS kills with SIGSYS (signal %d, exit %d, %s)", res.signal,
        res.exit_code, res.out);

  run("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"mkdir\"],\"action\":\"SCMP_ACT_KILL\"}]}",
      body_kill, &res);
  check(res.signal == SIGSYS, "SCMP_ACT_KILL kills (signal %d, %s)", res.signal, res.out);

  run("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"mkdir\"],\"action\":\"SCMP_ACT_TRAP\"}]}",
      body_trap, &res);
  check(res.exit_code == 0, "SCMP_ACT_TRAP delivers SIGSYS naming the syscall (%s)", res.out);

  run("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"mkdir\"],\"action\":\"SCMP_ACT_ERRNO\"}]}",
      body_no_nnp, &res);
  check(res.exit_code == 0, "loading the filter does not set no_new_privs (%s)", res.out);

  big = allow_all_but_mkdir();
  run(big, body_exec_sh, &res);
  check(res.exit_code == 0 && strstr(res.out, "started") && strstr(res.out, "Operation not permitted")
            && strstr(res.out, "listed"),
        "a large allow list (default ERRNO) runs /bin/sh; its mkdir is refused (%s)", res.out);
  free(big);
}

/* Without CAP_SYS_ADMIN and without no_new_privs the kernel refuses the
 * filter: the error says why. */
/* As nobody: no CAP_SYS_ADMIN, and no no_new_privs either. */
static int load_as_nobody(int fd, void *arg)
{
  struct shim_err err;
  struct seccomp_filter *f;
  json_t *p = test_json("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"mkdir\"],\"action\":\"SCMP_ACT_ERRNO\"}]}");
  if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0 || seccomp_parse(p, &f, &err) < 0)
    return 2;
  if (seccomp_apply(f, &err) == 0)
    return 1;
  dprintf(fd, "%s", err.msg);
  return 0;
}

static void test_load_refused(void)
{
  char out[1024];
  struct child_result res;
  run_child(load_as_nobody, NULL, out, sizeof(out), &res);
  check(res.exit_code == 0 && strstr(out, "linux.seccomp: load the filter") && strstr(out, "CAP_SYS_ADMIN"),
        "without CAP_SYS_ADMIN or no_new_privs the load fails clearly (%s)", out);
}

/* A filter compiled in this process, loaded in a child. */
struct compiled_case {
  struct seccomp_filter *f;
  body_fn body;
};

static int compiled_child(int fd, void *arg)
{
  const struct compiled_case *c = arg;
  struct shim_err err;
  if (seccomp_apply(c->f, &err) < 0) {
    dprintf(fd, "apply: %s", err.msg);
    return 3;
  }
  return c->body(fd) == 0 ? 0 : 1;
}

/* The shim compiles a container's filter once at create; the same profile again (its
 * keys in another order) comes from the cache, and loads and works the same. */
static void test_compile_cache(void)
{
  static const char *const profiles[] = {
    "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"mkdir\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":1}]}",
    "{\"syscalls\":[{\"errnoRet\":1,\"action\":\"SCMP_ACT_ERRNO\",\"names\":[\"mkdir\"]}],\"defaultAction\":\"SCMP_ACT_ALLOW\"}",
    "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"mkdir\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":38}]}",
  };
  struct seccomp_filter *f[3] = { NULL, NULL, NULL };
  unsigned long before = seccomp_compilations();
  struct shim_err err;
  char out[1024];
  struct child_result res;
  int ok = 1;
  for (size_t i = 0; i < 3; i++) {
    json_t *p = test_json(profiles[i]);
    ok = ok && seccomp_parse(p, &f[i], &err) == 0 && seccomp_compile(f[i], &err) == 0;
    json_decref(p);
  }
  check(ok, "three profiles parse and compile%s%s", ok ? "" : ": ", ok ? "" : err.msg);
  check(seccomp_compilations() - before == 2, "the same profile twice is compiled once (%lu compilations for 3 filters)",
        seccomp_compilations() - before);
  if (ok) {
    struct compiled_case eperm = { f[1], body_mkdir_eperm }, enosys = { f[2], body_mkdir_enosys };
    run_child(compiled_child, &eperm, out, sizeof(out), &res);
    check(res.exit_code == 0, "the cached program loads and denies mkdir with EPERM (%s)", out);
    run_child(compiled_child, &enosys, out, sizeof(out), &res);
    check(res.exit_code == 0, "the other profile's program denies it with ENOSYS (%s)", out);
  }
  for (size_t i = 0; i < 3; i++)
    seccomp_free(f[i]);
}

static void remove_tmpdir(void)
{
  char path[300];
  static const char *const leftovers[] = { "a", "b", "c", "d", "e", "f", "g" };
  for (size_t i = 0; i < sizeof(leftovers) / sizeof(leftovers[0]); i++) {
    snprintf(path, sizeof(path), "%s/%s", tmpdir, leftovers[i]);
    if (rmdir(path) < 0)
      unlink(path);
  }
  rmdir(tmpdir);
}

int main(void)
{
  if (geteuid() != 0)
    return tap_bail("must run as root");
  if (!mkdtemp(tmpdir))
    return tap_bail("mkdtemp: %s", strerror(errno));
  test_validate();
  test_filters();
  test_load_refused();
  test_compile_cache();
  remove_tmpdir();
  check(access(tmpdir, F_OK) < 0, "the temporary directory is gone");
  return tap_done();
}
