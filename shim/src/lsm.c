/* lsm.c: mandatory access control for a container's processes: the SELinux
 * label and AppArmor profile they exec into (process.selinuxLabel,
 * process.apparmorProfile) and the SELinux context of the file systems the
 * shim mounts for them (linux.mountLabel). skiffd only names what the host's
 * LSMs can enforce; what is named here is applied or the process fails.
 * The /proc writes go through struct lsm_ops so unit tests see them. */
#include "shim.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>

/* Thread-scoped attributes: the LSM attributes are per thread, and
 * /proc/self names the thread-group leader. The process is single-threaded,
 * but this is the path that is right regardless (as crun uses). */
#define ATTR_DIR "/proc/thread-self/attr"
#define LSM_LABEL_MAX 4096

static int real_write_attr(const char *path, const char *data, struct shim_err *err)
{
  cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC);
  struct statfs sfs;
  size_t len = strlen(data);
  ssize_t n;
  if (fd < 0)
    return shim_fail_errno(err, errno, "open %s", path);
  /* A container could put something else over its /proc (CVE-2019-16884):
   * the label would then silently not apply. */
  if (fstatfs(fd, &sfs) < 0)
    return shim_fail_errno(err, errno, "statfs %s", path);
  if (sfs.f_type != PROC_SUPER_MAGIC)
    return shim_fail(err, SHIM_FAILED_PRECONDITION, "%s is not on a proc file system", path);
  do
    n = write(fd, data, len);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return shim_fail_errno(err, errno, "write %s", path);
  if ((size_t) n != len)
    return shim_fail(err, SHIM_INTERNAL, "write %s: short write (%zd of %zu bytes)", path, n, len);
  return 0;
}

const struct lsm_ops lsm_real_ops = { .write_attr = real_write_attr };

static int parse_label(json_t *obj, const char *key, const char *where, const char **out, struct shim_err *err)
{
  const char *s;
  if (field_string(obj, key, where, &s, err) < 0)
    return -1;
  *out = s;
  if (!s)
    return 0;
  if (strlen(s) > LSM_LABEL_MAX)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.%s: longer than %d bytes", where, key, LSM_LABEL_MAX);
  /* A NUL, newline or quote would end the attribute write or the mount option early. */
  if (strpbrk(s, "\n\"") || json_string_length(json_object_get(obj, key)) != strlen(s))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.%s: \"%s\" has a NUL, newline or quote", where, key, s);
  return 0;
}

int lsm_parse_process(json_t *process, const char *where, const char **apparmor_profile, const char **selinux_label,
                      struct shim_err *err)
{
  return parse_label(process, "apparmorProfile", where, apparmor_profile, err) < 0
             || parse_label(process, "selinuxLabel", where, selinux_label, err) < 0
             ? -1
             : 0;
}

int lsm_parse_linux(json_t *linux_obj, const char **mount_label, struct shim_err *err)
{
  return parse_label(linux_obj, "mountLabel", "linux", mount_label, err);
}

/* SELinux: the label the next execve transitions to. */
static int set_selinux_exec(const struct lsm_ops *ops, const char *label, struct shim_err *err)
{
  if (ops->write_attr(ATTR_DIR "/exec", label, err) < 0) {
    shim_err_prefix(err, "process.selinuxLabel \"%s\"", label);
    return -1;
  }
  return 0;
}

/* AppArmor: "exec <profile>" to its own attribute directory (Linux 5.1 on),
 * else to the shared attr/exec of kernels where AppArmor is the only LSM. */
static int set_apparmor_exec(const struct lsm_ops *ops, const char *profile, struct shim_err *err)
{
  char cmd[LSM_LABEL_MAX + 8];
  snprintf(cmd, sizeof(cmd), "exec %s", profile);
  if (ops->write_attr(ATTR_DIR "/apparmor/exec", cmd, err) == 0)
    return 0;
  if (err->errnum == ENOENT && ops->write_attr(ATTR_DIR "/exec", cmd, err) == 0)
    return 0;
  shim_err_prefix(err, "process.apparmorProfile \"%s\"", profile);
  return -1;
}

int lsm_set_exec_labels(const struct lsm_ops *ops, const char *label, const char *profile, struct shim_err *err)
{
  if (label && *label && set_selinux_exec(ops, label, err) < 0)
    return -1;
  if (profile && *profile && set_apparmor_exec(ops, profile, err) < 0)
    return -1;
  return 0;
}

int lsm_mount_data(const char *type, bool bind, const char *label, char *data, size_t size, struct shim_err *err)
{
  size_t len = strlen(data);
  int n;
  if (!label || !*label || bind || !type)
    return 0;
  if (strcmp(type, "tmpfs") != 0 && strcmp(type, "mqueue") != 0 && strcmp(type, "devpts") != 0)
    return 0;
  n = snprintf(data + len, size - len, "%scontext=\"%s\"", len ? "," : "", label);
  if (n < 0 || (size_t) n >= size - len) {
    data[len] = '\0';
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.mountLabel \"%s\": mount options of a %s mount too long", label, type);
  }
  return 0;
}
