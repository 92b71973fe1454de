/* util.c: generic file, process and time helpers shared by the shim's modules, and the
 * shim's own diagnostics log. */
#include "shim.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sched.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void shim_log(const char *fmt, ...)
{
  char ts[64];
  va_list ap;
  format_rfc3339nano(now_ns(), ts, sizeof(ts));
  fprintf(stderr, "%s [%d] ", ts, (int) getpid());
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  fflush(stderr);
}

ssize_t read_all(int fd, void *buf, size_t len)
{
  size_t done = 0;
  while (done < len) {
    ssize_t r = read(fd, (char *) buf + done, len - done);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return -1;
    if (r == 0)
      break;
    done += (size_t) r;
  }
  return (ssize_t) done;
}

ssize_t write_all(int fd, const void *buf, size_t len)
{
  size_t done = 0;
  while (done < len) {
    ssize_t w = write(fd, (const char *) buf + done, len - done);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0)
      return -1;
    done += (size_t) w;
  }
  return (ssize_t) done;
}

void kill_and_reap(pid_t pid)
{
  if (pid <= 0)
    return;
  kill(pid, SIGKILL);
  while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
    ;
}

pid_t clone_child(uint64_t flags, int cgroup_fd, bool *in_cgroup)
{
  /* CLONE_PARENT children inherit our exit signal; clone3 wants none given then. */
  struct clone_args args = { .flags = flags, .exit_signal = (flags & CLONE_PARENT) ? 0 : SIGCHLD };
  long pid;
  if (cgroup_fd >= 0) {
    args.flags |= CLONE_INTO_CGROUP;
    args.cgroup = (uint64_t) cgroup_fd;
  }
  *in_cgroup = cgroup_fd >= 0; /* before the call: the child sees it too */
  pid = syscall(SYS_clone3, &args, sizeof(args));
  if (pid >= 0 || errno != ENOSYS)
    return (pid_t) pid;
  /* No clone3 (a seccomp profile around the shim may hide it): clone(2), without
   * the cgroup. Without CLONE_VM either behaves as fork, on our stack. */
  *in_cgroup = false;
  return (pid_t) syscall(SYS_clone, (unsigned long) flags | ((flags & CLONE_PARENT) ? 0 : SIGCHLD), NULL, NULL, NULL, NULL);
}

void cleanup_reapp(pid_t *pid)
{
  int saved = errno;
  kill_and_reap(*pid);
  errno = saved;
}

void cleanup_dirp(void *dir)
{
  DIR *d = *(DIR **) dir;
  if (d)
    closedir(d);
}

int write_file_at(int dirfd, const char *name, const char *data, size_t len, struct shim_err *err)
{
  cleanup_close int fd = openat(dirfd, name, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return shim_fail_errno(err, errno, "open %s", name);
  if (write_all(fd, data, len) < 0)
    return shim_fail_errno(err, errno, "write %s", name);
  return 0;
}

int write_file(const char *path, const char *data, size_t len, int flags, struct shim_err *err)
{
  cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC | flags, 0600);
  if (fd < 0)
    return shim_fail_errno(err, errno, "open %s", path);
  if (write_all(fd, data, len) < 0)
    return shim_fail_errno(err, errno, "write %s", path);
  return 0;
}

static int read_fd(int fd, const char *name, char **out, size_t *len, size_t max, struct shim_err *err)
{
  size_t cap = 4096, n = 0;
  cleanup_free char *buf = malloc(cap + 1);
  if (!buf)
    return shim_fail_errno(err, ENOMEM, "read %s", name);
  for (;;) {
    ssize_t r;
    if (n == cap) {
      char *nb;
      if (cap >= max)
        return shim_fail(err, SHIM_RESOURCE_EXHAUSTED, "read %s: larger than %zu bytes", name, max);
      cap = cap * 2 > max ? max : cap * 2;
      nb = realloc(buf, cap + 1);
      if (!nb)
        return shim_fail_errno(err, ENOMEM, "read %s", name);
      buf = nb;
    }
    r = read(fd, buf + n, cap - n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return shim_fail_errno(err, errno, "read %s", name);
    if (r == 0)
      break;
    n += (size_t) r;
  }
  buf[n] = '\0';
  *out = buf;
  buf = NULL;
  if (len)
    *len = n;
  return 0;
}

int read_file(const char *path, char **out, size_t *len, size_t max, struct shim_err *err)
{
  cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return shim_fail_errno(err, errno, "open %s", path);
  return read_fd(fd, path, out, len, max, err);
}

int read_file_at(int dirfd, const char *name, char **out, size_t *len, size_t max, struct shim_err *err)
{
  cleanup_close int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return shim_fail_errno(err, errno, "open %s", name);
  return read_fd(fd, name, out, len, max, err);
}

int write_file_atomic(const char *path, const char *data, size_t len, struct shim_err *err)
{
  char tmp[PATH_MAX];
  cleanup_close int fd = -1;
  if (snprintf(tmp, sizeof(tmp), "%s.tmp%d", path, (int) getpid()) >= (int) sizeof(tmp))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "path too long: %s", path);
  fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return shim_fail_errno(err, errno, "create %s", tmp);
  if (write_all(fd, data, len) < 0 || fsync(fd) < 0) {
    int e = errno;
    unlink(tmp);
    return shim_fail_errno(err, e, "write %s", tmp);
  }
  if (rename(tmp, path) < 0) {
    int e = errno;
    unlink(tmp);
    return shim_fail_errno(err, e, "rename %s", path);
  }
  return 0;
}

bool path_exists(const char *path)
{
  return access(path, F_OK) == 0;
}

bool path_is_dir(const char *path)
{
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int mkdir_p(const char *path, mode_t mode, struct shim_err *err)
{
  char buf[PATH_MAX];
  size_t len = strlen(path);
  if (len == 0 || len >= sizeof(buf))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "bad directory path \"%s\"", path);
  memcpy(buf, path, len + 1);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/')
      continue;
    *p = '\0';
    if (mkdir(buf, mode) < 0 && errno != EEXIST)
      return shim_fail_errno(err, errno, "mkdir %s", buf);
    *p = '/';
  }
  if (mkdir(buf, mode) < 0 && errno != EEXIST)
    return shim_fail_errno(err, errno, "mkdir %s", buf);
  return 0;
}

int64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t) ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void format_rfc3339nano(int64_t ns, char *buf, size_t len)
{
  time_t secs = (time_t) (ns / 1000000000LL);
  struct tm tm;
  char date[32];
  gmtime_r(&secs, &tm);
  strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf, len, "%s.%09lldZ", date, (long long) (ns % 1000000000LL));
}

json_t *time_json(int64_t ns)
{
  char buf[64];
  if (ns == 0)
    return json_string("");
  format_rfc3339nano(ns, buf, sizeof(buf));
  return json_string(buf);
}

void shim_failpoint(const char *step)
{
  const char *list = getenv("SKIFF_SHIM_FAILPOINTS");
  size_t n = strlen(step);
  while (list && *list) {
    const char *end = strchrnul(list, ',');
    if ((size_t) (end - list) == n && strncmp(list, step, n) == 0) {
      shim_log("failpoint %s: SIGKILL", step);
      raise(SIGKILL);
    }
    list = *end ? end + 1 : end;
  }
}
