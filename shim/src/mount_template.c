/* mount_template.c: the small mount namespace a pod's containers start from. A new mount
 * namespace is a copy of its creator's, and the host's holds every pod's shm, netns and
 * rootfs mounts (2,400 at 500 pods): copying them, making them slaves and detaching them
 * again after pivot_root cost each container three passes over the node's mount table,
 * under the kernel's one namespace lock, so creates grew slower with the node's pods.
 * The shim pays those passes once, for a template holding only a read-only tmpfs root
 * with /rootfs (where a container's rootfs clone is attached), /proc (the mount code goes
 * through /proc/self/fd) and /dev/null; each container copies the template instead.
 * Nothing of the template is on the host: it lives as long as the shim's fd to it. */
#include "core.h"

#include <fcntl.h>
#include <limits.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

static int g_template = -1;

/* In the child, in a copy of the host's mount namespace: make the template, then wait
 * until it is held (its hold pipe closes). */
static _Noreturn void build_template(const char *dir, int ready_fd, int hold_fd)
{
  char sub[PATH_MAX + 16];
  char c = 0;
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  /* Private first, so that detaching the old root below stays in this namespace. */
  if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0
      || mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=64k") < 0)
    _exit(1);
  snprintf(sub, sizeof(sub), "%s%s", dir, MOUNT_TEMPLATE_ROOTFS);
  if (mkdir(sub, 0755) < 0)
    _exit(1);
  snprintf(sub, sizeof(sub), "%s/proc", dir);
  if (mkdir(sub, 0555) < 0 || mount("proc", sub, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
    _exit(1);
  snprintf(sub, sizeof(sub), "%s/dev", dir);
  if (mkdir(sub, 0755) < 0)
    _exit(1);
  snprintf(sub, sizeof(sub), "%s/dev/null", dir);
  if (mknod(sub, S_IFCHR | 0666, makedev(1, 3)) < 0 || chmod(sub, 0666) < 0)
    _exit(1);
  if (chdir(dir) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 || umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
    _exit(1);
  if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NOEXEC, NULL) < 0)
    _exit(1);
  if (write(ready_fd, &c, 1) != 1)
    _exit(1);
  while (read(hold_fd, &c, 1) < 0 && errno == EINTR)
    ;
  _exit(0);
}

/* Fork the child that makes the template in its own namespace (the tmpfs mounted on dir
 * there); *ready_fd reads one byte once it is made, and closing *hold_fd ends it. */
static pid_t fork_builder(const char *dir, int *ready_fd, int *hold_fd, struct shim_err *err)
{
  int ready[2], hold[2], e;
  pid_t pid;
  if (pipe2(ready, O_CLOEXEC) < 0)
    return shim_fail_errno(err, errno, "mount template: pipe");
  if (pipe2(hold, O_CLOEXEC) < 0) {
    e = errno;
    close(ready[0]);
    close(ready[1]);
    return shim_fail_errno(err, e, "mount template: pipe");
  }
  pid = fork();
  if (pid == 0) {
    close(ready[0]);
    close(hold[1]);
    build_template(dir, ready[1], hold[0]);
  }
  e = errno;
  close(ready[1]);
  close(hold[0]);
  if (pid < 0) {
    close(ready[0]);
    close(hold[1]);
    return shim_fail_errno(err, e, "mount template: fork");
  }
  *ready_fd = ready[0];
  *hold_fd = hold[1];
  return pid;
}

static int make_template(struct shim_err *err)
{
  char path[64], c;
  int ready, hold, status, fd = -1, e;
  /* The tmpfs is mounted on the state dir in the child's own namespace only. */
  pid_t pid = fork_builder(g_shim.state_dir, &ready, &hold, err);
  if (pid < 0)
    return -1;
  if (read_all(ready, &c, 1) == 1) {
    snprintf(path, sizeof(path), "/proc/%d/ns/mnt", (int) pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    e = errno;
  } else {
    e = EPROTO;
  }
  close(ready);
  close(hold); /* the child exits */
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  if (fd < 0)
    return shim_fail_errno(err, e, "mount template: %s", e == EPROTO ? "its child failed" : "open its namespace");
  return fd;
}

int mount_template_fd(struct shim_err *err)
{
  if (g_template < 0) {
    g_template = make_template(err);
    if (g_template >= 0)
      shim_log("made the pod's own mount template (skiffd passed none)");
  }
  return g_template;
}

void mount_template_adopt(int fd)
{
  /* Only a mount namespace: anything else is refused, and the shim makes its own. */
  if (ioctl(fd, NS_GET_NSTYPE) != CLONE_NEWNS || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
    shim_log("--mount-template-fd %d: not a mount namespace; the pod makes its own template", fd);
    return;
  }
  g_template = fd;
}

int mount_template_serve(const char *dir)
{
  struct shim_err err = { 0 };
  char c;
  int ready, hold, status;
  pid_t pid = fork_builder(dir, &ready, &hold, &err);
  if (pid < 0) {
    fprintf(stderr, "skiff-shim: %s\n", err.msg);
    return 1;
  }
  if (read_all(ready, &c, 1) != 1) {
    fprintf(stderr, "skiff-shim: mount template: its child failed\n");
    waitpid(pid, &status, 0);
    return 1;
  }
  /* The caller opens /proc/<pid>/ns/mnt, then closes our stdin. */
  printf("%d\n", (int) pid);
  fflush(stdout);
  while (read(0, &c, 1) > 0 || (errno == EINTR))
    ;
  close(hold);
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  return 0;
}

/* ---- what a container made from the template needs from the host ------------------ */

void mount_clones_init(struct mount_clones *c)
{
  memset(c, 0, sizeof(*c));
  c->rootfs = -1;
  for (size_t i = 0; i < CGROUP_JOIN_MAX; i++)
    c->cgroup[i] = -1;
}

void mount_clones_free(struct mount_clones *c)
{
  if (c->rootfs >= 0)
    close(c->rootfs);
  for (size_t i = 0; i < c->n; i++)
    if (c->binds && c->binds[i].fd >= 0)
      close(c->binds[i].fd);
  for (size_t i = 0; i < c->n_cgroup; i++)
    if (c->cgroup[i] >= 0)
      close(c->cgroup[i]);
  free(c->binds);
  mount_clones_init(c);
}

static int clone_tree(const char *path, bool recursive, struct shim_err *err)
{
  int fd = (int) syscall(SYS_open_tree, AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (recursive ? AT_RECURSIVE : 0));
  if (fd < 0)
    return shim_fail_errno(err, errno, "clone %s", path);
  return fd;
}

static int clone_cgroup(void *opaque, const char *name, const char *host_dir)
{
  struct mount_clones *c = opaque;
  if (c->n_cgroup == CGROUP_JOIN_MAX)
    return shim_fail(c->err, SHIM_INTERNAL, "cgroup mount: too many hierarchies");
  c->cgroup[c->n_cgroup] = clone_tree(host_dir, true, c->err);
  if (c->cgroup[c->n_cgroup] < 0)
    return -1;
  snprintf(c->cgroup_name[c->n_cgroup], sizeof(c->cgroup_name[0]), "%s", name);
  c->n_cgroup++;
  return 0;
}

bool mount_template_fits(const struct spec *spec, bool has_hooks)
{
  /* What the template cannot give: a user namespace (its mounts would not be locked as
   * a copy of the host's are, and proc or sysfs mount only where one is fully visible),
   * and createContainer hooks, which run where the host's paths are reachable. */
  if (ns_listed(&spec->ns, CLONE_NEWUSER) || has_hooks)
    return false;
  for (size_t i = 0; i < spec->rootfs.n_mounts; i++)
    if (spec->rootfs.mounts[i].idmap)
      return false;
  return true;
}

int mount_clones_prepare(const struct spec *spec, const char *rootfs, struct cgroup *cg, struct mount_clones *c,
                         struct shim_err *err)
{
  const struct spec_rootfs *r = &spec->rootfs;
  c->err = err;
  c->binds = calloc(r->n_mounts + 1, sizeof(*c->binds));
  if (!c->binds)
    return shim_fail_errno(err, ENOMEM, "mount clones");
  c->n = r->n_mounts;
  c->propagation = r->propagation_flags;
  for (size_t i = 0; i < r->n_mounts; i++)
    c->binds[i].fd = -1;
  c->rootfs = clone_tree(rootfs, true, err);
  if (c->rootfs < 0)
    goto fail;
  for (size_t i = 0; i < r->n_mounts; i++) {
    const struct spec_mount *m = &r->mounts[i];
    struct stat st;
    struct statvfs vfs;
    if (m->flags & MS_BIND) {
      c->binds[i].fd = clone_tree(m->source, m->flags & MS_REC, err);
      if (c->binds[i].fd < 0) {
        shim_err_prefix(err, "linux.mounts[%zu] (bind on %s)", i, m->dest);
        goto fail;
      }
      c->binds[i].is_dir = fstat(c->binds[i].fd, &st) < 0 || S_ISDIR(st.st_mode);
      if (fstatvfs(c->binds[i].fd, &vfs) == 0)
        c->binds[i].locked = statvfs_flags(&vfs);
    } else if (m->type && strcmp(m->type, "cgroup") == 0 && cg && !cgroup_is_v2_only()) {
      /* mount.c binds the container's dir of each v1 hierarchy under a tmpfs. */
      c->binds[i].cg_first = c->n_cgroup;
      if (cgroup_foreach_hierarchy(cg, clone_cgroup, c, err) < 0)
        goto fail;
      c->binds[i].cg_n = c->n_cgroup - c->binds[i].cg_first;
    } else if (m->type && strcmp(m->type, "sysfs") == 0 && !ns_listed(&spec->ns, CLONE_NEWNET)) {
      /* sysfs in the host's network namespace, where mount.c binds the host's /sys if
       * the kernel refuses a new one; the template has no /sys: its clone, in case. */
      c->binds[i].fd = clone_tree("/sys", true, err);
      if (c->binds[i].fd < 0) {
        shim_err_prefix(err, "linux.mounts[%zu] (sysfs on %s)", i, m->dest);
        goto fail;
      }
      c->binds[i].is_dir = true;
    }
  }
  return 0;
fail:
  mount_clones_free(c);
  return -1;
}
