/* test_caps.c: capability sets by name: validation, the bounding drop, capset
 * as root and after a switch to uid 1000, ambient caps surviving execve.
 * Every case that changes capabilities runs in a forked child. */
#include "harness.h"

#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <unistd.h>

#define BIT(n) (1ULL << (n))
#define CHOWN 0
#define NET_BIND 10
#define SYS_ADMIN 21

/* Value of a "CapXxx:\t<hex>" line in /proc/<pid>/status text; ~0 if absent. */
static uint64_t cap_field(const char *status, const char *field)
{
  size_t len = strlen(field);
  for (const char *p = status; (p = strstr(p, field)) != NULL; p += len) {
    if ((p == status || p[-1] == '\n') && p[len] == ':')
      return strtoull(p + len + 1, NULL, 16);
  }
  return ~0ULL;
}

static void child_fail(int fd, const char *what, const struct shim_err *err)
{
  dprintf(fd, "ERROR %s: %s\n", what, err ? err->msg : strerror(errno));
  _exit(2);
}

static void child_send_status(int fd)
{
  struct shim_err err;
  char *text = NULL;
  if (read_file("/proc/self/status", &text, NULL, 1 << 20, &err) < 0)
    child_fail(fd, "read status", &err);
  write_all(fd, text, strlen(text));
  _exit(0);
}

/* Modes of the child. */
enum mode {
  AS_ROOT,        /* drop bounding, capset, report /proc/self/status */
  AS_USER_EXEC,   /* drop bounding, switch to uid 1000, capset, exec grep */
  SET_ONLY,       /* caps_set only, report the error if any */
  NO_PROC_SYS,    /* AS_ROOT with /proc/sys/kernel hidden (private mount ns) */
};

struct caps_case {
  enum mode mode;
  const char *process_json;
};

static int caps_child(int fd, void *arg)
{
  const struct caps_case *c = arg;
  struct shim_err err;
  struct spec_caps caps;
  json_t *process = test_json(c->process_json);
  /* cap_last_cap unreadable, as in a rootfs without /proc. */
  if (c->mode == NO_PROC_SYS && (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0
                                 || mount("tmpfs", "/proc/sys/kernel", "tmpfs", 0, NULL) < 0))
    child_fail(fd, "hide /proc/sys/kernel", NULL);
  if (caps_parse(process, &caps, &err) < 0)
    child_fail(fd, "caps_parse", &err);
  if (c->mode != SET_ONLY && caps_drop_bounding(&caps, &err) < 0)
    child_fail(fd, "caps_drop_bounding", &err);
  if (c->mode == AS_USER_EXEC) {
    if (setgroups(0, NULL) < 0 || prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0 || setresgid(1000, 1000, 1000) < 0
        || setresuid(1000, 1000, 1000) < 0)
      child_fail(fd, "switch to uid 1000", NULL);
    prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
  }
  if (caps_set(&caps, &err) < 0)
    child_fail(fd, "caps_set", &err);
  if (c->mode == AS_USER_EXEC) {
    char *argv[] = { "/bin/sh", "-c", "grep Cap /proc/self/status", NULL };
    char *envp[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL };
    if (dup2(fd, 1) < 0)
      child_fail(fd, "dup2", NULL);
    execve(argv[0], argv, envp);
    child_fail(fd, "execve /bin/sh", NULL);
  }
  child_send_status(fd);
  return 0;
}

/* Run one case in a child; its output (status text or "ERROR ...") goes to
 * out. Returns the child's exit code, or -1 if it did not exit normally. */
static int run(enum mode mode, const char *process_json, char *out, size_t out_len)
{
  struct caps_case c = { mode, process_json };
  struct child_result res;
  size_t n;
  run_child(caps_child, &c, out, out_len, &res);
  n = strlen(out);
  while (n > 0 && out[n - 1] == '\n')
    out[--n] = '\0';
  return res.exit_code;
}

/* caps_parse, for what it accepts and refuses. */
static int validate(json_t *process, struct shim_err *err)
{
  struct spec_caps caps;
  return caps_parse(process, &caps, err);
}

static void test_validate(void)
{
  struct shim_err err;
  json_t *p;
  char all[4096] = "{\"capabilities\":{\"bounding\":[";
  static const char *const every[] = {
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN",
    "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
  };

  for (size_t i = 0; i < sizeof(every) / sizeof(every[0]); i++) {
    strcat(all, i ? ",\"" : "\"");
    strcat(all, every[i]);
    strcat(all, "\"");
  }
  strcat(all, "]}}");
  p = test_json(all);
  check(validate(p, &err) == 0, "all 41 capability names are valid");
  json_decref(p);

  p = test_json("{\"args\":[\"true\"]}");
  check(validate(p, &err) == 0, "absent capabilities are valid");
  json_decref(p);

  p = test_json("{\"capabilities\":{\"bounding\":[\"CAP_CHOWN\"],\"effective\":[\"CAP_CHOWN\",\"CAP_KILL\",\"CAP_FOO\"]}}");
  check(validate(p, &err) < 0 && err.code == SHIM_INVALID_ARGUMENT
            && strstr(err.msg, "process.capabilities.effective[2]: unknown capability \"CAP_FOO\""),
        "an unknown name is refused with its path (%s)", err.msg);
  json_decref(p);

  p = test_json("{\"capabilities\":{\"ambient\":[\"chown\"]}}");
  check(validate(p, &err) < 0 && strstr(err.msg, "process.capabilities.ambient[0]"),
        "names are case-sensitive and need the CAP_ prefix (%s)", err.msg);
  json_decref(p);

  p = test_json("{\"capabilities\":{\"permitted\":[\"CAP_CHOWN\", 7]}}");
  check(validate(p, &err) < 0 && strstr(err.msg, "process.capabilities.permitted[1]: must be a string"),
        "a non-string entry is refused (%s)", err.msg);
  json_decref(p);

  p = test_json("{\"capabilities\":{\"inheritable\":\"CAP_CHOWN\"}}");
  check(validate(p, &err) < 0 && strstr(err.msg, "process.capabilities.inheritable"),
        "a set that is not an array is refused (%s)", err.msg);
  json_decref(p);

  p = test_json("{\"capabilities\":[\"CAP_CHOWN\"]}");
  check(validate(p, &err) < 0 && strstr(err.msg, "process.capabilities"),
        "capabilities that are not an object are refused (%s)", err.msg);
  json_decref(p);
}

int main(void)
{
  char out[8192], parent_status[8192];
  struct shim_err err;
  char *text = NULL;
  int rc;

  if (geteuid() != 0)
    return tap_bail("must run as root");
  if (read_file("/proc/self/status", &text, NULL, 1 << 20, &err) < 0)
    return tap_bail("read /proc/self/status: %s", err.msg);
  snprintf(parent_status, sizeof(parent_status), "%s", text);
  free(text);

  test_validate();

  rc = run(AS_ROOT,
           "{\"capabilities\":{\"bounding\":[\"CAP_CHOWN\",\"CAP_NET_BIND_SERVICE\"],"
           "\"effective\":[\"CAP_CHOWN\",\"CAP_NET_BIND_SERVICE\"],"
           "\"permitted\":[\"CAP_CHOWN\",\"CAP_NET_BIND_SERVICE\"]}}",
           out, sizeof(out));
  check(rc == 0, "root: bounding drop and capset succeed (%s)", rc ? out : "");
  check(rc == 0 && cap_field(out, "CapEff") == (BIT(CHOWN) | BIT(NET_BIND)), "root: CapEff is exactly the listed set (%llx)",
        (unsigned long long) cap_field(out, "CapEff"));
  check(rc == 0 && cap_field(out, "CapPrm") == (BIT(CHOWN) | BIT(NET_BIND)), "root: CapPrm is exactly the listed set (%llx)",
        (unsigned long long) cap_field(out, "CapPrm"));
  check(rc == 0 && cap_field(out, "CapBnd") == (BIT(CHOWN) | BIT(NET_BIND)), "root: CapBnd is exactly the listed set (%llx)",
        (unsigned long long) cap_field(out, "CapBnd"));
  check(rc == 0 && cap_field(out, "CapInh") == 0 && cap_field(out, "CapAmb") == 0,
        "root: unlisted inheritable and ambient sets are empty");

  rc = run(AS_USER_EXEC,
           "{\"capabilities\":{\"bounding\":[\"CAP_CHOWN\",\"CAP_NET_BIND_SERVICE\"],"
           "\"effective\":[\"CAP_NET_BIND_SERVICE\"],\"permitted\":[\"CAP_NET_BIND_SERVICE\"],"
           "\"inheritable\":[\"CAP_NET_BIND_SERVICE\"],\"ambient\":[\"CAP_NET_BIND_SERVICE\"]}}",
           out, sizeof(out));
  check(rc == 0, "uid 1000: caps set and /bin/sh ran (%s)", rc ? out : "");
  check(rc == 0 && cap_field(out, "CapAmb") == BIT(NET_BIND), "uid 1000: CapAmb survives execve (%llx)",
        (unsigned long long) cap_field(out, "CapAmb"));
  check(rc == 0 && cap_field(out, "CapEff") == BIT(NET_BIND) && cap_field(out, "CapPrm") == BIT(NET_BIND),
        "uid 1000: CapEff/CapPrm after execve come from the ambient set (%llx/%llx)",
        (unsigned long long) cap_field(out, "CapEff"), (unsigned long long) cap_field(out, "CapPrm"));
  check(rc == 0 && cap_field(out, "CapBnd") == (BIT(CHOWN) | BIT(NET_BIND)), "uid 1000: CapBnd after execve (%llx)",
        (unsigned long long) cap_field(out, "CapBnd"));

  rc = run(AS_USER_EXEC,
           "{\"capabilities\":{\"bounding\":[\"CAP_CHOWN\",\"CAP_NET_BIND_SERVICE\"],"
           "\"effective\":[\"CAP_NET_BIND_SERVICE\"],\"permitted\":[\"CAP_NET_BIND_SERVICE\"],"
           "\"ambient\":[\"CAP_NET_BIND_SERVICE\"]}}",
           out, sizeof(out));
  check(rc == 0 && cap_field(out, "CapAmb") == 0 && cap_field(out, "CapEff") == 0,
        "uid 1000: an ambient cap that is not inheritable is skipped, so execve drops it (rc %d, %s)", rc,
        rc ? out : "");

  rc = run(AS_USER_EXEC,
           "{\"capabilities\":{\"bounding\":[\"CAP_CHOWN\"],\"effective\":[\"CAP_CHOWN\"],\"permitted\":[\"CAP_CHOWN\"]}}",
           out, sizeof(out));
  check(rc == 0 && cap_field(out, "CapEff") == 0 && cap_field(out, "CapPrm") == 0,
        "uid 1000: without ambient caps a plain user has none after execve (rc %d)", rc);

  rc = run(SET_ONLY, "{\"capabilities\":{\"effective\":[\"CAP_CHOWN\"],\"permitted\":[\"CAP_KILL\"]}}", out, sizeof(out));
  check(rc == 2 && strstr(out, "process.capabilities.effective: CAP_CHOWN is not in permitted"),
        "an effective cap outside permitted is refused by name (%s)", out);

  rc = run(AS_ROOT,
           "{\"capabilities\":{\"bounding\":[\"CAP_CHOWN\"],\"permitted\":[\"CAP_CHOWN\"],"
           "\"inheritable\":[\"CAP_SYS_ADMIN\"]}}",
           out, sizeof(out));
  check(rc == 2 && strstr(out, "process.capabilities.inheritable: CAP_SYS_ADMIN is not in the bounding set"),
        "an inheritable cap outside the bounding set is refused by name (%s)", out);

  rc = run(AS_ROOT, "{\"args\":[\"true\"]}", out, sizeof(out));
  check(rc == 0 && cap_field(out, "CapEff") == cap_field(parent_status, "CapEff")
            && cap_field(out, "CapBnd") == cap_field(parent_status, "CapBnd")
            && cap_field(out, "CapPrm") == cap_field(parent_status, "CapPrm"),
        "absent capabilities leave every set as it was (CapBnd %llx)", (unsigned long long) cap_field(out, "CapBnd"));

  rc = run(AS_ROOT, "{\"capabilities\":null}", out, sizeof(out));
  check(rc == 0 && cap_field(out, "CapBnd") == cap_field(parent_status, "CapBnd")
            && cap_field(out, "CapEff") == cap_field(parent_status, "CapEff"),
        "null capabilities leave every set as it was");

  rc = run(AS_ROOT, "{\"capabilities\":{\"effective\":[\"CAP_KILL\"],\"permitted\":[\"CAP_KILL\"]}}", out, sizeof(out));
  check(rc == 0 && cap_field(out, "CapBnd") == 0 && cap_field(out, "CapEff") == BIT(5),
        "a capabilities object without bounding empties the bounding set (CapBnd %llx)",
        (unsigned long long) cap_field(out, "CapBnd"));

  rc = run(AS_ROOT,
           "{\"capabilities\":{\"bounding\":[\"CAP_CHECKPOINT_RESTORE\",\"CAP_SYS_ADMIN\"],"
           "\"effective\":[\"CAP_CHECKPOINT_RESTORE\"],\"permitted\":[\"CAP_CHECKPOINT_RESTORE\"]}}",
           out, sizeof(out));
  {
    /* CAP_CHECKPOINT_RESTORE (40) is in kernels since 5.9. */
    uint64_t want = BIT(SYS_ADMIN) | (cap_field(parent_status, "CapBnd") & BIT(40));
    check(rc == 0 && cap_field(out, "CapBnd") == want && cap_field(out, "CapEff") == (want & BIT(40)),
          "the highest cap (CAP_CHECKPOINT_RESTORE, 40) is handled in the second capset word (CapBnd %llx)",
          (unsigned long long) cap_field(out, "CapBnd"));
  }

  rc = run(NO_PROC_SYS,
           "{\"capabilities\":{\"bounding\":[\"CAP_CHOWN\",\"CAP_CHECKPOINT_RESTORE\"],"
           "\"effective\":[\"CAP_CHOWN\"],\"permitted\":[\"CAP_CHOWN\"]}}",
           out, sizeof(out));
  check(rc == 0 && cap_field(out, "CapBnd") == (BIT(CHOWN) | (cap_field(parent_status, "CapBnd") & BIT(40)))
            && cap_field(out, "CapEff") == BIT(CHOWN),
        "without /proc/sys the last cap is probed and the bounding drop still works (rc %d, %s)", rc, rc ? out : "");

  rc = run(AS_ROOT,
           "{\"capabilities\":{\"bounding\":[\"CAP_CHOWN\",\"CAP_CHOWN\"],"
           "\"effective\":[\"CAP_CHOWN\",\"CAP_CHOWN\"],\"permitted\":[\"CAP_CHOWN\"]}}",
           out, sizeof(out));
  check(rc == 0 && cap_field(out, "CapEff") == BIT(CHOWN) && cap_field(out, "CapBnd") == BIT(CHOWN),
        "a name listed twice is harmless");

  return tap_done();
}
