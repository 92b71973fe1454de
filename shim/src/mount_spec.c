/* mount_spec.c: the rootfs's part of config.json checked and parsed (struct
 * spec_rootfs, which mount.c makes): root.readonly, mounts with their options turned
 * into mount flags and file system data, and linux's devices, maskedPaths,
 * readonlyPaths and rootfsPropagation. */
#include "shim.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>

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

/* uidMappings and gidMappings (runtime-spec 1.1): both or neither, and only on a bind
 * mount, which the shim then clones id-mapped (as runc and crun do; non-recursively unless
 * "ridmap" says otherwise). */
static int parse_mount_idmap(json_t *m, const char *where, struct spec_mount *out, struct shim_err *err)
{
  if (idmap_parse(m, "uidMappings", where, &out->uid_maps, &out->n_uid_maps, err) < 0
      || idmap_parse(m, "gidMappings", where, &out->gid_maps, &out->n_gid_maps, err) < 0)
    return -1;
  if (!out->n_uid_maps != !out->n_gid_maps)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.%s: required with %s", where, out->n_uid_maps ? "gidMappings" : "uidMappings",
                     out->n_uid_maps ? "uidMappings" : "gidMappings");
  if (out->n_uid_maps)
    out->idmap = true;
  if (out->idmap && !(out->flags & MS_BIND))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: id-mapped mounts must be bind mounts (type %s)", where, out->type);
  return 0;
}

static int parse_mount(json_t *m, const char *where, void *item, void *ctx, struct shim_err *err)
{
  struct spec_mount *out = item;
  json_t *opts, *o;
  char data[LSM_MOUNT_DATA_MAX] = "";
  size_t i, dlen = 0;
  if (field_string(m, "destination", where, &out->dest, err) < 0 || field_string(m, "type", where, &out->type, err) < 0
      || field_string(m, "source", where, &out->source, err) < 0 || field_array(m, "options", where, &opts, err) < 0)
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
    if (strcmp(s, "idmap") == 0 || strcmp(s, "ridmap") == 0) {
      out->idmap = true;
      out->idmap_recursive = out->idmap_recursive || s[0] == 'r';
      continue;
    }
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
      int n = snprintf(data + dlen, sizeof(data) - dlen, "%s%s", dlen ? "," : "", s);
      if (n < 0 || (size_t) n >= sizeof(data) - dlen)
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
  if (dlen && !(out->data = strdup(data)))
    return shim_fail_errno(err, ENOMEM, "%s.options", where);
  return parse_mount_idmap(m, where, out, err);
}

static int parse_paths(json_t *linux_obj, const char *key, const char ***out, size_t *n, struct shim_err *err)
{
  json_t *arr, *v;
  size_t i;
  if (field_array(linux_obj, key, "linux", &arr, err) < 0)
    return -1;
  *out = calloc(json_array_size(arr) + 1, sizeof(**out));
  if (!*out)
    return shim_fail_errno(err, ENOMEM, "linux.%s", key);
  json_array_foreach (arr, i, v) {
    const char *s = json_string_value(v);
    if (!s || s[0] != '/' || has_dotdot(s))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.%s[%zu]: must be an absolute path without \"..\"", key, i);
    (*out)[(*n)++] = s;
  }
  return 0;
}

static int parse_device(json_t *d, const char *where, void *item, void *ctx, struct shim_err *err)
{
  struct spec_device *dev = item;
  const char *type;
  int64_t v;
  bool present;
  if (field_string(d, "path", where, &dev->path, err) < 0 || field_string(d, "type", where, &type, err) < 0)
    return -1;
  if (!dev->path || dev->path[0] != '/' || has_dotdot(dev->path))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.path: must be an absolute path without \"..\"", where);
  if (!type || strlen(type) != 1 || !strchr("cbup", type[0]))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.type: must be one of c, b, u, p", where);
  dev->type = type[0] == 'u' ? 'c' : type[0];
  if (field_int64(d, "major", where, &present, &v, err) < 0 || (type[0] != 'p' && (!present || v < 0)))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.major: required non-negative integer", where);
  dev->major = (unsigned) v;
  if (field_int64(d, "minor", where, &present, &v, err) < 0 || (type[0] != 'p' && (!present || v < 0)))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.minor: required non-negative integer", where);
  dev->minor = (unsigned) v;
  if (field_int64(d, "fileMode", where, &present, &v, err) < 0 || (present && (v < 0 || v > 07777)))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.fileMode: must be a mode in 0..07777", where);
  dev->mode = present ? (mode_t) v : 0666;
  if (field_int64(d, "uid", where, &present, &v, err) < 0 || (present && (v < 0 || v > INT32_MAX)))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.uid: out of range", where);
  dev->uid = (uid_t) v;
  if (field_int64(d, "gid", where, &present, &v, err) < 0 || (present && (v < 0 || v > INT32_MAX)))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.gid: out of range", where);
  dev->gid = (gid_t) v;
  return 0;
}

static const char *const propagations[] = { "shared", "slave", "private", "unbindable",
                                            "rshared", "rslave", "rprivate", "runbindable" };

int mount_parse(json_t *spec, struct spec_rootfs *out, struct shim_err *err)
{
  json_t *root, *mounts, *devices, *linux_obj;
  const char *prop;
  memset(out, 0, sizeof(*out));
  if (field_object(spec, "root", "config", &root, err) < 0 || field_bool(root, "readonly", "root", &out->readonly, err) < 0
      || field_array(spec, "mounts", "config", &mounts, err) < 0)
    return -1;
  /* linux.mounts in messages, as it always was (the OCI field is the top-level mounts). */
  if (field_objects(mounts, "linux.mounts", sizeof(*out->mounts), (void **) &out->mounts, &out->n_mounts, parse_mount, NULL, err) < 0)
    return -1;
  linux_obj = json_object_get(spec, "linux");
  if (parse_paths(linux_obj, "maskedPaths", &out->masked_paths, &out->n_masked_paths, err) < 0
      || parse_paths(linux_obj, "readonlyPaths", &out->readonly_paths, &out->n_readonly_paths, err) < 0
      || field_array(linux_obj, "devices", "linux", &devices, err) < 0
      || field_objects(devices, "linux.devices", sizeof(*out->devices), (void **) &out->devices, &out->n_devices, parse_device,
                       NULL, err) < 0
      || field_string(linux_obj, "rootfsPropagation", "linux", &prop, err) < 0)
    return -1;
  if (prop) {
    bool known = false;
    for (size_t k = 0; k < sizeof(propagations) / sizeof(propagations[0]); k++)
      known = known || strcmp(prop, propagations[k]) == 0;
    if (!known)
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.rootfsPropagation: unknown value \"%s\"", prop);
  }
  out->propagation = prop;
  out->propagation_flags = prop ? find_opt(prop)->flag : MS_REC | MS_SLAVE;
  return 0;
}

void mount_free(struct spec_rootfs *r)
{
  for (size_t i = 0; i < r->n_mounts; i++) {
    free(r->mounts[i].data);
    free(r->mounts[i].uid_maps);
    free(r->mounts[i].gid_maps);
  }
  free(r->mounts);
  free(r->devices);
  free(r->masked_paths);
  free(r->readonly_paths);
  memset(r, 0, sizeof(*r));
}
