/* features.c: what this kernel lets the shim do, probed for `skiff-shim --features`
 * (skiffd reports it in the CRI Status, as containerd reports `runc features`):
 * recursive read-only mounts, user namespaces with id-mapped mounts, and /sys for a
 * user namespace left in the host's network namespace. Each probe works on detached
 * mounts (gone with their fd) or in a child of its own, so nothing is left behind. */
#include "shim.h"

#include <fcntl.h>
#include <linux/mount.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

/* The mappings a pod would get: root of the namespace is an unprivileged host id. */
#define PROBE_HOST_ID 100000
#define PROBE_IDS 65536

/* A tmpfs mounted nowhere: the mount is freed when the returned fd is closed. */
static int detached_tmpfs(struct shim_err *err)
{
  cleanup_close int fsfd = (int) syscall(SYS_fsopen, "tmpfs", FSOPEN_CLOEXEC);
  int mfd;
  if (fsfd < 0)
    return shim_fail_errno(err, errno, "fsopen tmpfs");
  if (syscall(SYS_fsconfig, fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
    return shim_fail_errno(err, errno, "create tmpfs");
  mfd = (int) syscall(SYS_fsmount, fsfd, FSMOUNT_CLOEXEC, 0);
  if (mfd < 0)
    return shim_fail_errno(err, errno, "fsmount tmpfs");
  return mfd;
}

/* What the shim does for an "rro" mount (kernel 5.12+). */
static int probe_rro(struct shim_err *err)
{
  cleanup_close int mfd = detached_tmpfs(err);
  if (mfd < 0)
    return -1;
  if (syscall(SYS_mount_setattr, mfd, "", AT_EMPTY_PATH | AT_RECURSIVE,
              &(struct mount_attr) { .attr_set = MOUNT_ATTR_RDONLY }, sizeof(struct mount_attr)) < 0)
    return shim_fail_errno(err, errno, "mount_setattr(AT_RECURSIVE, MOUNT_ATTR_RDONLY)");
  return 0;
}

/* An id-mapped mount of tmpfs, where kubelet's secrets, config maps and projected
 * volumes live (kernel 6.3+; disk file systems had it earlier). */
static int probe_idmap(int userns_fd, struct shim_err *err)
{
  cleanup_close int mfd = detached_tmpfs(err);
  if (mfd < 0)
    return -1;
  if (syscall(SYS_mount_setattr, mfd, "", AT_EMPTY_PATH,
              &(struct mount_attr) { .attr_set = MOUNT_ATTR_IDMAP, .userns_fd = (uint64_t) userns_fd },
              sizeof(struct mount_attr)) < 0)
    return shim_fail_errno(err, errno, "mount_setattr(MOUNT_ATTR_IDMAP) on tmpfs");
  return 0;
}

/* In the child, inside the new user namespace and a mount namespace it owns, still in
 * the host's network namespace: a container's /sys there, as mount.c makes it. sysfs
 * refuses a user namespace that does not own the network namespace; the shim then
 * binds the host's /sys recursively read-only. Returns 0 or an errno. */
static int child_sysfs(void)
{
  cleanup_close int fd = -1;
  if (unshare(CLONE_NEWNS) < 0)
    return errno;
  {
    cleanup_close int fsfd = (int) syscall(SYS_fsopen, "sysfs", FSOPEN_CLOEXEC);
    if (fsfd >= 0 && syscall(SYS_fsconfig, fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) == 0)
      return 0;
  }
  fd = (int) syscall(SYS_open_tree, AT_FDCWD, "/sys", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
  if (fd < 0)
    return errno;
  if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE,
              &(struct mount_attr) { .attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC },
              sizeof(struct mount_attr)) < 0)
    return errno;
  return 0;
}

/* The child: unshare a user namespace, report (0 or errno), then wait for the parent
 * to write its mappings and ask for the /sys probe, and report that. */
static void child_main(int report_fd, int cmd_fd)
{
  int r = unshare(CLONE_NEWUSER) < 0 ? errno : 0;
  char cmd;
  write_all(report_fd, &r, sizeof(r));
  if (r || read_all(cmd_fd, &cmd, 1) != 1)
    _exit(0);
  r = child_sysfs();
  write_all(report_fd, &r, sizeof(r));
  _exit(0);
}

struct userns_probe {
  struct shim_err userns, idmap, host_network;
  int userns_ok, idmap_ok, host_network_ok;
};

static int child_report(int fd, int *r)
{
  return read_all(fd, r, sizeof(*r)) == (ssize_t) sizeof(*r) ? 0 : -1;
}

/* The probes that need a child in a user namespace of its own. */
static void probe_in_child(struct userns_probe *p)
{
  cleanup_close int report_rd = -1, report_wr = -1, cmd_rd = -1, cmd_wr = -1;
  cleanup_close int userns_fd = -1;
  struct spec_idmap map = { .container_id = 0, .host_id = PROBE_HOST_ID, .size = PROBE_IDS };
  struct spec_ns ns = { .uid_maps = &map, .n_uid_maps = 1, .gid_maps = &map, .n_gid_maps = 1 };
  cleanup_reap pid_t pid = -1;
  int fds[2], r = 0;
  char path[64], go = 'S';

  if (pipe2(fds, O_CLOEXEC) < 0) {
    shim_fail_errno(&p->userns, errno, "pipe");
    return;
  }
  report_rd = fds[0], report_wr = fds[1];
  if (pipe2(fds, O_CLOEXEC) < 0) {
    shim_fail_errno(&p->userns, errno, "pipe");
    return;
  }
  cmd_rd = fds[0], cmd_wr = fds[1];
  pid = fork();
  if (pid == 0) {
    close(report_rd), close(cmd_wr);
    child_main(report_wr, cmd_rd);
  }
  close(report_wr), close(cmd_rd);
  report_wr = cmd_rd = -1;
  if (pid < 0) {
    shim_fail_errno(&p->userns, errno, "fork");
    return;
  }
  if (child_report(report_rd, &r) < 0 || r) {
    shim_fail_errno(&p->userns, r ? r : EPIPE, "unshare(CLONE_NEWUSER)");
    return;
  }
  if (ns_write_id_mappings(pid, &ns, &p->userns) < 0)
    return;
  snprintf(path, sizeof(path), "/proc/%d/ns/user", (int) pid);
  userns_fd = open(path, O_RDONLY | O_CLOEXEC);
  if (userns_fd < 0) {
    shim_fail_errno(&p->userns, errno, "open %s", path);
    return;
  }
  p->userns_ok = 0;
  p->idmap_ok = probe_idmap(userns_fd, &p->idmap);
  if (write_all(cmd_wr, &go, 1) != 1 || child_report(report_rd, &r) < 0)
    shim_fail_errno(&p->host_network, EPIPE, "the probe's child");
  else if (r)
    shim_fail_errno(&p->host_network, r, "/sys in a user namespace with the host's network namespace");
  else
    p->host_network_ok = 0;
}

static void probe_userns(struct userns_probe *p)
{
  p->userns_ok = p->idmap_ok = p->host_network_ok = -1;
  probe_in_child(p);
  if (p->userns_ok < 0) {
    shim_fail(&p->idmap, SHIM_FAILED_PRECONDITION, "no user namespace to map to: %s", p->userns.msg);
    shim_fail(&p->host_network, SHIM_FAILED_PRECONDITION, "no user namespace: %s", p->userns.msg);
  }
}

static json_t *result(int rc, const struct shim_err *err)
{
  return rc == 0 ? json_pack("{s:b}", "supported", 1) : json_pack("{s:b,s:s}", "supported", 0, "error", err->msg);
}

int features_print(void)
{
  struct shim_err rro_err = { 0 };
  struct userns_probe u = { 0 };
  int rro = probe_rro(&rro_err);
  cleanup_json json_t *out = NULL;
  cleanup_free char *text = NULL;

  /* A child that died must not take us with it when we write to its pipe. */
  signal(SIGPIPE, SIG_IGN);
  probe_userns(&u);
  out = json_pack("{s:o,s:o,s:o,s:o}", "recursiveReadOnlyMounts", result(rro, &rro_err), "userNamespaces",
                  result(u.userns_ok, &u.userns), "idmapMounts", result(u.idmap_ok, &u.idmap), "userNamespacesHostNetwork",
                  result(u.host_network_ok, &u.host_network));
  text = out ? json_dumps(out, JSON_COMPACT) : NULL;
  if (!text) {
    fprintf(stderr, "skiff-shim: features: out of memory\n");
    return 1;
  }
  printf("%s\n", text);
  return 0;
}
