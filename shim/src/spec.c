/* spec.c: load an OCI bundle's config.json and validate it before anything is
 * created, so bad input fails early with a message naming the field. Each
 * section's own checks live with the module that applies it. */
#include "shim.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#define CONFIG_MAX (4 * 1024 * 1024)

static int type_error(struct shim_err *err, const char *where, const char *key, const char *want)
{
  return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.%s: must be %s", where, key, want);
}

bool spec_has(json_t *obj, const char *key)
{
  json_t *v = obj ? json_object_get(obj, key) : NULL;
  return v && !json_is_null(v);
}

int spec_get_string(json_t *obj, const char *key, const char *where, const char **out, struct shim_err *err)
{
  json_t *v = obj ? json_object_get(obj, key) : NULL;
  *out = NULL;
  if (!v || json_is_null(v))
    return 0;
  if (!json_is_string(v))
    return type_error(err, where, key, "a string");
  *out = json_string_value(v);
  return 0;
}

int spec_get_bool(json_t *obj, const char *key, const char *where, bool *out, struct shim_err *err)
{
  json_t *v = obj ? json_object_get(obj, key) : NULL;
  *out = false;
  if (!v || json_is_null(v))
    return 0;
  if (!json_is_boolean(v))
    return type_error(err, where, key, "a boolean");
  *out = json_is_true(v);
  return 0;
}

int spec_get_int64(json_t *obj, const char *key, const char *where, bool *present, int64_t *out, struct shim_err *err)
{
  json_t *v = obj ? json_object_get(obj, key) : NULL;
  if (present)
    *present = false;
  *out = 0;
  if (!v || json_is_null(v))
    return 0;
  if (!json_is_integer(v))
    return type_error(err, where, key, "an integer");
  *out = (int64_t) json_integer_value(v);
  if (present)
    *present = true;
  return 0;
}

int spec_get_uint64(json_t *obj, const char *key, const char *where, bool *present, uint64_t *out, struct shim_err *err)
{
  json_t *v = obj ? json_object_get(obj, key) : NULL;
  if (present)
    *present = false;
  *out = 0;
  if (!v || json_is_null(v))
    return 0;
  /* jansson holds integers as signed 64-bit: values above INT64_MAX (e.g. a
   * memory limit of 2^64-1) arrive as reals and are accepted as "unlimited". */
  if (json_is_real(v) && json_real_value(v) >= 9.2e18) {
    *out = UINT64_MAX;
  } else if (!json_is_integer(v) || json_integer_value(v) < 0) {
    return type_error(err, where, key, "a non-negative integer");
  } else {
    *out = (uint64_t) json_integer_value(v);
  }
  if (present)
    *present = true;
  return 0;
}

int spec_get_object(json_t *obj, const char *key, const char *where, json_t **out, struct shim_err *err)
{
  json_t *v = obj ? json_object_get(obj, key) : NULL;
  *out = NULL;
  if (!v || json_is_null(v))
    return 0;
  if (!json_is_object(v))
    return type_error(err, where, key, "an object");
  *out = v;
  return 0;
}

int spec_get_array(json_t *obj, const char *key, const char *where, json_t **out, struct shim_err *err)
{
  json_t *v = obj ? json_object_get(obj, key) : NULL;
  *out = NULL;
  if (!v || json_is_null(v))
    return 0;
  if (!json_is_array(v))
    return type_error(err, where, key, "an array");
  *out = v;
  return 0;
}

static int validate_string_array(json_t *arr, const char *where, struct shim_err *err)
{
  size_t i;
  json_t *v;
  json_array_foreach (arr, i, v) {
    if (!json_is_string(v))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s[%zu]: must be a string", where, i);
  }
  return 0;
}

static const char *const rlimit_names[] = {
  "RLIMIT_AS", "RLIMIT_CORE", "RLIMIT_CPU", "RLIMIT_DATA", "RLIMIT_FSIZE", "RLIMIT_LOCKS",
  "RLIMIT_MEMLOCK", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_NOFILE", "RLIMIT_NPROC",
  "RLIMIT_RSS", "RLIMIT_RTPRIO", "RLIMIT_RTTIME", "RLIMIT_SIGPENDING", "RLIMIT_STACK",
};

static int validate_rlimits(json_t *process, struct shim_err *err)
{
  json_t *rlimits, *r;
  size_t i;
  if (spec_get_array(process, "rlimits", "process", &rlimits, err) < 0)
    return -1;
  json_array_foreach (rlimits, i, r) {
    const char *type;
    uint64_t soft, hard;
    bool has_soft, has_hard, known = false;
    char where[64];
    snprintf(where, sizeof(where), "process.rlimits[%zu]", i);
    if (!json_is_object(r))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: must be an object", where);
    if (spec_get_string(r, "type", where, &type, err) < 0
        || spec_get_uint64(r, "soft", where, &has_soft, &soft, err) < 0
        || spec_get_uint64(r, "hard", where, &has_hard, &hard, err) < 0)
      return -1;
    if (!type)
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.type: required", where);
    for (size_t k = 0; k < sizeof(rlimit_names) / sizeof(rlimit_names[0]); k++)
      known = known || strcmp(type, rlimit_names[k]) == 0;
    if (!known)
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.type: unknown rlimit \"%s\"", where, type);
    if (!has_soft || !has_hard)
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: soft and hard are required", where);
    if (soft > hard)
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s (%s): soft limit %llu exceeds hard limit %llu", where, type,
                       (unsigned long long) soft, (unsigned long long) hard);
  }
  return 0;
}

int spec_validate_process(json_t *process, const char *where, struct shim_err *err)
{
  json_t *args, *env, *user, *gids;
  const char *cwd;
  bool present;
  int64_t v;
  size_t i;
  json_t *g;

  if (!process || !json_is_object(process))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: required object", where);
  if (spec_get_array(process, "args", where, &args, err) < 0)
    return -1;
  if (!args || json_array_size(args) == 0)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.args: at least one argument is required", where);
  if (validate_string_array(args, "process.args", err) < 0)
    return -1;
  if (json_string_length(json_array_get(args, 0)) == 0)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.args[0]: empty executable name", where);
  if (spec_get_array(process, "env", where, &env, err) < 0 || validate_string_array(env, "process.env", err) < 0)
    return -1;
  if (spec_get_string(process, "cwd", where, &cwd, err) < 0)
    return -1;
  if (cwd && cwd[0] != '/')
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.cwd: must be an absolute path, got \"%s\"", where, cwd);
  if (spec_get_object(process, "user", where, &user, err) < 0)
    return -1;
  if (user) {
    uint64_t id;
    if (spec_get_uint64(user, "uid", "process.user", NULL, &id, err) < 0)
      return -1;
    if (id > INT32_MAX)
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.user.uid: %llu out of range", where, (unsigned long long) id);
    if (spec_get_uint64(user, "gid", "process.user", NULL, &id, err) < 0)
      return -1;
    if (id > INT32_MAX)
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.user.gid: %llu out of range", where, (unsigned long long) id);
    if (spec_get_array(user, "additionalGids", "process.user", &gids, err) < 0)
      return -1;
    json_array_foreach (gids, i, g) {
      if (!json_is_integer(g) || json_integer_value(g) < 0 || json_integer_value(g) > INT32_MAX)
        return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.user.additionalGids[%zu]: must be a gid in 0..2^31-1", where, i);
    }
    if (gids && json_array_size(gids) > 65536)
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.user.additionalGids: too many groups", where);
  }
  if (spec_get_int64(process, "oomScoreAdj", where, &present, &v, err) < 0)
    return -1;
  if (present && (v < -1000 || v > 1000))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.oomScoreAdj: %lld not in -1000..1000", where, (long long) v);
  if (validate_rlimits(process, err) < 0 || caps_validate(process, err) < 0 || lsm_validate_process(process, where, err) < 0)
    return -1;
  {
    bool b;
    if (spec_get_bool(process, "terminal", where, &b, err) < 0 || spec_get_bool(process, "noNewPrivileges", where, &b, err) < 0)
      return -1;
  }
  return 0;
}

int spec_load(const char *bundle, json_t **out, struct shim_err *err)
{
  char path[PATH_MAX];
  cleanup_free char *text = NULL;
  size_t len;
  json_error_t jerr;
  cleanup_json json_t *spec = NULL;
  json_t *root, *linux_obj, *process, *resources, *seccomp;
  const char *version, *hostname, *rootpath;

  if (snprintf(path, sizeof(path), "%s/config.json", bundle) >= (int) sizeof(path))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "bundle path too long");
  if (read_file(path, &text, &len, CONFIG_MAX, err) < 0)
    return -1;
  spec = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!spec)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: malformed JSON at line %d column %d: %s", path, jerr.line,
                     jerr.column, jerr.text);
  if (!json_is_object(spec))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: top level must be a JSON object", path);
  if (spec_get_string(spec, "ociVersion", "config", &version, err) < 0)
    return -1;
  if (!version || strncmp(version, "1.", 2) != 0)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "config.ociVersion: unsupported version \"%s\" (want 1.x)", version ? version : "");
  if (spec_get_object(spec, "root", "config", &root, err) < 0 || spec_get_string(root, "path", "root", &rootpath, err) < 0)
    return -1;
  if (!rootpath || !*rootpath)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "root.path: required");
  if (spec_get_string(spec, "hostname", "config", &hostname, err) < 0)
    return -1;
  if (hostname && strlen(hostname) > 64)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "hostname: longer than 64 characters");
  if (spec_get_object(spec, "process", "config", &process, err) < 0 || spec_validate_process(process, "process", err) < 0)
    return -1;
  if (spec_get_object(spec, "linux", "config", &linux_obj, err) < 0)
    return -1;
  if (ns_validate(linux_obj, err) < 0 || mount_validate(spec, err) < 0 || lsm_validate_linux(linux_obj, err) < 0)
    return -1;
  if (spec_get_object(linux_obj, "resources", "linux", &resources, err) < 0
      || cgroup_validate_resources(resources, err) < 0)
    return -1;
  if (spec_get_object(linux_obj, "seccomp", "linux", &seccomp, err) < 0 || (seccomp && seccomp_validate(seccomp, err) < 0))
    return -1;
  {
    json_t *sysctl, *v;
    const char *k;
    if (spec_get_object(linux_obj, "sysctl", "linux", &sysctl, err) < 0)
      return -1;
    json_object_foreach (sysctl, k, v) {
      if (!json_is_string(v))
        return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.sysctl[\"%s\"]: value must be a string", k);
      if (!*k || strstr(k, "..") || strchr(k, '/') || k[0] == '.')
        return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.sysctl: bad key \"%s\"", k);
    }
  }
  *out = spec;
  spec = NULL;
  return 0;
}
