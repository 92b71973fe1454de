/* seccomp.c: linux.seccomp (the OCI profile) turned into a libseccomp filter
 * and loaded as the process's last step before execve. */
#include "shim.h"

#include <seccomp.h>
#include <stdio.h>
#include <string.h>

static const struct {
  const char *name;
  uint32_t action;
  bool takes_errno;
} actions[] = {
  { "SCMP_ACT_KILL", SCMP_ACT_KILL_THREAD, false },
  { "SCMP_ACT_KILL_THREAD", SCMP_ACT_KILL_THREAD, false },
  { "SCMP_ACT_KILL_PROCESS", SCMP_ACT_KILL_PROCESS, false },
  { "SCMP_ACT_TRAP", SCMP_ACT_TRAP, false },
  { "SCMP_ACT_ERRNO", 0, true },
  { "SCMP_ACT_TRACE", 0, true },
  { "SCMP_ACT_ALLOW", SCMP_ACT_ALLOW, false },
  { "SCMP_ACT_LOG", SCMP_ACT_LOG, false },
};

static const struct {
  const char *name;
  uint32_t arch;
} arches[] = {
  { "SCMP_ARCH_X86", SCMP_ARCH_X86 },         { "SCMP_ARCH_X86_64", SCMP_ARCH_X86_64 },
  { "SCMP_ARCH_X32", SCMP_ARCH_X32 },         { "SCMP_ARCH_ARM", SCMP_ARCH_ARM },
  { "SCMP_ARCH_AARCH64", SCMP_ARCH_AARCH64 }, { "SCMP_ARCH_MIPS", SCMP_ARCH_MIPS },
  { "SCMP_ARCH_MIPS64", SCMP_ARCH_MIPS64 },   { "SCMP_ARCH_MIPS64N32", SCMP_ARCH_MIPS64N32 },
  { "SCMP_ARCH_MIPSEL", SCMP_ARCH_MIPSEL },   { "SCMP_ARCH_MIPSEL64", SCMP_ARCH_MIPSEL64 },
  { "SCMP_ARCH_MIPSEL64N32", SCMP_ARCH_MIPSEL64N32 }, { "SCMP_ARCH_PPC", SCMP_ARCH_PPC },
  { "SCMP_ARCH_PPC64", SCMP_ARCH_PPC64 },     { "SCMP_ARCH_PPC64LE", SCMP_ARCH_PPC64LE },
  { "SCMP_ARCH_S390", SCMP_ARCH_S390 },       { "SCMP_ARCH_S390X", SCMP_ARCH_S390X },
  { "SCMP_ARCH_PARISC", SCMP_ARCH_PARISC },   { "SCMP_ARCH_PARISC64", SCMP_ARCH_PARISC64 },
  { "SCMP_ARCH_RISCV64", SCMP_ARCH_RISCV64 },
};

static const struct {
  const char *name;
  enum scmp_compare op;
} ops[] = {
  { "SCMP_CMP_NE", SCMP_CMP_NE }, { "SCMP_CMP_LT", SCMP_CMP_LT }, { "SCMP_CMP_LE", SCMP_CMP_LE },
  { "SCMP_CMP_EQ", SCMP_CMP_EQ }, { "SCMP_CMP_GE", SCMP_CMP_GE }, { "SCMP_CMP_GT", SCMP_CMP_GT },
  { "SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ },
};

static const char *const flag_names[] = { "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                                          "SECCOMP_FILTER_FLAG_SPEC_ALLOW" };

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Action by name; errno_ret applies to ERRNO/TRACE. Returns -1 if unknown. */
static int parse_action(const char *name, json_t *errno_ret, uint32_t def_errno, uint32_t *out, const char *where,
                        struct shim_err *err)
{
  if (!name)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: action required", where);
  if (strcmp(name, "SCMP_ACT_NOTIFY") == 0)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: SCMP_ACT_NOTIFY is not supported", where);
  for (size_t i = 0; i < COUNT(actions); i++) {
    uint32_t e = def_errno;
    if (strcmp(actions[i].name, name) != 0)
      continue;
    if (errno_ret && !json_is_null(errno_ret)) {
      if (!json_is_integer(errno_ret) || json_integer_value(errno_ret) < 0 || json_integer_value(errno_ret) > 4095)
        return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: errnoRet must be an errno number", where);
      e = (uint32_t) json_integer_value(errno_ret);
    }
    if (!actions[i].takes_errno)
      *out = actions[i].action;
    else if (strcmp(name, "SCMP_ACT_ERRNO") == 0)
      *out = SCMP_ACT_ERRNO(e);
    else
      *out = SCMP_ACT_TRACE(e);
    return 0;
  }
  return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: unknown action \"%s\"", where, name);
}

static int parse_arg(json_t *a, struct scmp_arg_cmp *out, const char *where, struct shim_err *err)
{
  uint64_t index, value, two;
  bool has_index;
  const char *op;
  if (!json_is_object(a))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: must be an object", where);
  if (spec_get_uint64(a, "index", where, &has_index, &index, err) < 0 || spec_get_uint64(a, "value", where, NULL, &value, err) < 0
      || spec_get_uint64(a, "valueTwo", where, NULL, &two, err) < 0 || spec_get_string(a, "op", where, &op, err) < 0)
    return -1;
  if (!has_index || index > 5)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.index: must be 0..5", where);
  for (size_t i = 0; op && i < COUNT(ops); i++) {
    if (strcmp(ops[i].name, op) == 0) {
      *out = (struct scmp_arg_cmp) { .arg = (unsigned) index, .op = ops[i].op, .datum_a = value, .datum_b = two };
      return 0;
    }
  }
  return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.op: unknown operator \"%s\"", where, op ? op : "");
}

/* Walk the profile; with ctx set, add everything to the filter. */
static int walk(json_t *seccomp, scmp_filter_ctx ctx, struct shim_err *err)
{
  const char *def_name;
  uint32_t def_action, def_errno = EPERM;
  json_t *arr, *v, *syscalls, *rule;
  size_t i;

  if (spec_get_string(seccomp, "defaultAction", "linux.seccomp", &def_name, err) < 0)
    return -1;
  if (parse_action(def_name, json_object_get(seccomp, "defaultErrnoRet"), EPERM, &def_action, "linux.seccomp.defaultAction", err) < 0)
    return -1;
  (void) def_errno;
  if (spec_get_array(seccomp, "architectures", "linux.seccomp", &arr, err) < 0)
    return -1;
  json_array_foreach (arr, i, v) {
    const char *name = json_string_value(v);
    size_t k;
    for (k = 0; name && k < COUNT(arches); k++)
      if (strcmp(arches[k].name, name) == 0)
        break;
    if (!name || k == COUNT(arches))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.seccomp.architectures[%zu]: unknown \"%s\"", i, name ? name : "");
    if (ctx) {
      int r = seccomp_arch_add(ctx, arches[k].arch);
      if (r < 0 && r != -EEXIST)
        return shim_fail_errno(err, -r, "linux.seccomp.architectures[%zu]: add %s", i, name);
    }
  }
  if (spec_get_array(seccomp, "flags", "linux.seccomp", &arr, err) < 0)
    return -1;
  json_array_foreach (arr, i, v) {
    const char *name = json_string_value(v);
    size_t k;
    for (k = 0; name && k < COUNT(flag_names); k++)
      if (strcmp(flag_names[k], name) == 0)
        break;
    if (!name || k == COUNT(flag_names))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.seccomp.flags[%zu]: unknown \"%s\"", i, name ? name : "");
    if (ctx && strcmp(name, "SECCOMP_FILTER_FLAG_LOG") == 0)
      seccomp_attr_set(ctx, SCMP_FLTATR_CTL_LOG, 1);
    if (ctx && strcmp(name, "SECCOMP_FILTER_FLAG_SPEC_ALLOW") == 0)
      seccomp_attr_set(ctx, SCMP_FLTATR_CTL_SSB, 1);
    if (ctx && strcmp(name, "SECCOMP_FILTER_FLAG_TSYNC") == 0)
      seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
  }
  if (spec_get_array(seccomp, "syscalls", "linux.seccomp", &syscalls, err) < 0)
    return -1;
  json_array_foreach (syscalls, i, rule) {
    char where[64];
    const char *act_name;
    uint32_t action;
    json_t *names, *args, *name_v, *a;
    struct scmp_arg_cmp cmps[6];
    size_t n_args = 0, j;
    bool same_index = false;

    snprintf(where, sizeof(where), "linux.seccomp.syscalls[%zu]", i);
    if (!json_is_object(rule))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: must be an object", where);
    if (spec_get_string(rule, "action", where, &act_name, err) < 0 || spec_get_array(rule, "names", where, &names, err) < 0
        || spec_get_array(rule, "args", where, &args, err) < 0)
      return -1;
    if (parse_action(act_name, json_object_get(rule, "errnoRet"), EPERM, &action, where, err) < 0)
      return -1;
    if (json_array_size(args) > 6)
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.args: at most 6 comparisons", where);
    json_array_foreach (args, j, a) {
      char awhere[96];
      snprintf(awhere, sizeof(awhere), "%s.args[%zu]", where, j);
      if (parse_arg(a, &cmps[n_args], awhere, err) < 0)
        return -1;
      for (size_t k = 0; k < n_args; k++)
        same_index = same_index || cmps[k].arg == cmps[n_args].arg;
      n_args++;
    }
    json_array_foreach (names, j, name_v) {
      const char *name = json_string_value(name_v);
      int nr, r;
      if (!name)
        return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.names[%zu]: must be a string", where, j);
      if (!ctx || action == def_action)
        continue; /* libseccomp refuses a rule equal to the default */
      nr = seccomp_syscall_resolve_name(name);
      if (nr == __NR_SCMP_ERROR)
        continue; /* a syscall this kernel/arch does not know: nothing to filter */
      if (same_index) {
        /* libseccomp wants one comparison per argument in a rule: split. */
        for (size_t k = 0; k < n_args; k++) {
          r = seccomp_rule_add_array(ctx, action, nr, 1, &cmps[k]);
          if (r < 0)
            return shim_fail_errno(err, -r, "%s: add rule for %s", where, name);
        }
      } else {
        r = seccomp_rule_add_array(ctx, action, nr, (unsigned) n_args, cmps);
        if (r < 0)
          return shim_fail_errno(err, -r, "%s: add rule for %s", where, name);
      }
    }
  }
  return 0;
}

int seccomp_validate(json_t *seccomp, struct shim_err *err)
{
  if (!json_is_object(seccomp))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.seccomp: must be an object");
  return walk(seccomp, NULL, err);
}

int seccomp_apply(json_t *seccomp, struct shim_err *err)
{
  const char *def_name = json_string_value(json_object_get(seccomp, "defaultAction"));
  uint32_t def_action;
  scmp_filter_ctx ctx;
  int r;
  if (parse_action(def_name, json_object_get(seccomp, "defaultErrnoRet"), EPERM, &def_action, "linux.seccomp.defaultAction", err) < 0)
    return -1;
  ctx = seccomp_init(def_action);
  if (!ctx)
    return shim_fail(err, SHIM_INTERNAL, "linux.seccomp: seccomp_init failed");
  /* no_new_privs is the spec's own choice (process.noNewPrivileges); as root
   * with CAP_SYS_ADMIN the filter loads without it. */
  seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
  if (walk(seccomp, ctx, err) < 0) {
    seccomp_release(ctx);
    return -1;
  }
  r = seccomp_load(ctx);
  seccomp_release(ctx);
  if (r < 0)
    return shim_fail_errno(err, -r, "linux.seccomp: load the filter");
  return 0;
}
