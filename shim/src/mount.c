/* mount.c: the container's root filesystem: spec mounts resolved inside the
 * rootfs (openat2 RESOLVE_IN_ROOT, mounted through /proc/self/fd/N so a
 * swapped symlink cannot redirect them: CVE-2021-30465), devices,
 * pivot_root, masked and read-only paths. */
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

struct mount_opt {
  const char *name;
  bool clear;          /* the option clears the flag (rw, suid, ...) */
  unsigned long flag;
  bool propagation;    /* MS_SHARED & co, applied after the mount */
};

static const struct mount_opt mount_opts[] = {
  { "defaults", false, 0, false },
  { "ro", false, MS_RDONLY, false },         { "rw", true, MS_RDONLY, false },
  { "suid", true, MS_NOSUID, false },        { "nosuid", false, MS_NOSUID, false },
  { "dev", true, MS_NODEV, false },          { "nodev", false, MS_NODEV, false },
  { "exec", true, MS_NOEXEC, false },        { "noexec", false, MS_NOEXEC, false },
  { "sync", false, MS_SYNCHRONOUS, false },  { "async", true, MS_SYNCHRONOUS, false },
  { "dirsync", false, MS_DIRSYNC, false },   { "remount", false, MS_REMOUNT, false },
  { "mand", false, MS_MANDLOCK, false },     { "nomand", true, MS_MANDLOCK, false },
  { "atime", true, MS_NOATIME, false },      { "noatime", false, MS_NOATIME, false },
  { "diratime", true, MS_NODIRATIME, false }, { "nodiratime", false, MS_NODIRATIME, false },
  { "relatime", false, MS_RELATIME, false }, { "norelatime", true, MS_RELATIME, false },
  { "strictatime", false, MS_STRICTATIME, false }, { "nostrictatime", true, MS_STRICTATIME, false },
  { "bind", false, MS_BIND, false },         { "rbind", false, MS_BIND | MS_REC, false },
  { "private", false, MS_PRIVATE, true },    { "rprivate", false, MS_PRIVATE | MS_REC, true },
  { "shared", false, MS_SHARED, true },      { "rshared", false, MS_SHARED | MS_REC, true },
  { "slave", false, MS_SLAVE, true },        { "rslave", false, MS_SLAVE | MS_REC, true },
  { "unbindable", false, MS_UNBINDABLE, true }, { "runbindable", false, MS_UNBINDABLE | MS_REC, true },
  { "tmpcopyup", false, 0, false },
};

/* A parsed spec mount. */
struct mnt {
  const char *dest, *type, *source;
  unsigned long flags, clear, propagation;
  bool rro;
  char data[LSM_MOUNT_DATA_MAX];
};

static const struct mount_opt *find_opt(const char *name)
{
  for (size_t i = 0; i < sizeof(mount_opts) / sizeof(mount_opts[0]); i++)
    if (strcmp(mount_opts[i].name, name) == 0)
      return &mount_opts[i];
  return NULL;
}

static int has_dotdot(const char *path)
{
  const char *p = path;
  while ((p = strstr(p, ".."))) {
    bool start = p == path || p[-1] == '/';
    bool end = p[2] == '\0' || p[2] == '/';
    if (start && end)
      return 1;
    p += 2;
  }
  return 0;
}

static int parse_mount(json_t *m, size_t idx, struct mnt *out, struct shim_err *err)
{
  char where[48];
  json_t *opts, *o;
  size_t i, dlen = 0;
  snprintf(where, sizeof(where), "linux.mounts[%zu]", idx);
  memset(out, 0, sizeof(*out));
  if (!json_is_object(m))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: must be an object", where);
  if (spec_get_string(m, "destination", where, &out->dest, err) < 0 || spec_get_string(m, "type", where, &out->type, err) < 0
      || spec_get_string(m, "source", where, &out->source, err) < 0 || spec_get_array(m, "options", where, &opts, err) < 0)
    return -1;
  if (!out->dest || out->dest[0] != '/')
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.destination: must be an absolute path, got \"%s\"", where,
                     out->dest ? out->dest : "");
  if (has_dotdot(out->dest))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.destination: \"..\" not allowed in \"%s\"", where, out->dest);
  json_array_foreach (opts, i, o) {
    const char *s = json_string_value(o);
    const struct mount_opt *mo;
    if (!s)
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.options[%zu]: must be a string", where, i);
    if (strcmp(s, "idmap") == 0 || strcmp(s, "ridmap") == 0)
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.options[%zu]: \"%s\" mounts are not supported", where, i, s);
    if (strcmp(s, "rro") == 0) {
      out->rro = true;
      continue;
    }
    mo = find_opt(s);
    if (mo && mo->propagation)
      out->propagation |= mo->flag;
    else if (mo && mo->clear)
      out->clear |= mo->flag, out->flags &= ~mo->flag;
    else if (mo)
      out->flags |= mo->flag;
    else {
      /* Anything else is file system data: "mode=755", "newinstance". */
      int n = snprintf(out->data + dlen, sizeof(out->data) - dlen, "%s%s", dlen ? "," : "", s);
      if (n < 0 || (size_t) n >= sizeof(out->data) - dlen)
        return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.options: too long", where);
      dlen += (size_t) n;
    }
  }
  if (out->type && (strcmp(out->type, "bind") == 0 || strcmp(out->type, "rbind") == 0))
    out->flags |= MS_BIND | (strcmp(out->type, "rbind") == 0 ? MS_REC : 0);
  if (!out->type && !(out->flags & MS_BIND))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.type: required unless the mount is a bind mount", where);
  if ((out->flags & MS_BIND) && (!out->source || !*out->source))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.source: required for a bind mount", where);
  return 0;
}

static int validate_paths(json_t *linux_obj, const char *key, struct shim_err *err)
{
  json_t *arr, *v;
  size_t i;
  if (spec_get_array(linux_obj, key, "linux", &arr, err) < 0)
    return -1;
  json_array_foreach (arr, i, v) {
    const char *s = json_string_value(v);
    if (!s || s[0] != '/' || has_dotdot(s))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.%s[%zu]: must be an absolute path without \"..\"", key, i);
  }
  return 0;
}

static int validate_devices(json_t *linux_obj, struct shim_err *err)
{
  json_t *arr, *d;
  size_t i;
  if (spec_get_array(linux_obj, "devices", "linux", &arr, err) < 0)
    return -1;
  json_array_foreach (arr, i, d) {
    char where[48];
    const char *path, *type;
    int64_t v;
    bool present;
    snprintf(where, sizeof(where), "linux.devices[%zu]", i);
    if (!json_is_object(d))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: must be an object", where);
    if (spec_get_string(d, "path", where, &path, err) < 0 || spec_get_string(d, "type", where, &type, err) < 0)
      return -1;
    if (!path || path[0] != '/' || has_dotdot(path))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.path: must be an absolute path without \"..\"", where);
    if (!type || strlen(type) != 1 || !strchr("cbup", type[0]))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.type: must be one of c, b, u, p", where);
    if (spec_get_int64(d, "major", where, &present, &v, err) < 0 || (type[0] != 'p' && (!present || v < 0)))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.major: required non-negative integer", where);
    if (spec_get_int64(d, "minor", where, &present, &v, err) < 0 || (type[0] != 'p' && (!present || v < 0)))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.minor: required non-negative integer", where);
    if (spec_get_int64(d, "fileMode", where, &present, &v, err) < 0 || (present && (v < 0 || v > 07777)))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.fileMode: must be a mode in 0..07777", where);
    if (spec_get_int64(d, "uid", where, &present, &v, err) < 0 || (present && (v < 0 || v > INT32_MAX)))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.uid: out of range", where);
    if (spec_get_int64(d, "gid", where, &present, &v, err) < 0 || (present && (v < 0 || v > INT32_MAX)))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.gid: out of range", where);
  }
  return 0;
}

static const char *const propagations[] = { "shared", "slave", "private", "unbindable",
                                            "rshared", "rslave", "rprivate", "runbindable" };

int mount_validate(json_t *spec, struct shim_err *err)
{
  json_t *root, *mounts, *m, *linux_obj;
  size_t i;
  const char *prop;
  bool ro;
  if (spec_get_object(spec, "root", "config", &root, err) < 0 || spec_get_bool(root, "readonly", "root", &ro, err) < 0
      || spec_get_array(spec, "mounts", "config", &mounts, err) < 0)
    return -1;
  json_array_foreach (mounts, i, m) {
    struct mnt parsed;
    if (parse_mount(m, i, &parsed, err) < 0)
      return -1;
  }
  linux_obj = json_object_get(spec, "linux");
  if (validate_paths(linux_obj, "maskedPaths", err) < 0 || validate_paths(linux_obj, "readonlyPaths", err) < 0
      || validate_devices(linux_obj, err) < 0 || spec_get_string(linux_obj, "rootfsPropagation", "linux", &prop, err) < 0)
    return -1;
  if (prop) {
    bool known = false;
    for (size_t k = 0; k < sizeof(propagations) / sizeof(propagations[0]); k++)
      known = known || strcmp(prop, propagations[k]) == 0;
    if (!known)
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.rootfsPropagation: unknown value \"%s\"", prop);
  }
  return 0;
}

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
static unsigned long locked_flags(const char *path)
{
  struct statvfs st;
  unsigned long f = 0;
  if (statvfs(path, &st) < 0)
    return 0;
  if (st.f_flag & ST_NOSUID)
    f |= MS_NOSUID;
  if (st.f_flag & ST_NODEV)
    f |= MS_NODEV;
  if (st.f_flag & ST_NOEXEC)
    f |= MS_NOEXEC;
  if (st.f_flag & ST_RDONLY)
    f |= MS_RDONLY;
  return f;
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
  if (mount(host_dir, target, NULL, MS_BIND | MS_REC, NULL) < 0)
    return shim_fail_errno(ctx->err, errno, "cgroup mount: bind %s", host_dir);
  return 0;
}

static int mount_cgroup(const struct mnt *m, int root_fd, const char *target, const struct mount_ctx *ctx,
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
    if (dir_fd < 0 || cgroup_foreach_hierarchy(ctx->cg, bind_cgroup_hierarchy, &cctx, err) < 0)
      return -1;
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

static bool source_is_dir(const struct mnt *m)
{
  struct stat st;
  if (!(m->flags & MS_BIND))
    return true;
  return stat(m->source, &st) < 0 || S_ISDIR(st.st_mode);
}

static int do_mount(const struct mnt *m, size_t idx, int root_fd, const struct mount_ctx *ctx, struct shim_err *err)
{
  char target[64];
  cleanup_close int fd = -1;
  const char *type = m->type ? m->type : "bind";

  fd = make_target(root_fd, m->dest, !source_is_dir(m), err);
  if (fd < 0)
    goto fail;
  fd_path(fd, target, sizeof(target));
  if (m->flags & MS_BIND) {
    if (mount(m->source, target, NULL, MS_BIND | (m->flags & MS_REC), NULL) < 0) {
      shim_fail_errno(err, errno, "bind %s", m->source);
      goto fail;
    }
    /* The fd names the directory under the new mount: reopen through it. */
    close(fd);
    fd = make_target(root_fd, m->dest, !source_is_dir(m), err);
    if (fd < 0)
      goto fail;
    fd_path(fd, target, sizeof(target));
    if ((m->flags & ~(MS_BIND | MS_REC)) && bind_remount(target, m->flags, locked_flags(m->source), err, m->dest) < 0)
      goto fail;
  } else if (strcmp(type, "cgroup") == 0) {
    if (mount_cgroup(m, root_fd, target, ctx, err) < 0)
      goto fail;
  } else if (mount(m->source && *m->source ? m->source : type, target, type, m->flags, m->data[0] ? m->data : NULL) < 0) {
    int e = errno;
    /* sysfs needs its own network namespace; without one, bind the host's
     * read-only, as other runtimes do. */
    if (strcmp(type, "sysfs") == 0 && (e == EPERM || e == EBUSY)) {
      if (mount("/sys", target, NULL, MS_BIND | MS_REC, NULL) < 0) {
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
    cleanup_close int tfd = make_target(root_fd, m->dest, !source_is_dir(m), err);
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

static const struct {
  const char *path;
  unsigned maj, min;
} default_devices[] = {
  { "/dev/null", 1, 3 }, { "/dev/zero", 1, 5 }, { "/dev/full", 1, 7 },
  { "/dev/random", 1, 8 }, { "/dev/urandom", 1, 9 }, { "/dev/tty", 5, 0 },
};

static int make_device(int root_fd, const char *path, char type, unsigned maj, unsigned min, mode_t perm, uid_t uid,
                       gid_t gid, bool userns, struct shim_err *err)
{
  char parent_path[PATH_MAX];
  const char *name = strrchr(path, '/') + 1;
  cleanup_close int made = -1;
  cleanup_close int parent = -1;
  mode_t kind = type == 'b' ? S_IFBLK : type == 'p' ? S_IFIFO : S_IFCHR;

  snprintf(parent_path, sizeof(parent_path), "%.*s", (int) (name - path), path);
  made = make_target(root_fd, parent_path, false, err);
  if (made < 0)
    return -1;
  parent = open_in_root(root_fd, parent_path, O_DIRECTORY, 0, err);
  if (parent < 0)
    return -1;
  unlinkat(parent, name, 0);
  if (userns && kind != S_IFIFO) {
    /* No mknod in a user namespace: bind the host's node onto a file. */
    char target[64];
    cleanup_close int fd = openat(parent, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
      return shim_fail_errno(err, errno, "create device placeholder %s", path);
    fd_path(fd, target, sizeof(target));
    if (mount(path, target, NULL, MS_BIND, NULL) < 0)
      return shim_fail_errno(err, errno, "bind device %s", path);
    return 0;
  }
  if (mknodat(parent, name, kind | (perm & 07777), makedev(maj, min)) < 0 || fchownat(parent, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0
      || fchmodat(parent, name, perm & 07777, 0) < 0) /* mknod honours the umask */
    return shim_fail_errno(err, errno, "create device %s", path);
  return 0;
}

static bool device_listed(json_t *devices, const char *path)
{
  size_t i;
  json_t *d;
  json_array_foreach (devices, i, d) {
    const char *p = json_string_value(json_object_get(d, "path"));
    if (p && strcmp(p, path) == 0)
      return true;
  }
  return false;
}

static int setup_devices(json_t *spec, int root_fd, const struct mount_ctx *ctx, bool dev_is_tmpfs, struct shim_err *err)
{
  json_t *devices = json_object_get(json_object_get(spec, "linux"), "devices"), *d;
  size_t i;
  if (dev_is_tmpfs) {
    static const char *const links[][2] = {
      { "/proc/self/fd", "/dev/fd" },     { "/proc/self/fd/0", "/dev/stdin" },
      { "/proc/self/fd/1", "/dev/stdout" }, { "/proc/self/fd/2", "/dev/stderr" },
    };
    for (size_t k = 0; k < sizeof(default_devices) / sizeof(default_devices[0]); k++) {
      if (device_listed(devices, default_devices[k].path))
        continue;
      if (make_device(root_fd, default_devices[k].path, 'c', default_devices[k].maj, default_devices[k].min, 0666, 0, 0,
                      ctx->userns, err) < 0)
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
  json_array_foreach (devices, i, d) {
    const char *path = json_string_value(json_object_get(d, "path"));
    const char *type = json_string_value(json_object_get(d, "type"));
    json_t *mode = json_object_get(d, "fileMode");
    if (make_device(root_fd, path, type[0] == 'u' ? 'c' : type[0], (unsigned) json_integer_value(json_object_get(d, "major")),
                    (unsigned) json_integer_value(json_object_get(d, "minor")),
                    json_is_integer(mode) ? (mode_t) json_integer_value(mode) : 0666,
                    (uid_t) json_integer_value(json_object_get(d, "uid")),
                    (gid_t) json_integer_value(json_object_get(d, "gid")), ctx->userns, err) < 0) {
      shim_err_prefix(err, "linux.devices[%zu]", i);
      return -1;
    }
  }
  return 0;
}

/* ---- after pivot_root ------------------------------------------------------------- */

static int mask_paths(json_t *paths, const char *mount_label, struct shim_err *err)
{
  size_t i;
  json_t *v;
  char data[LSM_MOUNT_DATA_MAX] = "";
  if (lsm_mount_data("tmpfs", false, mount_label, data, sizeof(data), err) < 0)
    return -1;
  json_array_foreach (paths, i, v) {
    const char *p = json_string_value(v);
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

static int readonly_paths(json_t *paths, struct shim_err *err)
{
  size_t i;
  json_t *v;
  json_array_foreach (paths, i, v) {
    const char *p = json_string_value(v);
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

static unsigned long propagation_flags(const char *prop)
{
  if (!prop)
    return MS_REC | MS_SLAVE;
  for (size_t k = 0; k < sizeof(propagations) / sizeof(propagations[0]); k++) {
    const struct mount_opt *o = find_opt(propagations[k]);
    if (strcmp(prop, propagations[k]) == 0 && o)
      return o->flag;
  }
  return MS_REC | MS_SLAVE;
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

int mount_setup_rootfs(json_t *spec, const struct mount_ctx *ctx, struct shim_err *err)
{
  json_t *linux_obj = json_object_get(spec, "linux"), *mounts = json_object_get(spec, "mounts"), *m;
  const char *prop = json_string_value(json_object_get(linux_obj, "rootfsPropagation"));
  /* SELinux: the file systems made here for the container get its file context. */
  const char *mount_label = json_string_value(json_object_get(linux_obj, "mountLabel"));
  unsigned long pflags = propagation_flags(prop);
  cleanup_close int root_fd = -1;
  bool dev_is_tmpfs = false;
  size_t i;

  /* "/" gets the asked propagation (rslave by default), as runc does: rshared keeps
   * the host's shared mounts peers, which bidirectional volumes need. Then the mount
   * holding the rootfs is made private so the rootfs bind, our own mounts and
   * pivot_root (which refuses shared mounts) stay out of any peer group; under
   * rslave they are out of it already. */
  if (mount(NULL, "/", NULL, pflags, NULL) < 0)
    return shim_fail_errno(err, errno, "make / %s", prop ? prop : "rslave");
  if ((pflags & MS_SHARED) && rootfs_parent_private(ctx->rootfs, err) < 0)
    return -1;
  if (mount(ctx->rootfs, ctx->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
    return shim_fail_errno(err, errno, "bind rootfs %s", ctx->rootfs);
  root_fd = open(ctx->rootfs, O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0)
    return shim_fail_errno(err, errno, "open rootfs %s", ctx->rootfs);
  json_array_foreach (mounts, i, m) {
    struct mnt parsed;
    if (parse_mount(m, i, &parsed, err) < 0
        || lsm_mount_data(parsed.type, parsed.flags & MS_BIND, mount_label, parsed.data, sizeof(parsed.data), err) < 0
        || do_mount(&parsed, i, root_fd, ctx, err) < 0)
      return -1;
    if (strcmp(parsed.dest, "/dev") == 0)
      dev_is_tmpfs = parsed.type && strcmp(parsed.type, "tmpfs") == 0;
  }
  if (setup_devices(spec, root_fd, ctx, dev_is_tmpfs, err) < 0)
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
  if (mask_paths(json_object_get(linux_obj, "maskedPaths"), mount_label, err) < 0
      || readonly_paths(json_object_get(linux_obj, "readonlyPaths"), err) < 0)
    return -1;
  if (json_is_true(json_object_get(json_object_get(spec, "root"), "readonly"))
      && bind_remount("/", MS_RDONLY, locked_flags("/"), err, "root.readonly") < 0)
    return -1;
  return 0;
}
