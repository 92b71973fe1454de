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

/* One of linux.namespaces; seen: the kinds listed so far. */
static int parse_namespace(json_t *ns, const char *where, void *item, void *seen_kinds, struct shim_err *err)
{
  struct spec_namespace *out = item;
  bool *seen = seen_kinds;
  const char *type, *path;
  int k;
  if (field_string(ns, "type", where, &type, err) < 0 || field_string(ns, "path", where, &path, err) < 0)
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
  *out = (struct spec_namespace) { .flag = ns_kinds[k].flag, .type = type, .path = path };
  return 0;
}

int ns_parse(json_t *linux_obj, struct spec_ns *out, struct shim_err *err)
{
  json_t *nss;
  bool seen[N_KINDS] = { false };
  memset(out, 0, sizeof(*out));
  if (field_array(linux_obj, "namespaces", "linux", &nss, err) < 0
      || field_objects(nss, "linux.namespaces", sizeof(*out->list), (void **) &out->list, &out->n, parse_namespace, seen, err) < 0)
    return -1;
  if (idmap_parse(linux_obj, "uidMappings", "linux", &out->uid_maps, &out->n_uid_maps, err) < 0
      || idmap_parse(linux_obj, "gidMappings", "linux", &out->gid_maps, &out->n_gid_maps, err) < 0)
    return -1;
  if ((out->n_uid_maps || out->n_gid_maps) && !seen[kind_index("user")])
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.uidMappings: mappings need a user namespace in linux.namespaces");
  return 0;
}

void ns_free(struct spec_ns *ns)
{
  free(ns->list);
  free(ns->uid_maps);
  free(ns->gid_maps);
  memset(ns, 0, sizeof(*ns));
}

bool ns_listed(const struct spec_ns *ns, int flag)
{
  for (size_t i = 0; i < ns->n; i++)
    if (ns->list[i].flag == flag)
      return true;
  return false;
}

int ns_clone_flags(const struct spec_ns *ns)
{
  int flags = 0;
  for (size_t i = 0; i < ns->n; i++)
    if (!ns->list[i].path)
      flags |= ns->list[i].flag;
  return flags;
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

int ns_open_paths(const struct spec_ns *ns, struct ns_set *set, struct shim_err *err)
{
  cleanup_ns_set struct ns_set got = { 0 };
  /* ns_parse allows one entry per kind, so the set cannot overflow. */
  for (size_t k = 0; k < N_KINDS; k++) {
    for (size_t i = 0; i < ns->n; i++) {
      const char *type = ns->list[i].type, *path = ns->list[i].path;
      cleanup_close int fd = -1;
      if (!path || ns->list[i].flag != ns_kinds[k].flag)
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

static int write_map(pid_t pid, const char *file, const struct spec_idmap *maps, size_t n, struct shim_err *err)
{
  char path[64], buf[340 * 36 + 1];
  size_t len = 0;
  if (!n)
    return 0;
  for (size_t i = 0; i < n; i++) {
    len += (size_t) snprintf(buf + len, sizeof(buf) - len, "%lld %lld %lld\n", (long long) maps[i].container_id,
                             (long long) maps[i].host_id, (long long) maps[i].size);
    if (len >= sizeof(buf))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: too many mappings", file);
  }
  snprintf(path, sizeof(path), "/proc/%d/%s", (int) pid, file);
  /* The kernel takes the whole map in one write. */
  return write_file(path, buf, len, 0, err);
}

int ns_write_id_mappings(pid_t pid, const struct spec_ns *ns, struct shim_err *err)
{
  if (write_map(pid, "uid_map", ns->uid_maps, ns->n_uid_maps, err) < 0
      || write_map(pid, "gid_map", ns->gid_maps, ns->n_gid_maps, err) < 0)
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

int ns_parse_sysctls(json_t *obj, const char *where, bool (*key_ok)(const char *key), struct spec_sysctl **out, size_t *n,
                     struct shim_err *err)
{
  cleanup_free struct spec_sysctl *list = calloc(json_object_size(obj) + 1, sizeof(*list));
  const char *k;
  json_t *v;
  *n = 0;
  if (!list)
    return shim_fail_errno(err, ENOMEM, "%s", where);
  json_object_foreach (obj, k, v) {
    if (!json_is_string(v))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s[\"%s\"]: value must be a string", where, k);
    if (!key_ok(k))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: bad key \"%s\"", where, k);
    list[(*n)++] = (struct spec_sysctl) { .key = k, .value = json_string_value(v) };
  }
  *out = list;
  list = NULL;
  return 0;
}

int ns_write_sysctls(const struct spec_sysctl *sysctls, size_t n, const char *where, struct shim_err *err)
{
  for (size_t i = 0; i < n; i++) {
    char path[PATH_MAX];
    const char *key = sysctls[i].key, *val = sysctls[i].value;
    /* net.* and the ipc keys resolve to the writer's own namespaces. */
    if (snprintf(path, sizeof(path), "/proc/sys/%s", key) >= (int) sizeof(path))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: key too long", where);
    for (char *p = path + strlen("/proc/sys/"); *p; p++)
      if (*p == '.')
        *p = '/';
    if (write_file(path, val, strlen(val), 0, err) < 0) {
      shim_err_prefix(err, "%s[\"%s\"]", where, key);
      return -1;
    }
  }
  return 0;
}
