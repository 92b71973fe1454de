/* criu_restore.c: a container restored by CRIU from a checkpoint's images. `create` makes
 * what the container's spec asks of the shim (cgroup, log, stdio) and prepares CRIU's
 * command line from the new spec: its rootfs, the pod's namespaces, its bind mounts in
 * place of the dumped ones, its cgroup, its stdio in place of the dumped pipes or tty.
 * `start` runs CRIU: the restored init becomes the shim's child (--restore-sibling), which
 * reaps it like any other. */
#include "criu_internal.h"

#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <sys/mount.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#define RESTORE_MAX_FDS 8

struct criu_restore {
  struct argv_list argv;
  char *work_dir;
  char *hostname; /* the new spec's: CRIU restores the dumped one */
  int64_t timeout_ms;
  int fds[RESTORE_MAX_FDS]; /* CRIU's fds 3, 4, ...: stdio, the pod's namespaces */
  size_t n_fds;
};

void criu_restore_free(struct criu_restore *r)
{
  if (!r)
    return;
  argv_free(&r->argv);
  free(r->work_dir);
  free(r->hostname);
  for (size_t i = 0; i < r->n_fds; i++)
    if (r->fds[i] >= 0)
      close(r->fds[i]);
  free(r);
}

/* An fd for CRIU to inherit; its number in CRIU (3, 4, ...) or -1 (r owns fd either way). */
static int give_fd(struct criu_restore *r, int fd)
{
  if (fd < 0)
    return -1;
  if (r->n_fds == RESTORE_MAX_FDS) {
    close(fd);
    return -1;
  }
  r->fds[r->n_fds] = fd;
  return 3 + (int) r->n_fds++;
}

struct cgroup_mounts {
  struct argv_list *argv;
  const char *dest; /* the spec's cgroup mount point */
};

static int add_hierarchy(void *opaque, const char *name, const char *host_dir)
{
  struct cgroup_mounts *cm = opaque;
  argv_push(cm->argv, "--external");
  argv_pushf(cm->argv, "mnt[%s/%s]:%s", cm->dest, name, host_dir);
  return 0;
}

/* The dumped stdio's names (descriptors.json, as runc writes it): "" where CRIU needs no fd. */
static int read_descriptors(const char *images, char keys[3][128], struct shim_err *err)
{
  char path[PATH_MAX];
  cleanup_free char *text = NULL;
  cleanup_json json_t *doc = NULL;
  json_error_t jerr;
  size_t len;
  snprintf(path, sizeof(path), "%s/%s", images, CRIU_DESCRIPTORS);
  if (read_file(path, &text, &len, 64 << 10, err) < 0)
    return -1;
  doc = json_loadb(text, len, 0, &jerr);
  if (!json_is_array(doc) || json_array_size(doc) != 3)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: not a list of 3 names", path);
  for (size_t i = 0; i < 3; i++) {
    const char *k = json_string_value(json_array_get(doc, i));
    /* A path (runc writes "/dev/null") is a file CRIU opens again by itself. */
    if (k && k[0] == '/')
      k = "";
    if (!k || strlen(k) >= 128 || (k[0] && strncmp(k, "pipe:[", 6) != 0 && strncmp(k, "tty[", 4) != 0 && strncmp(k, "file[", 5) != 0))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: [%zu] is not a pipe, tty, file name or path", path, i);
    snprintf(keys[i], 128, "%s", k);
  }
  return 0;
}

/* A pty on the host's devpts for a restored tty: the master goes to the shim, the slave
 * to CRIU in place of the dumped one. */
static int open_pty(int *master, int *slave, struct shim_err *err)
{
  char name[64];
  cleanup_close int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0 || ptsname_r(m, name, sizeof(name)) != 0)
    return shim_fail_errno(err, errno, "open a pty");
  *slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (*slave < 0)
    return shim_fail_errno(err, errno, "open %s", name);
  *master = m;
  m = -1;
  return 0;
}

static int open_ns(const struct spec *spec, int flag, struct shim_err *err)
{
  for (size_t i = 0; i < spec->ns.n; i++) {
    const struct spec_namespace *n = &spec->ns.list[i];
    int fd;
    if (n->flag != flag || !n->path)
      continue;
    fd = open(n->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      return shim_fail_errno(err, errno, "open namespace %s", n->path);
    return fd;
  }
  return -2; /* not joined */
}

static int prepare(struct container *c, json_t *params, const struct spec *spec, const char *rootfs, bool want_stdin,
                   int *master, struct shim_err *err)
{
  const char *criu, *images, *work;
  int64_t timeout_ms;
  bool present;
  char keys[3][128];
  int stdio[3] = { -1, -1, -1 }, slave = -1, null_fd;
  struct criu_restore *r;
  struct argv_list *a;

  *master = -1;
  if (field_string(params, "criu", "params.restore", &criu, err) < 0
      || field_string(params, "imagesDir", "params.restore", &images, err) < 0
      || field_string(params, "workDir", "params.restore", &work, err) < 0
      || field_int64(params, "timeoutMs", "params.restore", &present, &timeout_ms, err) < 0)
    return -1;
  if (!criu || criu[0] != '/' || !images || images[0] != '/' || !work || work[0] != '/')
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "params.restore: criu, imagesDir and workDir must be absolute paths");
  if (!present || timeout_ms <= 0)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "params.restore.timeoutMs: a positive number required");
  if (ns_listed(&spec->ns, CLONE_NEWUSER))
    return shim_fail(err, SHIM_FAILED_PRECONDITION, "restore into a user namespace is not supported");
  if (read_descriptors(images, keys, err) < 0)
    return -1;
  if (!(r = calloc(1, sizeof(*r))) || !(r->work_dir = strdup(work))) {
    free(r);
    return shim_fail_errno(err, ENOMEM, "restore %s", c->id);
  }
  c->restore = r;
  r->timeout_ms = timeout_ms;
  if (spec->hostname && !(r->hostname = strdup(spec->hostname)))
    return shim_fail_errno(err, ENOMEM, "restore %s", c->id);
  a = &r->argv;

  /* stdio: the pipes (or pty) the shim reads, as for any container. */
  if (spec->process.terminal) {
    if (open_pty(master, &slave, err) < 0)
      return -1;
    c->io.tty = true;
  } else if (proc_io_pipes(&c->io, false, want_stdin, stdio, err) < 0) {
    return -1;
  }
  null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null_fd < 0) {
    proc_io_close_child_ends(stdio);
    if (slave >= 0)
      close(slave);
    return shim_fail_errno(err, errno, "open /dev/null");
  }

  argv_push(a, criu);
  argv_push(a, "restore");
  argv_pushf(a, "--images-dir=%s", images);
  argv_pushf(a, "--work-dir=%s", work);
  argv_push(a, "--log-file=restore.log");
  argv_push(a, "-v4");
  argv_pushf(a, "--root=%s", rootfs);
  argv_push(a, "--restore-detached");
  argv_push(a, "--restore-sibling");
  argv_pushf(a, "--pidfile=%s/restore.pid", work);
  /* CRIU runs in the container's cgroup, made with the new limits: what it forks stays there. */
  argv_push(a, "--manage-cgroups=ignore");
  argv_push(a, "--file-locks");
  {
    /* Each stdio name once, with the fd that replaces it. The fds are handed to CRIU
     * (and closed by criu_restore_free); the container's ends stay with c->io. */
    int fd_for[3];
    for (int i = 0; i < 3; i++)
      fd_for[i] = -1;
    for (int i = 0; i < 3; i++) {
      int src = slave >= 0 ? slave : stdio[i] >= 0 ? stdio[i] : null_fd;
      bool seen = false;
      if (!keys[i][0])
        continue;
      for (int j = 0; j < i; j++)
        seen = seen || (keys[j][0] && strcmp(keys[j], keys[i]) == 0);
      if (seen)
        continue;
      fd_for[i] = give_fd(r, fcntl(src, F_DUPFD_CLOEXEC, 3));
      if (fd_for[i] < 0) {
        proc_io_close_child_ends(stdio);
        if (slave >= 0)
          close(slave);
        close(null_fd);
        return shim_fail_errno(err, errno ? errno : EMFILE, "restore %s: stdio fds", c->id);
      }
      argv_push(a, "--inherit-fd");
      argv_pushf(a, "fd[%d]:%s", fd_for[i], keys[i]);
    }
  }
  proc_io_close_child_ends(stdio);
  if (slave >= 0)
    close(slave);
  close(null_fd);

  /* The new pod's namespaces: net and pid in place of the dumped ones (external in the
   * images), ipc and uts joined. */
  {
    int net = open_ns(spec, CLONE_NEWNET, err), pid;
    if (net == -1)
      return -1;
    if (net >= 0) {
      argv_push(a, "--inherit-fd");
      argv_pushf(a, "fd[%d]:%s", give_fd(r, net), CRIU_NET_KEY);
    }
    pid = open_ns(spec, CLONE_NEWPID, err);
    if (pid == -1)
      return -1;
    if (pid >= 0) {
      argv_push(a, "--inherit-fd");
      argv_pushf(a, "fd[%d]:%s", give_fd(r, pid), CRIU_PID_KEY);
    }
  }
  for (size_t i = 0; i < spec->ns.n; i++) {
    const struct spec_namespace *n = &spec->ns.list[i];
    if (n->path && (n->flag == CLONE_NEWIPC || n->flag == CLONE_NEWUTS)) {
      argv_push(a, "--join-ns");
      argv_pushf(a, "%s:%s", n->flag == CLONE_NEWIPC ? "ipc" : "uts", n->path);
    }
  }
  /* Mounts: the new spec's bind sources in place of the dumped ones (by mount point); the
   * new cgroup's directories in place of the old. */
  for (size_t i = 0; i < spec->rootfs.n_mounts; i++) {
    const struct spec_mount *m = &spec->rootfs.mounts[i];
    if (criu_is_bind(m)) {
      argv_push(a, "--external");
      argv_pushf(a, "mnt[%s]:%s", m->dest, m->source);
    } else if (m->type && strcmp(m->type, "cgroup") == 0 && c->cg) {
      if (cgroup_is_v2_only()) {
        /* A cgroup2 mount without a cgroup namespace shows the whole hierarchy. */
        argv_push(a, "--external");
        argv_pushf(a, "mnt[%s]:/sys/fs/cgroup", m->dest);
      } else {
        struct cgroup_mounts cm = { .argv = a, .dest = m->dest };
        if (cgroup_foreach_hierarchy(c->cg, add_hierarchy, &cm, err) < 0)
          return -1;
      }
    }
  }
  if (a->failed)
    return shim_fail_errno(err, ENOMEM, "restore %s: command line", c->id);
  return 0;
}

int criu_restore_prepare(struct container *c, json_t *params, const struct spec *spec, const char *rootfs,
                         bool want_stdin, int *master, struct shim_err *err)
{
  /* c->restore and c->io go with c; a pty master opened for it is not c's yet. */
  int r = prepare(c, params, spec, rootfs, want_stdin, master, err);
  if (r < 0 && *master >= 0) {
    close(*master);
    *master = -1;
  }
  return r;
}

/* The new spec's hostname in the restored init's UTS namespace (the pod's, when it joins
 * it), where CRIU wrote the dumped one back: as a created container sets it. */
static int set_hostname(pid_t pid, const char *hostname, struct shim_err *err)
{
  char path[64];
  int status;
  pid_t child;
  snprintf(path, sizeof(path), "/proc/%d/ns/uts", (int) pid);
  child = fork();
  if (child < 0)
    return shim_fail_errno(err, errno, "fork");
  if (child == 0) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    _exit(fd >= 0 && setns(fd, CLONE_NEWUTS) == 0 && sethostname(hostname, strlen(hostname)) == 0 ? 0 : errno);
  }
  while (waitpid(child, &status, 0) < 0 && errno == EINTR)
    ;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return shim_fail_errno(err, WIFEXITED(status) ? WEXITSTATUS(status) : EINTR, "set hostname \"%s\" through %s", hostname, path);
  return 0;
}

int criu_restore_run(struct container *c, pid_t *pid, struct shim_err *err)
{
  struct criu_restore *r = c->restore;
  struct criu_run run = {
    .what = "restore",
    .work_dir = r->work_dir,
    .log_name = "restore.log",
    .timeout_ms = r->timeout_ms,
    .fds = r->fds,
    .n_fds = r->n_fds,
    .cg = c->cg,
  };
  char path[PATH_MAX];
  cleanup_free char *text = NULL;
  size_t len;
  int64_t started = now_ns();
  long v;
  if (criu_exec(&r->argv, &run, err) < 0)
    return -1;
  snprintf(path, sizeof(path), "%s/restore.pid", r->work_dir);
  if (read_file(path, &text, &len, 64, err) < 0)
    return -1;
  v = strtol(text, NULL, 10);
  if (v <= 0)
    return shim_fail(err, SHIM_INTERNAL, "criu restore: no pid in %s", path);
  *pid = (pid_t) v;
  if (r->hostname && set_hostname(*pid, r->hostname, err) < 0) {
    struct shim_err ignored;
    cgroup_signal_all(c->cg, SIGKILL, &ignored);
    return -1;
  }
  shim_log("restored container %s pid %d in %lld ms", c->id, (int) v, (long long) ((now_ns() - started) / 1000000));
  return 0;
}
