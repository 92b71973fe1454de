/* mount.c: the container's root filesystem made from struct spec_rootfs (parsed in
 * mount_spec.c): spec mounts resolved inside the rootfs (openat2 RESOLVE_IN_ROOT,
 * mounted through /proc/self/fd/N so a swapped symlink cannot redirect them:
 * CVE-2021-30465), devices, pivot_root, masked and read-only paths. */
#include "shim.h"

#include <fcntl.h>
#include <limits.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

/* ---- resolving inside the rootfs ---------------------------------------------- */

int open_in_root(int root_fd, const char *path, int flags, mode_t mode, struct shim_err *err)
{
  struct open_how how = {
    .flags = (uint64_t) (flags | O_CLOEXEC),
    .mode = (flags & O_CREAT) ? mode : 0,
    .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
  };
  int fd;
  while (*path == '/')
    path++;
  if (!*path)
    path = ".";
  do
    fd = (int) syscall(SYS_openat2, root_fd, path, &how, sizeof(how));
  while (fd < 0 && errno == EAGAIN);
  if (fd < 0)
    return shim_fail_errno(err, errno, "open %s inside the container root", path);
  return fd;
}

/* Make every directory of path inside the root (never following a symlink
 * out of it), and the last component as a dir or an empty file. A symlink
 * whose target does not exist yet is followed inside the root: the path is
 * rewritten through it and the walk starts again. Returns an O_PATH fd of
 * the target. */
static int make_target(int root_fd, const char *path, bool as_file, struct shim_err *err)
{
  char buf[PATH_MAX];
  int links = 0;
  if (snprintf(buf, sizeof(buf), "%s", path) >= (int) sizeof(buf))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "path too long: %s", path);
restart:
  for (char *p = buf + 1;; p++) {
    bool last = *p == '\0';
    cleanup_close int fd = -1;
    if (*p != '/' && !last)
      continue;
    *p = '\0';
    fd = open_in_root(root_fd, buf, O_PATH, 0, NULL);
    if (fd < 0) {
      char *slash = strrchr(buf, '/');
      const char *name = slash + 1;
      char link[PATH_MAX], rest[PATH_MAX];
      ssize_t n;
      cleanup_close int parent = -1;
      *slash = '\0';
      parent = open_in_root(root_fd, buf[0] ? buf : "/", O_PATH | O_DIRECTORY, 0, err);
      *slash = '/';
      if (parent < 0)
        return -1;
      n = readlinkat(parent, name, link, sizeof(link) - 1);
      if (n >= 0) {
        /* A dangling symlink: continue through its target, inside the root. */
        if (++links > 40)
          return shim_fail(err, SHIM_INVALID_ARGUMENT, "too many symlinks in %s", path);
        link[n] = '\0';
        snprintf(rest, sizeof(rest), "%s", last ? "" : p + 1);
        if (link[0] == '/')
          snprintf(buf, sizeof(buf), "%s%s%s", link, rest[0] ? "/" : "", rest);
        else {
          *slash = '\0';
          char dir[PATH_MAX];
          snprintf(dir, sizeof(dir), "%s", buf);
          snprintf(buf, sizeof(buf), "%s/%s%s%s", dir, link, rest[0] ? "/" : "", rest);
        }
        goto restart;
      }
      if (last && as_file) {
        cleanup_close int f = openat(parent, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (f < 0 && errno != EEXIST)
          return shim_fail_errno(err, errno, "create mount target %s", buf);
      } else if (mkdirat(parent, name, 0755) < 0 && errno != EEXIST) {
        return shim_fail_errno(err, errno, "create directory %s", buf);
      }
      fd = open_in_root(root_fd, buf, O_PATH, 0, err);
      if (fd < 0)
        return -1;
    }
    if (last) {
      int target = fd;
      fd = -1;
      return target;
    }
    *p = '/';
  }
}

static void fd_path(int fd, char *buf, size_t len)
{
  snprintf(buf, len, "/proc/self/fd/%d", fd);
}

/* Flags a bind mount must keep from its source: in a user namespace (or when
 * the source has them locked) dropping them fails with EPERM. */
unsigned long statvfs_flags(const struct statvfs *st)
{
  unsigned long f = 0;
  if (st->f_flag & ST_NOSUID)
    f |= MS_NOSUID;
  if (st->f_flag & ST_NODEV)
    f |= MS_NODEV;
  if (st->f_flag & ST_NOEXEC)
    f |= MS_NOEXEC;
  if (st->f_flag & ST_RDONLY)
    f |= MS_RDONLY;
  return f;
}

static unsigned long locked_flags(const char *path)
{
  struct statvfs st;
  if (statvfs(path, &st) < 0)
    return 0;
  return statvfs_flags(&st);
}

/* Attach a clone (open_tree) on the target's fd itself: through its /proc/self/fd path
 * move_mount gives EINVAL. */
static int attach_clone(int clone, int target_fd)
{
  return (int) syscall(SYS_move_mount, clone, "", target_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
}

static int bind_remount(const char *target, unsigned long flags, unsigned long keep, struct shim_err *err, const char *what)
{
  unsigned long f = MS_BIND | MS_REMOUNT | (flags & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME | MS_RELATIME | MS_STRICTATIME));
  if (mount(NULL, target, NULL, f, NULL) == 0)
    return 0;
  if (errno == EPERM && mount(NULL, target, NULL, f | keep, NULL) == 0)
    return 0;
  return shim_fail_errno(err, errno, "%s: remount", what);
}

struct cgroup_mount_ctx {
  int dir_fd;
  const int *clones; /* made from the template: the hierarchies' clones, in order */
  size_t next;
  unsigned long propagation;
  struct shim_err *err;
};

static int bind_cgroup_hierarchy(void *opaque, const char *name, const char *host_dir)
{
  struct cgroup_mount_ctx *ctx = opaque;
  char target[64];
  cleanup_close int fd = -1;
  if (mkdirat(ctx->dir_fd, name, 0755) < 0 && errno != EEXIST)
    return shim_fail_errno(ctx->err, errno, "cgroup mount: mkdir %s", name);
  fd = openat(ctx->dir_fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return shim_fail_errno(ctx->err, errno, "cgroup mount: open %s", name);
  fd_path(fd, target, sizeof(target));
  if (ctx->clones) {
    if (attach_clone(ctx->clones[ctx->next++], fd) < 0)
      return shim_fail_errno(ctx->err, errno, "cgroup mount: attach the clone of %s", host_dir);
    /* The fd names the directory under the new mount: reopen through it. */
    close(fd);
    fd = openat(ctx->dir_fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    fd_path(fd, target, sizeof(target));
    if (fd < 0 || mount(NULL, target, NULL, ctx->propagation, NULL) < 0)
      return shim_fail_errno(ctx->err, errno, "cgroup mount: set the propagation of %s", host_dir);
    return 0;
  }
  if (mount(host_dir, target, NULL, MS_BIND | MS_REC, NULL) < 0)
    return shim_fail_errno(ctx->err, errno, "cgroup mount: bind %s", host_dir);
  return 0;
}

static int mount_cgroup(const struct spec_mount *m, size_t idx, int root_fd, const char *target, const struct mount_ctx *ctx,
                        struct shim_err *err)
{
  unsigned long flags = m->flags & ~(MS_BIND | MS_REC);
  if (cgroup_is_v2_only()) {
    if (mount("cgroup2", target, "cgroup2", flags, NULL) < 0)
      return shim_fail_errno(err, errno, "mount cgroup2 on %s", m->dest);
    return 0;
  }
  /* v1: a tmpfs with the container's own cgroup of each hierarchy bound in. */
  if (mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755") < 0)
    return shim_fail_errno(err, errno, "mount tmpfs for cgroups on %s", m->dest);
  if (ctx->cg) {
    /* Resolve again: the old fd names the directory under the new tmpfs. */
    cleanup_close int dir_fd = open_in_root(root_fd, m->dest, O_DIRECTORY, 0, err);
    struct cgroup_mount_ctx cctx = { .dir_fd = dir_fd, .err = err };
    if (dir_fd < 0)
      return -1;
    if (ctx->clones) {
      /* The host's hierarchies are out of reach here: their clones, made before. */
      const struct mount_clones *c = ctx->clones;
      cctx.clones = c->cgroup + c->binds[idx].cg_first;
      cctx.propagation = c->propagation;
      for (size_t k = 0; k < c->binds[idx].cg_n; k++)
        if (bind_cgroup_hierarchy(&cctx, c->cgroup_name[c->binds[idx].cg_first + k], c->cgroup_name[c->binds[idx].cg_first + k]) < 0)
          return -1;
    } else if (cgroup_foreach_hierarchy(ctx->cg, bind_cgroup_hierarchy, &cctx, err) < 0) {
      return -1;
    }
  }
  if (flags & MS_RDONLY) {
    /* The tmpfs and every hierarchy bound into it, through a fresh fd. */
    cleanup_close int fd = open_in_root(root_fd, m->dest, O_PATH | O_DIRECTORY, 0, err);
    if (fd < 0)
      return -1;
    if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &(struct mount_attr) { .attr_set = MOUNT_ATTR_RDONLY },
                sizeof(struct mount_attr)) < 0)
      return shim_fail_errno(err, errno, "make %s read-only", m->dest);
  }
  return 0;
}

static bool source_is_dir(const struct spec_mount *m, const struct mount_clone *clone)
{
  struct stat st;
  if (!(m->flags & MS_BIND))
    return true;
  if (clone)
    return clone->is_dir;
  return stat(m->source, &st) < 0 || S_ISDIR(st.st_mode);
}

static int do_mount(const struct spec_mount *m, size_t idx, int root_fd, const struct mount_ctx *ctx, struct shim_err *err)
{
  char target[64];
  cleanup_close int fd = -1;
  const char *type = m->type ? m->type : "bind";
  const struct mount_clone *clone = ctx->clones && ctx->clones->binds[idx].fd >= 0 ? &ctx->clones->binds[idx] : NULL;
  bool as_file = !source_is_dir(m, clone);

  fd = make_target(root_fd, m->dest, as_file, err);
  if (fd < 0)
    goto fail;
  fd_path(fd, target, sizeof(target));
  if (m->flags & MS_BIND) {
    int idmapped = ctx->idmapped ? ctx->idmapped[idx] : -1;
    if (idmapped >= 0) {
      /* The id-mapped clone mount_idmap_prepare made of the source. */
      if (attach_clone(idmapped, fd) < 0) {
        shim_fail_errno(err, errno, "attach the id-mapped clone of %s", m->source);
        goto fail;
      }
    } else if (clone) {
      if (attach_clone(clone->fd, fd) < 0) {
        shim_fail_errno(err, errno, "attach the clone of %s", m->source);
        goto fail;
      }
    } else if (mount(m->source, target, NULL, MS_BIND | (m->flags & MS_REC), NULL) < 0) {
      shim_fail_errno(err, errno, "bind %s", m->source);
      goto fail;
    }
    /* The fd names the directory under the new mount: reopen through it. */
    close(fd);
    fd = make_target(root_fd, m->dest, as_file, err);
    if (fd < 0)
      goto fail;
    fd_path(fd, target, sizeof(target));
    /* A clone is a peer of a shared source: give it what the host's copy would have
     * had under "/" made rslave (or rshared, rprivate). */
    if (clone && mount(NULL, target, NULL, ctx->clones->propagation, NULL) < 0) {
      shim_fail_errno(err, errno, "set the propagation of the clone of %s", m->source);
      goto fail;
    }
    if ((m->flags & ~(MS_BIND | MS_REC))
        && bind_remount(target, m->flags, clone ? clone->locked : locked_flags(m->source), err, m->dest) < 0)
      goto fail;
  } else if (strcmp(type, "cgroup") == 0) {
    if (mount_cgroup(m, idx, root_fd, target, ctx, err) < 0)
      goto fail;
  } else if (mount(m->source && *m->source ? m->source : type, target, type, m->flags, m->data && m->data[0] ? m->data : NULL) < 0) {
    int e = errno;
    /* sysfs needs its own network namespace; without one, bind the host's
     * read-only, as other runtimes do (from the template: its clone). */
    if (strcmp(type, "sysfs") == 0 && (e == EPERM || e == EBUSY)) {
      if (clone ? attach_clone(clone->fd, fd) < 0 : mount("/sys", target, NULL, MS_BIND | MS_REC, NULL) < 0) {
        shim_fail_errno(err, errno, "bind /sys");
        goto fail;
      }
      /* As for a bind above: mount_setattr needs the new mount's root, not the
       * directory the old fd names under it (EINVAL). */
      close(fd);
      fd = make_target(root_fd, m->dest, false, err);
      if (fd < 0)
        goto fail;
      fd_path(fd, target, sizeof(target));
      if (clone && mount(NULL, target, NULL, ctx->clones->propagation, NULL) < 0) {
        shim_fail_errno(err, errno, "set the propagation of the clone of /sys");
        goto fail;
      }
      if (syscall(SYS_mount_setattr, AT_FDCWD, target, AT_RECURSIVE,
                  &(struct mount_attr) { .attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC },
                  sizeof(struct mount_attr)) < 0) {
        shim_fail_errno(err, errno, "make the bound /sys read-only");
        goto fail;
      }
    } else {
      shim_fail_errno(err, e, "mount %s", type);
      goto fail;
    }
  }
  if (m->rro || m->propagation) {
    cleanup_close int tfd = make_target(root_fd, m->dest, as_file, err);
    char t2[64];
    if (tfd < 0)
      goto fail;
    fd_path(tfd, t2, sizeof(t2));
    if (m->rro && syscall(SYS_mount_setattr, AT_FDCWD, t2, AT_RECURSIVE,
                          &(struct mount_attr) { .attr_set = MOUNT_ATTR_RDONLY }, sizeof(struct mount_attr)) < 0) {
      shim_fail_errno(err, errno, "make it recursively read-only");
      goto fail;
    }
    if (m->propagation && mount(NULL, t2, NULL, m->propagation, NULL) < 0) {
      shim_fail_errno(err, errno, "set propagation");
      goto fail;
    }
  }
  return 0;
fail:
  shim_err_prefix(err, "linux.mounts[%zu] (%s on %s)", idx, type, m->dest);
  return -1;
}

/* ---- devices -------------------------------------------------------------------- */

static const struct spec_device default_devices[] = {
  { "/dev/null", 'c', 1, 3, 0666, 0, 0 },    { "/dev/zero", 'c', 1, 5, 0666, 0, 0 },
  { "/dev/full", 'c', 1, 7, 0666, 0, 0 },    { "/dev/random", 'c', 1, 8, 0666, 0, 0 },
  { "/dev/urandom", 'c', 1, 9, 0666, 0, 0 }, { "/dev/tty", 'c', 5, 0, 0666, 0, 0 },
};

static int make_device(int root_fd, const struct spec_device *d, bool userns, struct shim_err *err)
{
  char parent_path[PATH_MAX];
  const char *path = d->path, *name = strrchr(path, '/') + 1;
  cleanup_close int made = -1;
  cleanup_close int parent = -1;
  mode_t kind = d->type == 'b' ? S_IFBLK : d->type == 'p' ? S_IFIFO : S_IFCHR;

  snprintf(parent_path, sizeof(parent_path), "%.*s", (int) (name - path), path);
  made = make_target(root_fd, parent_path, false, err);
  if (made < 0)
    return -1;
  parent = open_in_root(root_fd, parent_path, O_DIRECTORY, 0, err);
  if (parent < 0)
    return -1;
  if (userns && kind != S_IFIFO) {
    /* No mknod in a user namespace: bind the host's node onto a file. */
    char target[64];
    cleanup_close int fd = -1;
    unlinkat(parent, name, 0);
    fd = openat(parent, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
      return shim_fail_errno(err, errno, "create device placeholder %s", path);
    fd_path(fd, target, sizeof(target));
    if (mount(path, target, NULL, MS_BIND, NULL) < 0)
      return shim_fail_errno(err, errno, "bind device %s", path);
    return 0;
  }
  /* Whatever the image has at the path is replaced; a fresh /dev has nothing there. */
  if (mknodat(parent, name, kind | (d->mode & 07777), makedev(d->major, d->minor)) < 0
      && (errno != EEXIST || unlinkat(parent, name, 0) < 0
          || mknodat(parent, name, kind | (d->mode & 07777), makedev(d->major, d->minor)) < 0))
    return shim_fail_errno(err, errno, "create device %s", path);
  if (fchownat(parent, name, d->uid, d->gid, AT_SYMLINK_NOFOLLOW) < 0
      || fchmodat(parent, name, d->mode & 07777, 0) < 0) /* mknod honours the umask */
    return shim_fail_errno(err, errno, "create device %s", path);
  return 0;
}

static bool device_listed(const struct spec_rootfs *r, const char *path)
{
  for (size_t i = 0; i < r->n_devices; i++)
    if (strcmp(r->devices[i].path, path) == 0)
      return true;
  return false;
}

static int setup_devices(const struct spec_rootfs *r, int root_fd, const struct mount_ctx *ctx, bool dev_is_tmpfs,
                         struct shim_err *err)
{
  if (dev_is_tmpfs) {
    static const char *const links[][2] = {
      { "/proc/self/fd", "/dev/fd" },     { "/proc/self/fd/0", "/dev/stdin" },
      { "/proc/self/fd/1", "/dev/stdout" }, { "/proc/self/fd/2", "/dev/stderr" },
    };
    for (size_t k = 0; k < sizeof(default_devices) / sizeof(default_devices[0]); k++) {
      if (!device_listed(r, default_devices[k].path) && make_device(root_fd, &default_devices[k], ctx->userns, err) < 0)
        return -1;
    }
    {
      cleanup_close int dev = open_in_root(root_fd, "/dev", O_DIRECTORY, 0, err);
      if (dev < 0)
        return -1;
      for (size_t k = 0; k < sizeof(links) / sizeof(links[0]); k++)
        if (symlinkat(links[k][0], dev, links[k][1] + 5) < 0 && errno != EEXIST)
          return shim_fail_errno(err, errno, "symlink %s", links[k][1]);
      if (faccessat(dev, "pts/ptmx", F_OK, AT_SYMLINK_NOFOLLOW) == 0 && symlinkat("pts/ptmx", dev, "ptmx") < 0
          && errno != EEXIST)
        return shim_fail_errno(err, errno, "symlink /dev/ptmx");
    }
  }
  for (size_t i = 0; i < r->n_devices; i++) {
    if (make_device(root_fd, &r->devices[i], ctx->userns, err) < 0) {
      shim_err_prefix(err, "linux.devices[%zu]", i);
      return -1;
    }
  }
  return 0;
}

/* ---- after pivot_root ------------------------------------------------------------- */

static int mask_paths(const struct spec_rootfs *r, struct shim_err *err)
{
  char data[LSM_MOUNT_DATA_MAX] = "";
  if (lsm_mount_data("tmpfs", false, r->mount_label, data, sizeof(data), err) < 0)
    return -1;
  for (size_t i = 0; i < r->n_masked_paths; i++) {
    const char *p = r->masked_paths[i];
    struct stat st;
    if (lstat(p, &st) < 0)
      continue; /* nothing to mask */
    if (S_ISDIR(st.st_mode)) {
      if (mount("tmpfs", p, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, data[0] ? data : NULL) < 0)
        return shim_fail_errno(err, errno, "linux.maskedPaths[%zu]: mask %s", i, p);
    } else if (mount("/dev/null", p, NULL, MS_BIND, NULL) < 0) {
      return shim_fail_errno(err, errno, "linux.maskedPaths[%zu]: mask %s", i, p);
    }
  }
  return 0;
}

static int readonly_paths(const struct spec_rootfs *r, struct shim_err *err)
{
  for (size_t i = 0; i < r->n_readonly_paths; i++) {
    const char *p = r->readonly_paths[i];
    char what[64];
    if (access(p, F_OK) < 0)
      continue;
    if (mount(p, p, NULL, MS_BIND | MS_REC, NULL) < 0)
      return shim_fail_errno(err, errno, "linux.readonlyPaths[%zu]: bind %s", i, p);
    snprintf(what, sizeof(what), "linux.readonlyPaths[%zu]", i);
    if (bind_remount(p, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, locked_flags(p), err, what) < 0)
      return -1;
  }
  return 0;
}

/* Make the mount that holds path private (only that mount): walk up from path to the
 * first directory that is a mount point, where MS_PRIVATE succeeds. */
static int rootfs_parent_private(const char *path, struct shim_err *err)
{
  char p[PATH_MAX];
  if (strlen(path) >= sizeof(p))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "rootfs path too long");
  strcpy(p, path);
  for (;;) {
    char *slash;
    if (mount(NULL, p, NULL, MS_PRIVATE, NULL) == 0)
      return 0;
    if (errno != EINVAL)
      return shim_fail_errno(err, errno, "make the mount of %s private", p);
    slash = strrchr(p, '/');
    if (!slash || slash == p) {
      if (mount(NULL, "/", NULL, MS_PRIVATE, NULL) < 0)
        return shim_fail_errno(err, errno, "make / private");
      return 0;
    }
    *slash = '\0';
  }
}

int mount_setup_rootfs(const struct spec_rootfs *r, const struct mount_ctx *ctx, struct shim_err *err)
{
  const char *prop = r->propagation;
  unsigned long pflags = r->propagation_flags;
  cleanup_close int root_fd = -1;
  bool dev_is_tmpfs = false;

  /* "/" gets the asked propagation (rslave by default), as runc does: rshared keeps
   * the host's shared mounts peers, which bidirectional volumes need. Then the mount
   * holding the rootfs is made private so the rootfs bind, our own mounts and
   * pivot_root (which refuses shared mounts) stay out of any peer group; under
   * rslave they are out of it already. */
  if (ctx->clones) {
    /* A copy of the pod's template: the rootfs clone goes on its /rootfs, with the
     * propagation "/" would have given it, itself private as below. */
    cleanup_close int at = open(MOUNT_TEMPLATE_ROOTFS, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (at < 0 || attach_clone(ctx->clones->rootfs, at) < 0)
      return shim_fail_errno(err, errno, "attach the clone of rootfs %s", ctx->rootfs);
    if (mount(NULL, MOUNT_TEMPLATE_ROOTFS, NULL, pflags, NULL) < 0
        || ((pflags & MS_SHARED) && mount(NULL, MOUNT_TEMPLATE_ROOTFS, NULL, MS_PRIVATE, NULL) < 0))
      return shim_fail_errno(err, errno, "make rootfs %s %s", ctx->rootfs, prop ? prop : "rslave");
    root_fd = open(MOUNT_TEMPLATE_ROOTFS, O_DIRECTORY | O_CLOEXEC);
  } else {
    if (mount(NULL, "/", NULL, pflags, NULL) < 0)
      return shim_fail_errno(err, errno, "make / %s", prop ? prop : "rslave");
    if ((pflags & MS_SHARED) && rootfs_parent_private(ctx->rootfs, err) < 0)
      return -1;
    if (mount(ctx->rootfs, ctx->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
      return shim_fail_errno(err, errno, "bind rootfs %s", ctx->rootfs);
    root_fd = open(ctx->rootfs, O_DIRECTORY | O_CLOEXEC);
  }
  if (root_fd < 0)
    return shim_fail_errno(err, errno, "open rootfs %s", ctx->rootfs);
  for (size_t i = 0; i < r->n_mounts; i++) {
    /* SELinux: the file systems made here for the container get its file context. */
    struct spec_mount m = r->mounts[i];
    char data[LSM_MOUNT_DATA_MAX];
    snprintf(data, sizeof(data), "%s", m.data ? m.data : "");
    m.data = data;
    if (lsm_mount_data(m.type, m.flags & MS_BIND, r->mount_label, data, sizeof(data), err) < 0
        || do_mount(&m, i, root_fd, ctx, err) < 0)
      return -1;
    if (strcmp(m.dest, "/dev") == 0)
      dev_is_tmpfs = m.type && strcmp(m.type, "tmpfs") == 0;
  }
  if (setup_devices(r, root_fd, ctx, dev_is_tmpfs, err) < 0)
    return -1;
  if (ctx->before_pivot && ctx->before_pivot(ctx->before_pivot_arg, err) < 0)
    return -1;
  if (fchdir(root_fd) < 0)
    return shim_fail_errno(err, errno, "chdir rootfs");
  if (syscall(SYS_pivot_root, ".", ".") < 0)
    return shim_fail_errno(err, errno, "pivot_root %s", ctx->rootfs);
  /* The old root is stacked under the new one: detach it. */
  if (umount2(".", MNT_DETACH) < 0)
    return shim_fail_errno(err, errno, "detach the old root");
  if (chdir("/") < 0)
    return shim_fail_errno(err, errno, "chdir /");
  if (mask_paths(r, err) < 0 || readonly_paths(r, err) < 0)
    return -1;
  if (r->readonly && bind_remount("/", MS_RDONLY, locked_flags("/"), err, "root.readonly") < 0)
    return -1;
  return 0;
}
