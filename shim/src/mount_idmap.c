/* mount_idmap.c: id-mapped bind mounts. The kernel lets only a process privileged over
 * the source's file system (the host's root) id-map a mount, and only a detached one, so
 * each is made before the container's process joins its pod's user namespace: a clone of
 * the source (open_tree) with the mount's mappings set (mount_setattr MOUNT_ATTR_IDMAP
 * with a user namespace made to hold them), which mount.c then attaches inside the
 * rootfs (move_mount), as crun and runc do. */
#include "shim.h"

#include <fcntl.h>
#include <linux/mount.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

int idmap_userns_open(const struct spec_idmap *uids, size_t nu, const struct spec_idmap *gids, size_t ng, struct shim_err *err)
{
  struct spec_ns ns = { .uid_maps = (struct spec_idmap *) uids, .n_uid_maps = nu, .gid_maps = (struct spec_idmap *) gids,
                        .n_gid_maps = ng };
  cleanup_close int ready_rd = -1, ready_wr = -1;
  cleanup_reap pid_t pid = -1;
  char path[64], r = 0;
  int fds[2], fd;

  if (pipe2(fds, O_CLOEXEC) < 0)
    return shim_fail_errno(err, errno, "pipe");
  ready_rd = fds[0], ready_wr = fds[1];
  pid = fork();
  if (pid < 0)
    return shim_fail_errno(err, errno, "fork");
  if (pid == 0) {
    /* Holds the namespace until the parent has opened it, then is killed. */
    r = unshare(CLONE_NEWUSER) < 0 ? (char) errno : 0;
    if (write(ready_wr, &r, 1) != 1 || r)
      _exit(1);
    for (;;)
      pause();
  }
  close(ready_wr);
  ready_wr = -1;
  if (read_all(ready_rd, &r, 1) != 1)
    return shim_fail(err, SHIM_INTERNAL, "a user namespace for id-mapped mounts: its process died");
  if (r)
    return shim_fail_errno(err, r, "a user namespace for id-mapped mounts: unshare(CLONE_NEWUSER)");
  if (ns_write_id_mappings(pid, &ns, err) < 0) {
    shim_err_prefix(err, "a user namespace for id-mapped mounts");
    return -1;
  }
  snprintf(path, sizeof(path), "/proc/%d/ns/user", (int) pid);
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return shim_fail_errno(err, errno, "open %s", path);
  return fd; /* cleanup_reap kills the holder: the namespace lives on in fd */
}

void mount_idmap_close(int *fds, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    if (fds[i] >= 0)
      close(fds[i]);
    fds[i] = -1;
  }
}

/* The clone of one mount's source, id-mapped through userns_fd. */
static int idmapped_clone(const struct spec_mount *m, int userns_fd, struct shim_err *err)
{
  struct mount_attr attr = { .attr_set = MOUNT_ATTR_IDMAP, .userns_fd = (uint64_t) userns_fd };
  cleanup_close int tree = -1;
  int fd;
  tree = (int) syscall(SYS_open_tree, AT_FDCWD, m->source,
                       OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | ((m->flags & MS_REC) ? AT_RECURSIVE : 0));
  if (tree < 0)
    return shim_fail_errno(err, errno, "clone %s", m->source);
  if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | (m->idmap_recursive ? AT_RECURSIVE : 0), &attr, sizeof(attr)) < 0) {
    int e = errno;
    if (e == EINVAL)
      return shim_fail(err, SHIM_FAILED_PRECONDITION, "id-map %s: its file system does not support id-mapped mounts%s",
                       m->source, m->idmap_recursive ? " (or a mount under it does not)" : "");
    return shim_fail_errno(err, e, "id-map %s", m->source);
  }
  fd = tree;
  tree = -1;
  return fd;
}

int mount_idmap_prepare(const struct spec *spec, int *fds, struct shim_err *err)
{
  const struct spec_rootfs *r = &spec->rootfs;
  /* One user namespace per distinct mapping: kubelet gives every volume the pod's. */
  const struct spec_idmap *ns_uids = NULL, *ns_gids = NULL;
  size_t ns_nu = 0, ns_ng = 0;
  cleanup_close int userns_fd = -1;

  for (size_t i = 0; i < r->n_mounts; i++)
    fds[i] = -1;
  for (size_t i = 0; i < r->n_mounts; i++) {
    const struct spec_mount *m = &r->mounts[i];
    const struct spec_idmap *uids = m->uid_maps, *gids = m->gid_maps;
    size_t nu = m->n_uid_maps, ng = m->n_gid_maps;
    if (!m->idmap)
      continue;
    if (!nu) {
      /* "idmap" alone: the container's own mappings. */
      uids = spec->ns.uid_maps, nu = spec->ns.n_uid_maps;
      gids = spec->ns.gid_maps, ng = spec->ns.n_gid_maps;
      if (!nu || !ng) {
        shim_fail(err, SHIM_INVALID_ARGUMENT, "mounts[%zu] (%s): \"idmap\" without uidMappings and gidMappings needs linux.uidMappings and linux.gidMappings",
                  i, m->dest);
        goto fail;
      }
    }
    if (userns_fd < 0 || !idmap_equal(uids, nu, ns_uids, ns_nu) || !idmap_equal(gids, ng, ns_gids, ns_ng)) {
      if (userns_fd >= 0)
        close(userns_fd);
      userns_fd = idmap_userns_open(uids, nu, gids, ng, err);
      if (userns_fd < 0)
        goto fail_at;
      ns_uids = uids, ns_nu = nu, ns_gids = gids, ns_ng = ng;
    }
    fds[i] = idmapped_clone(m, userns_fd, err);
    if (fds[i] < 0)
      goto fail_at;
    continue;
  fail_at:
    shim_err_prefix(err, "mounts[%zu] (%s)", i, m->dest);
    goto fail;
  }
  return 0;
fail:
  mount_idmap_close(fds, r->n_mounts);
  return -1;
}
