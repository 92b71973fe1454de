/* criu.c: checkpoint of a running container with CRIU, driven by the shim for its pod:
 * CRIU's command line from the container's spec, mounts and stdio (what lies outside
 * the container is named external, so that a restore can give it anew), and one run of
 * CRIU under a deadline. The process tree keeps running (leave-running). */
#include "criu_internal.h"

#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <sys/mount.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- the command line ------------------------------------------------------------- */

void argv_push(struct argv_list *a, const char *s)
{
  if (a->failed)
    return;
  if (a->n + 2 > a->cap) {
    size_t cap = a->cap ? a->cap * 2 : 32;
    char **v = realloc(a->v, cap * sizeof(*v));
    if (!v) {
      a->failed = true;
      return;
    }
    a->v = v;
    a->cap = cap;
  }
  if (!(a->v[a->n] = strdup(s))) {
    a->failed = true;
    return;
  }
  a->v[++a->n] = NULL;
}

void argv_pushf(struct argv_list *a, const char *fmt, ...)
{
  char *s = NULL;
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&s, fmt, ap) < 0)
    s = NULL;
  va_end(ap);
  if (!s) {
    a->failed = true;
    return;
  }
  argv_push(a, s);
  free(s);
}

void argv_free(struct argv_list *a)
{
  for (size_t i = 0; i < a->n; i++)
    free(a->v[i]);
  free(a->v);
  memset(a, 0, sizeof(*a));
}

bool criu_is_bind(const struct spec_mount *m)
{
  return !m->type || strcmp(m->type, "bind") == 0 || (m->flags & MS_BIND);
}

/* ---- one run ------------------------------------------------------------------------ */

static int64_t mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* In the child: join the cgroup, put the fds at 3, 4, ..., close every other, exec. */
static void criu_child(char **argv, const struct criu_run *run, struct cgroup_join *join, int out_fd)
{
  struct shim_err err;
  int high[16];
  int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  reset_signals();
  setpgid(0, 0);
  if (run->cg && cgroup_join_self(join, false, &err) < 0) {
    dprintf(out_fd, "%s\n", err.msg);
    _exit(126);
  }
  /* Out of the way first, so that moving one into place never closes another. */
  for (size_t i = 0; i < run->n_fds; i++)
    high[i] = fcntl(run->fds[i], F_DUPFD_CLOEXEC, 64);
  if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(out_fd, 2) < 0)
    _exit(126);
  for (size_t i = 0; i < run->n_fds; i++)
    if (high[i] < 0 || dup2(high[i], 3 + (int) i) < 0)
      _exit(126);
  syscall(SYS_close_range, 3 + (unsigned) run->n_fds, ~0U, 0);
  execv(argv[0], argv);
  dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
  _exit(127);
}

/* The lines of CRIU's log that say what went wrong (its "Error" lines, the last few), or
 * else the end of what it printed: one line of text for the error message. */
static void quote_failure(const struct criu_run *run, char *out, size_t len)
{
  char path[PATH_MAX];
  cleanup_free char *text = NULL;
  size_t n = 0, used = 0;
  const char *lines[6];
  size_t n_lines = 0;
  struct shim_err ignored;
  out[0] = '\0';
  snprintf(path, sizeof(path), "%s/%s", run->work_dir, run->log_name);
  if (read_file(path, &text, &n, 8 << 20, &ignored) == 0) {
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
      /* RLIMIT_NOFILE is CRIU's own tuning: it logs it as an error and carries on. */
      if (!strstr(line, "Error (") || strstr(line, "RLIMIT_NOFILE"))
        continue;
      if (n_lines == sizeof(lines) / sizeof(lines[0]))
        memmove(lines, lines + 1, sizeof(lines) - sizeof(lines[0])), n_lines--;
      lines[n_lines++] = line;
    }
    for (size_t i = 0; i < n_lines && used + 1 < len; i++)
      used += (size_t) snprintf(out + used, len - used, "%s%s", i ? " | " : "", lines[i]);
    if (n_lines)
      return;
    free(text);
    text = NULL;
  }
  snprintf(path, sizeof(path), "%s/criu.out", run->work_dir);
  if (read_file(path, &text, &n, 64 << 10, &ignored) == 0) {
    while (n && (text[n - 1] == '\n' || text[n - 1] == ' '))
      text[--n] = '\0';
    for (char *p = text; *p; p++)
      if (*p == '\n')
        *p = ' ';
    snprintf(out, len, "%s", n > 400 ? text + n - 400 : text);
  }
}

int criu_exec(struct argv_list *argv, const struct criu_run *run, struct shim_err *err)
{
  char out_path[PATH_MAX], quoted[700];
  cleanup_close int out_fd = -1, pidfd = -1;
  struct cgroup_join join;
  int64_t deadline = mono_ms() + run->timeout_ms;
  bool timed_out = false;
  int status = 0;
  pid_t pid;

  if (argv->failed || run->n_fds > 16)
    return shim_fail_errno(err, ENOMEM, "criu %s: command line", run->what);
  snprintf(out_path, sizeof(out_path), "%s/criu.out", run->work_dir);
  out_fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (out_fd < 0)
    return shim_fail_errno(err, errno, "criu %s: open %s", run->what, out_path);
  cgroup_join_init(&join);
  if (run->cg && cgroup_join_open(run->cg, &join, err) < 0)
    return -1;
  pid = fork();
  if (pid < 0) {
    cgroup_join_close(&join);
    return shim_fail_errno(err, errno, "criu %s: fork", run->what);
  }
  if (pid == 0)
    criu_child(argv->v, run, &join, out_fd);
  cgroup_join_close(&join);
  shim_log("criu %s: pid %d", run->what, (int) pid);
  pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
  /* The shim serves its pod from one thread: it waits here, as for a hook (PROTOCOL.md). */
  for (;;) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    int64_t left = deadline - mono_ms();
    if (r == pid)
      break;
    if (r < 0 && errno != EINTR)
      return shim_fail_errno(err, errno, "criu %s: wait", run->what);
    if (left <= 0) {
      timed_out = true;
      kill(-pid, SIGKILL), kill(pid, SIGKILL);
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
      break;
    }
    if (pidfd >= 0)
      poll(&(struct pollfd) { .fd = pidfd, .events = POLLIN }, 1, (int) (left > 1000 ? 1000 : left));
    else
      poll(NULL, 0, left > 20 ? 20 : (int) left);
  }
  if (!timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0)
    return 0;
  quote_failure(run, quoted, sizeof(quoted));
  if (timed_out)
    return shim_fail(err, SHIM_DEADLINE_EXCEEDED, "criu %s: not done after %lld ms (killed)%s%s", run->what,
                     (long long) run->timeout_ms, quoted[0] ? ": " : "", quoted);
  if (WIFSIGNALED(status))
    return shim_fail(err, SHIM_INTERNAL, "criu %s: killed by signal %d%s%s", run->what, WTERMSIG(status),
                     quoted[0] ? ": " : "", quoted);
  return shim_fail(err, SHIM_INTERNAL, "criu %s failed (exit status %d): %s", run->what, WEXITSTATUS(status),
                   quoted[0] ? quoted : "no error in its log");
}

/* ---- what lies outside the container ------------------------------------------------ */

/* Each mount point of the container's cgroup hierarchies (binds of the host's cgroup dirs, or
 * a cgroup2 mount): external, keyed by its mount point. */
static int add_cgroup_mounts(pid_t pid, struct argv_list *argv, struct shim_err *err)
{
  char path[64];
  cleanup_free char *text = NULL;
  size_t len;
  snprintf(path, sizeof(path), "/proc/%d/mountinfo", (int) pid);
  if (read_file(path, &text, &len, 4 << 20, err) < 0)
    return -1;
  for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
    char mnt[PATH_MAX], fstype[64];
    const char *sep = strstr(line, " - ");
    if (!sep || sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1 || sscanf(sep + 3, "%63s", fstype) != 1)
      continue;
    if (strcmp(fstype, "cgroup") != 0 && strcmp(fstype, "cgroup2") != 0)
      continue;
    /* The kernel writes a space in a mount point as \040: the shim's never have one. */
    argv_push(argv, "--external");
    argv_pushf(argv, "mnt[%s]:%s", mnt, mnt);
  }
  return 0;
}

/* Whether the mount mnt_id is one of the process's own (in its mount namespace). */
static bool mount_visible(pid_t pid, int mnt_id)
{
  char path[64], want[32];
  cleanup_free char *text = NULL;
  size_t len;
  struct shim_err ignored;
  snprintf(path, sizeof(path), "/proc/%d/mountinfo", (int) pid);
  if (read_file(path, &text, &len, 4 << 20, &ignored) < 0)
    return true;
  snprintf(want, sizeof(want), "%d ", mnt_id);
  for (char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
    if (strncmp(line, want, strlen(want)) == 0)
      return true;
  return false;
}

/* The CRIU name of the init's stdio fd: its pipe, the pty the shim holds the master of, or
 * a file opened outside the container's mounts (the /dev/null of a process without stdin);
 * external to CRIU, given anew at restore. "" for a file CRIU finds by itself. */
static int stdio_key(pid_t pid, int fd, char *key, size_t len, struct argv_list *argv, struct shim_err *err)
{
  char path[64], target[PATH_MAX];
  struct stat st;
  ssize_t n;
  key[0] = '\0';
  snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int) pid, fd);
  n = readlink(path, target, sizeof(target) - 1);
  if (n < 0)
    return errno == ENOENT ? 0 : shim_fail_errno(err, errno, "readlink %s", path);
  target[n] = '\0';
  if (strncmp(target, "pipe:[", 6) == 0) {
    snprintf(key, len, "%s", target);
    return 0;
  }
  if (stat(path, &st) < 0)
    return shim_fail_errno(err, errno, "stat %s", path);
  if (S_ISCHR(st.st_mode) && major(st.st_rdev) >= 136 && major(st.st_rdev) <= 143) { /* a pty slave: the shim has its master */
    snprintf(key, len, "tty[%llx:%llx]", (unsigned long long) st.st_rdev, (unsigned long long) st.st_dev);
  } else {
    char info[PATH_MAX];
    cleanup_free char *text = NULL;
    size_t tlen;
    const char *m;
    int mnt_id;
    snprintf(info, sizeof(info), "/proc/%d/fdinfo/%d", (int) pid, fd);
    if (read_file(info, &text, &tlen, 64 << 10, err) < 0)
      return -1;
    if (!(m = strstr(text, "mnt_id:")) || sscanf(m + 7, "%d", &mnt_id) != 1 || mount_visible(pid, mnt_id))
      return 0;
    snprintf(key, len, "file[%x:%llx]", mnt_id, (unsigned long long) st.st_ino);
  }
  /* The same file on two fds is named once. */
  for (size_t i = 0; i + 1 < argv->n; i++)
    if (strcmp(argv->v[i], "--external") == 0 && strcmp(argv->v[i + 1], key) == 0)
      return 0;
  argv_push(argv, "--external");
  argv_push(argv, key);
  return 0;
}

static int ns_inode(pid_t pid, const char *type, unsigned long long *ino, struct shim_err *err)
{
  char path[64];
  struct stat st;
  snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int) pid, type);
  if (stat(path, &st) < 0)
    return shim_fail_errno(err, errno, "stat %s", path);
  *ino = (unsigned long long) st.st_ino;
  return 0;
}

/* ---- checkpoint ----------------------------------------------------------------- */

static int abs_dir_param(json_t *params, const char *key, const char **out, struct shim_err *err)
{
  if (field_string(params, key, "params", out, err) < 0)
    return -1;
  if (!*out || (*out)[0] != '/')
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "params.%s: absolute path required", key);
  if (!path_is_dir(*out))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "params.%s: %s is not a directory", key, *out);
  return 0;
}

int criu_checkpoint(struct container *c, json_t *params, json_t **result, struct shim_err *err)
{
  const char *criu, *images, *work;
  int64_t timeout_ms;
  bool present;
  cleanup_spec struct spec *spec = NULL;
  struct argv_list argv = { 0 };
  char keys[3][128], path[PATH_MAX];
  cleanup_json json_t *descriptors = NULL;
  cleanup_free char *text = NULL;
  int rc = -1;

  if (field_string(params, "criu", "params", &criu, err) < 0 || abs_dir_param(params, "imagesDir", &images, err) < 0
      || abs_dir_param(params, "workDir", &work, err) < 0
      || field_int64(params, "timeoutMs", "params", &present, &timeout_ms, err) < 0)
    return -1;
  if (!criu || criu[0] != '/')
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "params.criu: absolute path required");
  if (!present || timeout_ms <= 0)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "params.timeoutMs: a positive number required");
  if (c->status != CTR_RUNNING)
    return shim_fail(err, SHIM_FAILED_PRECONDITION, "container \"%s\" is not running", c->id);
  if (spec_load(c->bundle, &spec, err) < 0)
    return -1;
  if (ns_listed(&spec->ns, CLONE_NEWUSER))
    return shim_fail(err, SHIM_FAILED_PRECONDITION,
                     "container \"%s\" is in a user namespace: skiff does not checkpoint those", c->id);

  argv_push(&argv, criu);
  argv_push(&argv, "dump");
  argv_pushf(&argv, "--tree=%d", (int) c->pid);
  argv_pushf(&argv, "--images-dir=%s", images);
  argv_pushf(&argv, "--work-dir=%s", work);
  argv_push(&argv, "--log-file=dump.log");
  argv_push(&argv, "-v4");
  argv_push(&argv, "--leave-running");
  argv_push(&argv, "--manage-cgroups");
  argv_push(&argv, "--file-locks");
  /* The pod's network namespace is not the container's to lock: its other containers use it. */
  argv_push(&argv, "--network-lock=skip");
  /* Namespaces the container joined are the pod's: named, not dumped. ipc and uts are
   * dumped (their state is small) and the restore joins the new pod's in their place. */
  for (size_t i = 0; i < spec->ns.n; i++) {
    const struct spec_namespace *n = &spec->ns.list[i];
    unsigned long long ino = 0;
    if (!n->path || (n->flag != CLONE_NEWNET && n->flag != CLONE_NEWPID))
      continue;
    if (ns_inode(c->pid, n->flag == CLONE_NEWNET ? "net" : "pid", &ino, err) < 0)
      goto out;
    argv_push(&argv, "--external");
    argv_pushf(&argv, "%s[%llu]:%s", n->flag == CLONE_NEWNET ? "net" : "pid", ino,
               n->flag == CLONE_NEWNET ? CRIU_NET_KEY : CRIU_PID_KEY);
  }
  for (size_t i = 0; i < spec->rootfs.n_mounts; i++) {
    const struct spec_mount *m = &spec->rootfs.mounts[i];
    if (!criu_is_bind(m))
      continue;
    argv_push(&argv, "--external");
    argv_pushf(&argv, "mnt[%s]:%s", m->dest, m->dest);
  }
  if (add_cgroup_mounts(c->pid, &argv, err) < 0)
    goto out;
  descriptors = json_array();
  for (int fd = 0; fd < 3; fd++) {
    if (stdio_key(c->pid, fd, keys[fd], sizeof(keys[fd]), &argv, err) < 0)
      goto out;
    json_array_append_new(descriptors, json_string(keys[fd]));
  }
  /* What the restore gives each stdio fd of the init: written before the dump, so that
   * the images never go without it. */
  text = json_dumps(descriptors, JSON_COMPACT);
  snprintf(path, sizeof(path), "%s/%s", images, CRIU_DESCRIPTORS);
  if (!text || write_file_atomic(path, text, strlen(text), err) < 0)
    goto out;
  {
    struct criu_run run = { .what = "dump", .work_dir = work, .log_name = "dump.log", .timeout_ms = timeout_ms };
    int64_t started = now_ns();
    if (criu_exec(&argv, &run, err) < 0) {
      shim_err_prefix(err, "checkpoint container \"%s\"", c->id);
      goto out;
    }
    shim_log("checkpointed container %s in %lld ms", c->id, (long long) ((now_ns() - started) / 1000000));
  }
  *result = json_pack("{s:O}", "stdio", descriptors);
  rc = 0;
out:
  argv_free(&argv);
  return rc;
}
