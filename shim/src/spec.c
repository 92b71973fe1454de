/* spec.c: load an OCI bundle's config.json, check it and parse it into struct spec
 * before anything is created, so bad input fails early with a message naming the
 * field and nothing reads the JSON again. Each section's own checks live with the
 * module that applies it. */
#include "shim.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define CONFIG_MAX (4 * 1024 * 1024)

static const struct {
  const char *name;
  int resource;
} rlimits[] = {
  { "RLIMIT_AS", RLIMIT_AS },           { "RLIMIT_CORE", RLIMIT_CORE },
  { "RLIMIT_CPU", RLIMIT_CPU },         { "RLIMIT_DATA", RLIMIT_DATA },
  { "RLIMIT_FSIZE", RLIMIT_FSIZE },     { "RLIMIT_LOCKS", RLIMIT_LOCKS },
  { "RLIMIT_MEMLOCK", RLIMIT_MEMLOCK }, { "RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE },
  { "RLIMIT_NICE", RLIMIT_NICE },       { "RLIMIT_NOFILE", RLIMIT_NOFILE },
  { "RLIMIT_NPROC", RLIMIT_NPROC },     { "RLIMIT_RSS", RLIMIT_RSS },
  { "RLIMIT_RTPRIO", RLIMIT_RTPRIO },   { "RLIMIT_RTTIME", RLIMIT_RTTIME },
  { "RLIMIT_SIGPENDING", RLIMIT_SIGPENDING }, { "RLIMIT_STACK", RLIMIT_STACK },
};

static int parse_rlimit(json_t *r, const char *where, void *item, void *ctx, struct shim_err *err)
{
  struct spec_rlimit *rl = item;
  bool has_soft, has_hard;
  size_t k;
  if (field_string(r, "type", where, &rl->type, err) < 0 || field_uint64(r, "soft", where, &has_soft, &rl->soft, err) < 0
      || field_uint64(r, "hard", where, &has_hard, &rl->hard, err) < 0)
    return -1;
  if (!rl->type)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.type: required", where);
  for (k = 0; k < sizeof(rlimits) / sizeof(rlimits[0]) && strcmp(rl->type, rlimits[k].name) != 0; k++)
    ;
  if (k == sizeof(rlimits) / sizeof(rlimits[0]))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.type: unknown rlimit \"%s\"", where, rl->type);
  rl->resource = rlimits[k].resource;
  if (!has_soft || !has_hard)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: soft and hard are required", where);
  if (rl->soft > rl->hard)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s (%s): soft limit %llu exceeds hard limit %llu", where, rl->type,
                     (unsigned long long) rl->soft, (unsigned long long) rl->hard);
  return 0;
}

static int parse_user(json_t *process, const char *where, struct spec_process *out, struct shim_err *err)
{
  json_t *user, *gids, *g, *umask_v;
  uint64_t id;
  size_t i;
  out->umask = -1;
  if (field_object(process, "user", where, &user, err) < 0)
    return -1;
  if (!user)
    return 0;
  if (field_uint64(user, "uid", "process.user", NULL, &id, err) < 0)
    return -1;
  if (id > INT32_MAX)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.user.uid: %llu out of range", where, (unsigned long long) id);
  out->uid = (uint32_t) id;
  if (field_uint64(user, "gid", "process.user", NULL, &id, err) < 0)
    return -1;
  if (id > INT32_MAX)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.user.gid: %llu out of range", where, (unsigned long long) id);
  out->gid = (uint32_t) id;
  if (field_array(user, "additionalGids", "process.user", &gids, err) < 0)
    return -1;
  json_array_foreach (gids, i, g) {
    if (!json_is_integer(g) || json_integer_value(g) < 0 || json_integer_value(g) > INT32_MAX)
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.user.additionalGids[%zu]: must be a gid in 0..2^31-1", where, i);
  }
  if (gids && json_array_size(gids) > 65536)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.user.additionalGids: too many groups", where);
  out->gids = calloc(json_array_size(gids) + 1, sizeof(gid_t));
  if (!out->gids)
    return shim_fail_errno(err, ENOMEM, "%s.user", where);
  json_array_foreach (gids, i, g)
    out->gids[out->n_gids++] = (gid_t) json_integer_value(g);
  /* An integer umask is taken (its permission bits); anything else is ignored. */
  umask_v = json_object_get(user, "umask");
  if (json_is_integer(umask_v))
    out->umask = (int) (json_integer_value(umask_v) & 0777);
  return 0;
}

int spec_parse_process(json_t *process, const char *where, struct spec_process *out, struct shim_err *err)
{
  json_t *args, *env, *rlimits_json;
  int64_t v;

  memset(out, 0, sizeof(*out));
  out->umask = -1;
  if (!process || !json_is_object(process))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: required object", where);
  if (field_array(process, "args", where, &args, err) < 0)
    return -1;
  if (!args || json_array_size(args) == 0)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.args: at least one argument is required", where);
  if (json_string_list(args, "process", "args", &out->args, err) < 0)
    return -1;
  if (out->args[0][0] == '\0')
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.args[0]: empty executable name", where);
  if (field_array(process, "env", where, &env, err) < 0 || json_string_list(env, "process", "env", &out->env, err) < 0)
    return -1;
  if (field_string(process, "cwd", where, &out->cwd, err) < 0)
    return -1;
  if (out->cwd && out->cwd[0] != '/')
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.cwd: must be an absolute path, got \"%s\"", where, out->cwd);
  if (parse_user(process, where, out, err) < 0)
    return -1;
  if (field_int64(process, "oomScoreAdj", where, &out->has_oom_score_adj, &v, err) < 0)
    return -1;
  if (out->has_oom_score_adj && (v < -1000 || v > 1000))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.oomScoreAdj: %lld not in -1000..1000", where, (long long) v);
  out->oom_score_adj = (int) v;
  if (field_array(process, "rlimits", "process", &rlimits_json, err) < 0
      || field_objects(rlimits_json, "process.rlimits", sizeof(*out->rlimits), (void **) &out->rlimits, &out->n_rlimits,
                       parse_rlimit, NULL, err) < 0
      || caps_parse(process, &out->caps, err) < 0
      || lsm_parse_process(process, where, &out->apparmor_profile, &out->selinux_label, err) < 0)
    return -1;
  if (field_bool(process, "terminal", where, &out->terminal, err) < 0
      || field_bool(process, "noNewPrivileges", where, &out->no_new_privileges, err) < 0)
    return -1;
  return 0;
}

void spec_process_free(struct spec_process *p)
{
  free(p->args);
  free(p->env);
  free(p->gids);
  free(p->rlimits);
  memset(p, 0, sizeof(*p));
}

/* A linux.sysctl key: a dotted name, nothing that leaves /proc/sys. */
static bool sysctl_key_ok(const char *k)
{
  return *k && !strstr(k, "..") && !strchr(k, '/') && k[0] != '.';
}

void spec_free(struct spec *spec)
{
  if (!spec)
    return;
  spec_process_free(&spec->process);
  ns_free(&spec->ns);
  mount_free(&spec->rootfs);
  resources_free(&spec->resources);
  seccomp_free(spec->seccomp);
  free(spec->sysctls);
  hooks_free(&spec->hooks);
  json_decref(spec->doc);
  free(spec);
}

void cleanup_specp(struct spec **spec)
{
  spec_free(*spec);
}

int spec_load(const char *bundle, struct spec **out, struct shim_err *err)
{
  char path[PATH_MAX];
  cleanup_free char *text = NULL;
  cleanup_spec struct spec *spec = NULL;
  size_t len;
  json_error_t jerr;
  json_t *doc, *root, *linux_obj, *process, *resources, *seccomp, *sysctl;
  const char *version;

  if (snprintf(path, sizeof(path), "%s/config.json", bundle) >= (int) sizeof(path))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "bundle path too long");
  if (read_file(path, &text, &len, CONFIG_MAX, err) < 0)
    return -1;
  spec = calloc(1, sizeof(*spec));
  if (!spec)
    return shim_fail_errno(err, ENOMEM, "%s", path);
  doc = spec->doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!doc)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: malformed JSON at line %d column %d: %s", path, jerr.line,
                     jerr.column, jerr.text);
  if (!json_is_object(doc))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: top level must be a JSON object", path);
  if (field_string(doc, "ociVersion", "config", &version, err) < 0)
    return -1;
  if (!version || strncmp(version, "1.", 2) != 0)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "config.ociVersion: unsupported version \"%s\" (want 1.x)", version ? version : "");
  if (field_object(doc, "root", "config", &root, err) < 0 || field_string(root, "path", "root", &spec->root_path, err) < 0)
    return -1;
  if (!spec->root_path || !*spec->root_path)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "root.path: required");
  if (field_string(doc, "hostname", "config", &spec->hostname, err) < 0)
    return -1;
  if (spec->hostname && strlen(spec->hostname) > 64)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "hostname: longer than 64 characters");
  if (field_object(doc, "process", "config", &process, err) < 0
      || spec_parse_process(process, "process", &spec->process, err) < 0)
    return -1;
  if (field_object(doc, "linux", "config", &linux_obj, err) < 0)
    return -1;
  if (ns_parse(linux_obj, &spec->ns, err) < 0 || mount_parse(doc, &spec->rootfs, err) < 0
      || lsm_parse_linux(linux_obj, &spec->rootfs.mount_label, err) < 0)
    return -1;
  if (field_object(linux_obj, "resources", "linux", &resources, err) < 0 || resources_parse(resources, &spec->resources, err) < 0)
    return -1;
  if (field_object(linux_obj, "seccomp", "linux", &seccomp, err) < 0 || seccomp_parse(seccomp, &spec->seccomp, err) < 0)
    return -1;
  if (field_object(linux_obj, "sysctl", "linux", &sysctl, err) < 0
      || ns_parse_sysctls(sysctl, "linux.sysctl", sysctl_key_ok, &spec->sysctls, &spec->n_sysctls, err) < 0)
    return -1;
  if (hooks_parse(doc, &spec->hooks, err) < 0)
    return -1;
  /* Not checked: a cgroupsPath that is not a string is taken as none (the default). */
  spec->cgroups_path = json_string_value(json_object_get(linux_obj, "cgroupsPath"));
  *out = spec;
  spec = NULL;
  return 0;
}
