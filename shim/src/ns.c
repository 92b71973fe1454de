/* ns.c: linux.namespaces: validation, clone flags for new namespaces, and
 * joining existing ones by path (user first, mount last). */
#include "shim.h"

#include <fcntl.h>
#include <limits.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

/* In join order: user first (it grants the rights to join the others),
 * mount last (it changes the root the other paths are resolved in). */
static const struct {
  const char *name;      /* in linux.namespaces */
  const char *proc_name; /* in /proc/<pid>/ns/ */
  int flag;
} ns_kinds[] = {
  { "user", "user", CLONE_NEWUSER }, { "pid", "pid", CLONE_NEWPID },          { "network", "net", CLONE_NEWNET },
  { "ipc", "ipc", CLONE_NEWIPC },    { "uts", "uts", CLONE_NEWUTS },          { "cgroup", "cgroup", CLONE_NEWCGROUP },
  { "mount", "mnt", CLONE_NEWNS },
};
#define N_KINDS (sizeof(ns_kinds) / sizeof(ns_kinds[0]))

static int kind_index(const char *name)
{
  for (size_t i = 0; i < N_KINDS; i++)
    if (strcmp(ns_kinds[i].name, name) == 0)
      return (int) i;
  return -1;
}

static int validate_mappings(json_t *linux_obj, const char *key, struct shim_err *err)
{
  json_t *arr, *m;
  size_t i;
  if (spec_get_array(linux_obj, key, "linux", &arr, err) < 0)
    return -1;
  if (json_array_size(arr) > 340)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.%s: more than 340 entries", key);
  json_array_foreach (arr, i, m) {
    char where[64];
    uint64_t cid, hid, size;
    bool p1, p2, p3;
    snprintf(where, sizeof(where), "linux.%s[%zu]", key, i);
    if (!json_is_object(m))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: must be an object", where);
    if (spec_get_uint64(m, "containerID", where, &p1, &cid, err) < 0 || spec_get_uint64(m, "hostID", where, &p2, &hid, err) < 0
        || spec_get_uint64(m, "size", where, &p3, &size, err) < 0)
      return -1;
    if (!p1 || !p2 || !p3)
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: containerID, hostID and size are required", where);
    if (size == 0 || cid + size > UINT32_MAX || hid + size > UINT32_MAX)
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: range out of 32-bit ids", where);
  }
  return 0;
}

int ns_validate(json_t *linux_obj, struct shim_err *err)
{
  json_t *nss, *ns;
  size_t i;
  bool seen[N_KINDS] = { false };
  if (spec_get_array(linux_obj, "namespaces", "linux", &nss, err) < 0)
    return -1;
  json_array_foreach (nss, i, ns) {
    const char *type, *path;
    char where[48];
    int k;
    snprintf(where, sizeof(where), "linux.namespaces[%zu]", i);
    if (!json_is_object(ns))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: must be an object", where);
    if (spec_get_string(ns, "type", where, &type, err) < 0 || spec_get_string(ns, "path", where, &path, err) < 0)
      return -1;
    if (!type)
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.type: required", where);
    k = kind_index(type);
    if (k < 0)
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.type: unknown namespace type \"%s\"", where, type);
    if (seen[k])
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: duplicate %s namespace", where, type);
    seen[k] = true;
    if (path && path[0] != '/')
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.path: must be absolute, got \"%s\"", where, path);
    if (path && ns_kinds[k].flag == CLONE_NEWNS)
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: joining an existing mount namespace is not supported", where);
  }
  if (validate_mappings(linux_obj, "uidMappings", err) < 0 || validate_mappings(linux_obj, "gidMappings", err) < 0)
    return -1;
  if ((json_array_size(json_object_get(linux_obj, "uidMappings")) || json_array_size(json_object_get(linux_obj, "gidMappings")))
      && !seen[kind_index("user")])
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.uidMappings: mappings need a user namespace in linux.namespaces");
  return 0;
}

int ns_clone_flags(json_t *linux_obj, int *flags, struct shim_err *err)
{
  json_t *nss = json_object_get(linux_obj, "namespaces"), *ns;
  size_t i;
  *flags = 0;
  json_array_foreach (nss, i, ns) {
    int k = kind_index(json_string_value(json_object_get(ns, "type")));
    if (k < 0)
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.namespaces[%zu]: unknown type", i);
    if (!json_object_get(ns, "path"))
      *flags |= ns_kinds[k].flag;
  }
  return 0;
}

void ns_set_free(struct ns_set *set)
{
  for (size_t i = 0; i < set->n; i++)
    close(set->fds[i]);
  set->n = 0;
}

static void ns_set_add(struct ns_set *set, int fd, int type)
{
  set->fds[set->n] = fd;
  set->types[set->n] = type;
  set->n++;
}

int ns_open_paths(json_t *linux_obj, struct ns_set *set, struct shim_err *err)
{
  json_t *nss = json_object_get(linux_obj, "namespaces"), *ns;
  cleanup_ns_set struct ns_set got = { 0 };
  size_t i;
  /* ns_validate allows one entry per kind, so the set cannot overflow. */
  for (size_t k = 0; k < N_KINDS; k++) {
    json_array_foreach (nss, i, ns) {
      const char *type = json_string_value(json_object_get(ns, "type"));
      const char *path = json_string_value(json_object_get(ns, "path"));
      cleanup_close int fd = -1;
      if (!path || !type || strcmp(type, ns_kinds[k].name) != 0)
        continue;
      fd = open(path, O_RDONLY | O_CLOEXEC);
      if (fd < 0)
        return shim_fail_errno(err, errno, "linux.namespaces[%zu] (%s): open %s", i, type, path);
      if (ioctl(fd, NS_GET_NSTYPE) != ns_kinds[k].flag)
        return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.namespaces[%zu] (%s): %s is not a %s namespace", i, type, path, type);
      ns_set_add(&got, fd, ns_kinds[k].flag);
      fd = -1;
    }
  }
  *set = got;
  got.n = 0;
  return 0;
}

static const char *kind_name(int flag)
{
  for (size_t i = 0; i < N_KINDS; i++)
    if (ns_kinds[i].flag == flag)
      return ns_kinds[i].name;
  return "unknown";
}

int ns_join(const struct ns_set *set, struct shim_err *err)
{
  for (size_t i = 0; i < set->n; i++) {
    if (setns(set->fds[i], set->types[i]) < 0)
      return shim_fail_errno(err, errno, "join %s namespace", kind_name(set->types[i]));
  }
  return 0;
}

static int write_map(pid_t pid, const char *file, json_t *maps, struct shim_err *err)
{
  char path[64], buf[340 * 36 + 1];
  size_t len = 0, i;
  json_t *m;
  if (!json_array_size(maps))
    return 0;
  json_array_foreach (maps, i, m) {
    len += (size_t) snprintf(buf + len, sizeof(buf) - len, "%lld %lld %lld\n",
                             (long long) json_integer_value(json_object_get(m, "containerID")),
                             (long long) json_integer_value(json_object_get(m, "hostID")),
                             (long long) json_integer_value(json_object_get(m, "size")));
    if (len >= sizeof(buf))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: too many mappings", file);
  }
  snprintf(path, sizeof(path), "/proc/%d/%s", (int) pid, file);
  /* The kernel takes the whole map in one write. */
  return write_file(path, buf, len, 0, err);
}

int ns_write_id_mappings(pid_t pid, json_t *uid_mappings, json_t *gid_mappings, struct shim_err *err)
{
  if (write_map(pid, "uid_map", uid_mappings, err) < 0 || write_map(pid, "gid_map", gid_mappings, err) < 0)
    return -1;
  return 0;
}

int ns_open_process(pid_t pid, struct ns_set *set, struct shim_err *err)
{
  cleanup_ns_set struct ns_set got = { 0 };
  for (size_t k = 0; k < N_KINDS; k++) {
    char path[64], self[64];
    struct stat a, b;
    int fd;
    snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int) pid, ns_kinds[k].proc_name);
    snprintf(self, sizeof(self), "/proc/self/ns/%s", ns_kinds[k].proc_name);
    if (stat(path, &a) < 0)
      return shim_fail_errno(err, errno, "namespaces of pid %d: %s", (int) pid, path);
    /* Joining our own user namespace is an error; the others are no-ops. */
    if (stat(self, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev)
      continue;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      return shim_fail_errno(err, errno, "open %s", path);
    ns_set_add(&got, fd, ns_kinds[k].flag);
  }
  *set = got;
  got.n = 0;
  return 0;
}

int ns_write_sysctls(json_t *sysctls, const char *where, struct shim_err *err)
{
  const char *key;
  json_t *v;
  json_object_foreach (sysctls, key, v) {
    char path[PATH_MAX];
    const char *val = json_string_value(v);
    /* net.* and the ipc keys resolve to the writer's own namespaces. */
    if (snprintf(path, sizeof(path), "/proc/sys/%s", key) >= (int) sizeof(path))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: key too long", where);
    for (char *p = path + strlen("/proc/sys/"); *p; p++)
      if (*p == '.')
        *p = '/';
    if (!val || write_file(path, val, strlen(val), 0, err) < 0) {
      if (!val)
        shim_fail(err, SHIM_INVALID_ARGUMENT, "value must be a string");
      shim_err_prefix(err, "%s[\"%s\"]", where, key);
      return -1;
    }
  }
  return 0;
}
