/* proc_setup.c: a container's or exec'd process's own set-up, in the process between
 * its clone and execve: signals, rlimits, oom_score_adj, its terminal, the user switch
 * with capabilities, its cwd, and finding the executable as execvp would. */
#include "core.h"

#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* The shim blocks the signals its signalfd reads and ignores SIGPIPE; a
 * blocked mask and ignored dispositions survive execve, so undo both. */
void reset_signals(void)
{
  sigset_t none;
  sigemptyset(&none);
  for (int sig = 1; sig < NSIG; sig++)
    if (sig != SIGKILL && sig != SIGSTOP)
      signal(sig, SIG_DFL);
  sigprocmask(SIG_SETMASK, &none, NULL);
}

int apply_rlimits(const struct spec_process *p, struct shim_err *err)
{
  for (size_t i = 0; i < p->n_rlimits; i++) {
    const struct spec_rlimit *r = &p->rlimits[i];
    struct rlimit rl = { .rlim_cur = (rlim_t) r->soft, .rlim_max = (rlim_t) r->hard };
    if (setrlimit(r->resource, &rl) < 0)
      return shim_fail_errno(err, errno, "process.rlimits[%zu]: setrlimit %s soft %llu hard %llu", i, r->type,
                             (unsigned long long) rl.rlim_cur, (unsigned long long) rl.rlim_max);
  }
  return 0;
}

int set_oom_score_adj(const struct spec_process *p, struct shim_err *err)
{
  char buf[32];
  if (!p->has_oom_score_adj)
    return 0;
  snprintf(buf, sizeof(buf), "%d", p->oom_score_adj);
  if (write_file("/proc/self/oom_score_adj", buf, strlen(buf), 0, err) < 0) {
    shim_err_prefix(err, "process.oomScoreAdj %s", buf);
    return -1;
  }
  return 0;
}

/* Open a terminal inside the container's own devpts (so ttyname works there),
 * make it our controlling terminal, and return the master for the shim. */
int setup_tty(uid_t uid, int *master_out, struct shim_err *err)
{
  char name[64];
  cleanup_close int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  cleanup_close int slave = -1;
  if (master < 0)
    return shim_fail_errno(err, errno, "process.terminal: open /dev/ptmx in the container");
  if (grantpt(master) < 0 || unlockpt(master) < 0 || ptsname_r(master, name, sizeof(name)) != 0)
    return shim_fail_errno(err, errno, "process.terminal: unlock pty");
  slave = open(name, O_RDWR | O_NOCTTY);
  if (slave < 0)
    return shim_fail_errno(err, errno, "process.terminal: open %s", name);
  if (fchown(slave, uid, (gid_t) -1) < 0 && errno != EPERM && errno != EINVAL)
    shim_log("chown %s: %s", name, strerror(errno));
  if (ioctl(slave, TIOCSCTTY, 0) < 0 || dup2(slave, 0) < 0 || dup2(slave, 1) < 0 || dup2(slave, 2) < 0)
    return shim_fail_errno(err, errno, "process.terminal: attach %s", name);
  if (slave <= 2)
    slave = -1; /* it is stdin, stdout and stderr now */
  *master_out = master;
  master = -1;
  return 0;
}

/* The value of NAME in a process env list, or NULL. */
static const char *env_lookup(char **env, const char *name)
{
  size_t n = strlen(name);
  for (char **e = env; *e; e++)
    if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
      return *e + n + 1;
  return NULL;
}

static int is_executable(const char *path)
{
  struct stat st;
  if (stat(path, &st) < 0)
    return -errno;
  if (!S_ISREG(st.st_mode))
    return -EACCES;
  if (access(path, X_OK) < 0)
    return -errno;
  return 0;
}

/* Resolve args[0] the way execvp does, inside the container, as its user. */
int find_executable(const char *arg0, char **env, char *out, size_t len, struct shim_err *err)
{
  const char *path = env_lookup(env, "PATH");
  if (strchr(arg0, '/')) {
    int r = is_executable(arg0);
    if (r < 0)
      return shim_fail_errno(err, -r, "exec: \"%s\"", arg0);
    snprintf(out, len, "%s", arg0);
    return 0;
  }
  if (!path)
    path = DEFAULT_PATH;
  for (const char *p = path;;) {
    const char *end = strchr(p, ':');
    size_t dlen = end ? (size_t) (end - p) : strlen(p);
    if (dlen == 0)
      snprintf(out, len, "./%s", arg0);
    else
      snprintf(out, len, "%.*s/%s", (int) dlen, p, arg0);
    if (is_executable(out) == 0)
      return 0;
    if (!end)
      break;
    p = end + 1;
  }
  shim_fail(err, SHIM_NOT_FOUND, "exec: \"%s\": executable file not found in $PATH", arg0);
  return -1;
}

int switch_user(const struct spec_process *p, struct shim_err *err)
{
  bool set_caps = p->caps.listed;
  if (p->umask >= 0)
    umask((mode_t) p->umask);
  if (set_caps && caps_drop_bounding(&p->caps, err) < 0)
    return -1;
  if (setgroups(p->n_gids, p->gids) < 0) {
    /* In a user namespace with setgroups denied, only an empty list is allowed. */
    if (!(errno == EPERM && p->n_gids == 0))
      return shim_fail_errno(err, errno, "process.user.additionalGids: setgroups");
  }
  if (set_caps && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
    return shim_fail_errno(err, errno, "prctl(PR_SET_KEEPCAPS)");
  if (setresgid(p->gid, p->gid, p->gid) < 0)
    return shim_fail_errno(err, errno, "process.user.gid: setresgid(%u)", (unsigned) p->gid);
  if (setresuid(p->uid, p->uid, p->uid) < 0)
    return shim_fail_errno(err, errno, "process.user.uid: setresuid(%u)", (unsigned) p->uid);
  if (set_caps) {
    prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
    if (caps_set(&p->caps, err) < 0)
      return -1;
  }
  return 0;
}

int ensure_cwd(const char *cwd, struct shim_err *err)
{
  char buf[PATH_MAX];
  if (mkdir_p(cwd, 0755, err) < 0 && errno != EEXIST) {
    shim_err_prefix(err, "process.cwd");
    return -1;
  }
  if (chdir(cwd) < 0)
    return shim_fail_errno(err, errno, "process.cwd: chdir %s", cwd);
  /* A cwd reached through a leaked fd (/proc/self/fd/N) would lie outside our
   * root: getcwd reports such a path as unreachable (CVE-2024-21626). */
  if (!getcwd(buf, sizeof(buf)) || buf[0] != '/')
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "process.cwd: %s is outside the container's root", cwd);
  return 0;
}
