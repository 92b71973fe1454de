/* seccomp.c: linux.seccomp (the OCI profile) checked, compiled by libseccomp into a
 * BPF program once per shim and profile (the shim's containers mostly share one), and
 * loaded as one of the process's last steps. */
#include "shim.h"

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

enum act_kind { ACT_PLAIN, ACT_ERRNO, ACT_TRACE, ACT_NOTIFY };

static const struct {
  const char *name;
  enum act_kind kind;
  uint32_t action; /* for ACT_PLAIN */
} actions[] = {
  /* Plain SCMP_ACT_KILL is libseccomp's old name for killing the thread. */
  { "SCMP_ACT_KILL", ACT_PLAIN, SCMP_ACT_KILL_THREAD },
  { "SCMP_ACT_KILL_THREAD", ACT_PLAIN, SCMP_ACT_KILL_THREAD },
  { "SCMP_ACT_KILL_PROCESS", ACT_PLAIN, SCMP_ACT_KILL_PROCESS },
  { "SCMP_ACT_TRAP", ACT_PLAIN, SCMP_ACT_TRAP },
  { "SCMP_ACT_ERRNO", ACT_ERRNO, 0 },
  { "SCMP_ACT_TRACE", ACT_TRACE, 0 },
  { "SCMP_ACT_ALLOW", ACT_PLAIN, SCMP_ACT_ALLOW },
  { "SCMP_ACT_LOG", ACT_PLAIN, SCMP_ACT_LOG },
  { "SCMP_ACT_NOTIFY", ACT_NOTIFY, 0 },
};

/* Every architecture name of the OCI spec. Those this libseccomp predates
 * have token 0: valid in a profile, skipped when applying (such a process
 * could not run on this host anyway). */
#ifndef SCMP_ARCH_LOONGARCH64
#define SCMP_ARCH_LOONGARCH64 0
#endif
#ifndef SCMP_ARCH_M68K
#define SCMP_ARCH_M68K 0
#endif
#ifndef SCMP_ARCH_SH
#define SCMP_ARCH_SH 0
#endif
#ifndef SCMP_ARCH_SHEB
#define SCMP_ARCH_SHEB 0
#endif
static const struct {
  const char *name;
  uint32_t arch;
} arches[] = {
  { "SCMP_ARCH_X86", SCMP_ARCH_X86 },
  { "SCMP_ARCH_X86_64", SCMP_ARCH_X86_64 },
  { "SCMP_ARCH_X32", SCMP_ARCH_X32 },
  { "SCMP_ARCH_ARM", SCMP_ARCH_ARM },
  { "SCMP_ARCH_AARCH64", SCMP_ARCH_AARCH64 },
  { "SCMP_ARCH_MIPS", SCMP_ARCH_MIPS },
  { "SCMP_ARCH_MIPS64", SCMP_ARCH_MIPS64 },
  { "SCMP_ARCH_MIPS64N32", SCMP_ARCH_MIPS64N32 },
  { "SCMP_ARCH_MIPSEL", SCMP_ARCH_MIPSEL },
  { "SCMP_ARCH_MIPSEL64", SCMP_ARCH_MIPSEL64 },
  { "SCMP_ARCH_MIPSEL64N32", SCMP_ARCH_MIPSEL64N32 },
  { "SCMP_ARCH_PPC", SCMP_ARCH_PPC },
  { "SCMP_ARCH_PPC64", SCMP_ARCH_PPC64 },
  { "SCMP_ARCH_PPC64LE", SCMP_ARCH_PPC64LE },
  { "SCMP_ARCH_S390", SCMP_ARCH_S390 },
  { "SCMP_ARCH_S390X", SCMP_ARCH_S390X },
  { "SCMP_ARCH_PARISC", SCMP_ARCH_PARISC },
  { "SCMP_ARCH_PARISC64", SCMP_ARCH_PARISC64 },
  { "SCMP_ARCH_RISCV64", SCMP_ARCH_RISCV64 },
  { "SCMP_ARCH_LOONGARCH64", SCMP_ARCH_LOONGARCH64 },
  { "SCMP_ARCH_M68K", SCMP_ARCH_M68K },
  { "SCMP_ARCH_SH", SCMP_ARCH_SH },
  { "SCMP_ARCH_SHEB", SCMP_ARCH_SHEB },
};

static const struct {
  const char *name;
  enum scmp_compare op;
} ops[] = {
  { "SCMP_CMP_NE", SCMP_CMP_NE }, { "SCMP_CMP_LT", SCMP_CMP_LT }, { "SCMP_CMP_LE", SCMP_CMP_LE },
  { "SCMP_CMP_EQ", SCMP_CMP_EQ }, { "SCMP_CMP_GE", SCMP_CMP_GE }, { "SCMP_CMP_GT", SCMP_CMP_GT },
  { "SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ },
};

/* attr 0: accepted, nothing to set. WAIT_KILLABLE_RECV only changes how a
 * notify listener is waited for, and notify is not supported. */
static const struct {
  const char *name;
  enum scmp_filter_attr attr;
  unsigned int load_flag; /* what libseccomp passes seccomp(2) for the attribute */
} flags[] = {
  { "SECCOMP_FILTER_FLAG_TSYNC", SCMP_FLTATR_CTL_TSYNC, SECCOMP_FILTER_FLAG_TSYNC },
  { "SECCOMP_FILTER_FLAG_LOG", SCMP_FLTATR_CTL_LOG, SECCOMP_FILTER_FLAG_LOG },
  { "SECCOMP_FILTER_FLAG_SPEC_ALLOW", SCMP_FLTATR_CTL_SSB, SECCOMP_FILTER_FLAG_SPEC_ALLOW },
  { "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", 0, 0 },
};

/* Linux errno values end at 4095 (MAX_ERRNO). */
#define MAX_ERRNO_RET 4095

/* The action named by obj[action_key], with obj[errno_key] for ERRNO and
 * TRACE (def_errno when absent). where is the JSON path of obj. */
static int parse_action(json_t *obj, const char *action_key, const char *errno_key, const char *where, uint32_t *out,
                        struct shim_err *err)
{
  const char *name;
  int64_t errno_ret = EPERM;
  bool has_errno;
  size_t i;

  if (field_string(obj, action_key, where, &name, err) < 0
      || field_int64(obj, errno_key, where, &has_errno, &errno_ret, err) < 0)
    return -1;
  if (!name)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.%s: required", where, action_key);
  if (!has_errno)
    errno_ret = EPERM;
  else if (errno_ret < 0 || errno_ret > MAX_ERRNO_RET)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.%s: %lld is not an errno number (0..%d)", where, errno_key,
                     (long long) errno_ret, MAX_ERRNO_RET);
  for (i = 0; i < COUNT(actions); i++)
    if (strcmp(actions[i].name, name) == 0)
      break;
  if (i == COUNT(actions))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.%s: unknown action \"%s\"", where, action_key, name);
  switch (actions[i].kind) {
  case ACT_PLAIN:
    *out = actions[i].action;
    return 0;
  case ACT_ERRNO:
    *out = SCMP_ACT_ERRNO((uint32_t) errno_ret);
    return 0;
  case ACT_TRACE:
    *out = SCMP_ACT_TRACE((uint32_t) errno_ret);
    return 0;
  case ACT_NOTIFY:
    break;
  }
  return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.%s: SCMP_ACT_NOTIFY is not supported (no seccomp notify listener)",
                   where, action_key);
}

static int parse_arg(json_t *a, const char *where, struct scmp_arg_cmp *out, struct shim_err *err)
{
  uint64_t index, value, two;
  bool has_index, has_value;
  const char *op;
  if (!json_is_object(a))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: must be an object", where);
  if (field_uint64(a, "index", where, &has_index, &index, err) < 0
      || field_uint64(a, "value", where, &has_value, &value, err) < 0
      || field_uint64(a, "valueTwo", where, NULL, &two, err) < 0 || field_string(a, "op", where, &op, err) < 0)
    return -1;
  if (!has_index)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.index: required", where);
  if (index > 5)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.index: %llu not in 0..5", where, (unsigned long long) index);
  if (!has_value)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.value: required", where);
  if (!op)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.op: required", where);
  for (size_t i = 0; i < COUNT(ops); i++) {
    if (strcmp(ops[i].name, op) == 0) {
      /* MASKED_EQ: (arg & value) == valueTwo, as libseccomp's datum_a/b. */
      *out = (struct scmp_arg_cmp) { .arg = (unsigned) index, .op = ops[i].op, .datum_a = value, .datum_b = two };
      return 0;
    }
  }
  return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.op: unknown operator \"%s\"", where, op);
}

/* The filter, parsed: each list in the profile's order, so that an error when it is
 * loaded names the entry (linux.seccomp.architectures[i], syscalls[i]). */
struct seccomp_rule {
  uint32_t action;
  const char **names;
  size_t n_names;
  struct scmp_arg_cmp cmps[6];
  size_t n_args;
  bool same_index; /* two comparisons on one argument: a rule each */
};

struct seccomp_filter {
  uint32_t def_action;
  size_t *arches, n_arches; /* indexes into arches[] */
  size_t *flags, n_flags;   /* indexes into flags[] */
  struct seccomp_rule *rules;
  size_t n_rules;
  char *key;                /* the profile as canonical JSON: what the compiled program is cached by */
  struct sock_filter *prog; /* compiled (seccomp_compile), or NULL */
  size_t prog_len;
  unsigned int load_flags;  /* SECCOMP_FILTER_FLAG_* */
};

void seccomp_free(struct seccomp_filter *f)
{
  if (!f)
    return;
  for (size_t i = 0; i < f->n_rules; i++)
    free(f->rules[i].names);
  free(f->rules);
  free(f->arches);
  free(f->flags);
  free(f->key);
  free(f->prog);
  free(f);
}

static void cleanup_filterp(struct seccomp_filter **f)
{
  seccomp_free(*f);
}

/* One syscalls[] entry. */
static int parse_rule(json_t *rule, const char *where, void *item, void *ctx, struct shim_err *err)
{
  struct seccomp_rule *out = item;
  json_t *names, *args, *v;
  size_t i;

  if (parse_action(rule, "action", "errnoRet", where, &out->action, err) < 0
      || field_array(rule, "names", where, &names, err) < 0 || field_array(rule, "args", where, &args, err) < 0)
    return -1;
  out->n_args = json_array_size(args);
  if (out->n_args > COUNT(out->cmps))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.args: %zu comparisons, at most %zu", where, out->n_args, COUNT(out->cmps));
  json_array_foreach (args, i, v) {
    char awhere[128];
    snprintf(awhere, sizeof(awhere), "%s.args[%zu]", where, i);
    if (parse_arg(v, awhere, &out->cmps[i], err) < 0)
      return -1;
    for (size_t k = 0; k < i; k++)
      out->same_index = out->same_index || out->cmps[k].arg == out->cmps[i].arg;
  }
  out->names = calloc(json_array_size(names) + 1, sizeof(*out->names));
  if (!out->names)
    return shim_fail_errno(err, ENOMEM, "%s", where);
  json_array_foreach (names, i, v) {
    const char *name = json_string_value(v);
    if (!name)
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.names[%zu]: must be a string", where, i);
    out->names[out->n_names++] = name;
  }
  return 0;
}

/* linux.seccomp.architectures or .flags: known names, as indexes into the table. */
static int parse_names(json_t *seccomp, const char *key, const char *what, const char *(*name_at)(size_t k), size_t n_known,
                       size_t **out, size_t *n, struct shim_err *err)
{
  json_t *arr, *v;
  size_t i;
  if (field_array(seccomp, key, "linux.seccomp", &arr, err) < 0)
    return -1;
  *out = calloc(json_array_size(arr) + 1, sizeof(**out));
  if (!*out)
    return shim_fail_errno(err, ENOMEM, "linux.seccomp.%s", key);
  json_array_foreach (arr, i, v) {
    const char *name = json_string_value(v);
    size_t k;
    if (!name)
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.seccomp.%s[%zu]: must be a string", key, i);
    for (k = 0; k < n_known && strcmp(name_at(k), name) != 0; k++)
      ;
    if (k == n_known)
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.seccomp.%s[%zu]: unknown %s \"%s\"", key, i, what, name);
    (*out)[(*n)++] = k;
  }
  return 0;
}

static const char *arch_name(size_t k)
{
  return arches[k].name;
}

static const char *flag_name(size_t k)
{
  return flags[k].name;
}

int seccomp_parse(json_t *seccomp, struct seccomp_filter **out, struct shim_err *err)
{
  __attribute__((cleanup(cleanup_filterp))) struct seccomp_filter *f = NULL;
  json_t *arr;

  *out = NULL;
  if (!seccomp)
    return 0;
  if (!json_is_object(seccomp))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.seccomp: must be an object");
  f = calloc(1, sizeof(*f));
  if (!f)
    return shim_fail_errno(err, ENOMEM, "linux.seccomp");
  if (parse_action(seccomp, "defaultAction", "defaultErrnoRet", "linux.seccomp", &f->def_action, err) < 0)
    return -1;
  {
    const char *path;
    if (field_string(seccomp, "listenerPath", "linux.seccomp", &path, err) < 0)
      return -1;
    if (path && *path)
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.seccomp.listenerPath: seccomp notify is not supported");
  }
  if (parse_names(seccomp, "architectures", "architecture", arch_name, COUNT(arches), &f->arches, &f->n_arches, err) < 0
      || parse_names(seccomp, "flags", "flag", flag_name, COUNT(flags), &f->flags, &f->n_flags, err) < 0)
    return -1;
  if (field_array(seccomp, "syscalls", "linux.seccomp", &arr, err) < 0
      || field_objects(arr, "linux.seccomp.syscalls", sizeof(*f->rules), (void **) &f->rules, &f->n_rules, parse_rule, NULL, err) < 0)
    return -1;
  f->key = json_dumps(seccomp, JSON_COMPACT | JSON_SORT_KEYS);
  if (!f->key)
    return shim_fail_errno(err, ENOMEM, "linux.seccomp");
  *out = f;
  f = NULL;
  return 0;
}

static int add_rule(scmp_filter_ctx ctx, uint32_t action, int nr, unsigned n, const struct scmp_arg_cmp *cmps, size_t idx,
                    const char *name, struct shim_err *err)
{
  int r = seccomp_rule_add_array(ctx, action, nr, n, cmps);
  if (r < 0)
    return shim_fail_errno(err, -r, "linux.seccomp.syscalls[%zu]: add the rule for \"%s\"", idx, name);
  return 0;
}

/* A rule's syscalls into the filter. */
static int add_rules(scmp_filter_ctx ctx, const struct seccomp_rule *rule, size_t idx, uint32_t def_action, struct shim_err *err)
{
  /* libseccomp refuses a rule whose action is the default one: it would change
   * nothing anyway. */
  if (rule->action == def_action)
    return 0;
  for (size_t i = 0; i < rule->n_names; i++) {
    /* Profiles list syscalls of newer kernels than this libseccomp knows. */
    int nr = seccomp_syscall_resolve_name(rule->names[i]);
    if (nr == __NR_SCMP_ERROR)
      continue;
    if (rule->same_index) {
      /* libseccomp takes one comparison per argument in a rule: several on
       * one argument become one rule each (so they match as OR, not AND). */
      for (size_t k = 0; k < rule->n_args; k++)
        if (add_rule(ctx, rule->action, nr, 1, &rule->cmps[k], idx, rule->names[i], err) < 0)
          return -1;
    } else if (add_rule(ctx, rule->action, nr, (unsigned) rule->n_args, rule->cmps, idx, rule->names[i], err) < 0) {
      return -1;
    }
  }
  return 0;
}

static void cleanup_ctxp(scmp_filter_ctx *ctx)
{
  if (*ctx)
    seccomp_release(*ctx);
}

/* libseccomp's BPF for the filter (what seccomp_load would load), written to a memfd
 * and read back: the libseccomp here exports to an fd only. */
static int export_program(scmp_filter_ctx ctx, struct seccomp_filter *f, struct shim_err *err)
{
  cleanup_close int fd = memfd_create("skiff-seccomp", MFD_CLOEXEC);
  off_t size;
  int r;
  if (fd < 0)
    return shim_fail_errno(err, errno, "linux.seccomp: memfd for the compiled filter");
  r = seccomp_export_bpf(ctx, fd);
  if (r < 0)
    return shim_fail_errno(err, -r, "linux.seccomp: compile the filter");
  size = lseek(fd, 0, SEEK_END);
  if (size <= 0 || size % sizeof(struct sock_filter) || size / sizeof(struct sock_filter) > BPF_MAXINSNS)
    return shim_fail(err, SHIM_INTERNAL, "linux.seccomp: the compiled filter has %lld bytes", (long long) size);
  f->prog = malloc((size_t) size);
  if (!f->prog)
    return shim_fail_errno(err, ENOMEM, "linux.seccomp");
  if (pread(fd, f->prog, (size_t) size, 0) != size) {
    int e = errno ? errno : EIO;
    free(f->prog);
    f->prog = NULL;
    return shim_fail_errno(err, e, "linux.seccomp: read the compiled filter");
  }
  f->prog_len = (size_t) size / sizeof(struct sock_filter);
  return 0;
}

/* Programs compiled before, by profile: libseccomp takes milliseconds for the
 * default profile, and a pod's containers, and every exec in them, share one. */
#define CACHE_SIZE 4
static struct {
  char *key;
  struct sock_filter *prog;
  size_t len;
  unsigned int load_flags;
} cache[CACHE_SIZE];
static size_t cache_next;
static unsigned long compilations;

unsigned long seccomp_compilations(void)
{
  return compilations;
}

static bool from_cache(struct seccomp_filter *f)
{
  for (size_t i = 0; i < CACHE_SIZE; i++) {
    if (!cache[i].key || strcmp(cache[i].key, f->key) != 0)
      continue;
    f->prog = malloc(cache[i].len * sizeof(*f->prog));
    if (!f->prog)
      return false;
    memcpy(f->prog, cache[i].prog, cache[i].len * sizeof(*f->prog));
    f->prog_len = cache[i].len;
    f->load_flags = cache[i].load_flags;
    return true;
  }
  return false;
}

static void to_cache(const struct seccomp_filter *f)
{
  char *key = strdup(f->key);
  struct sock_filter *prog = malloc(f->prog_len * sizeof(*prog));
  if (!key || !prog) {
    free(key);
    free(prog);
    return;
  }
  memcpy(prog, f->prog, f->prog_len * sizeof(*prog));
  free(cache[cache_next].key);
  free(cache[cache_next].prog);
  cache[cache_next].key = key;
  cache[cache_next].prog = prog;
  cache[cache_next].len = f->prog_len;
  cache[cache_next].load_flags = f->load_flags;
  cache_next = (cache_next + 1) % CACHE_SIZE;
}

int seccomp_compile(struct seccomp_filter *f, struct shim_err *err)
{
  __attribute__((cleanup(cleanup_ctxp))) scmp_filter_ctx ctx = NULL;
  int r;

  if (f->prog || from_cache(f))
    return 0;
  ctx = seccomp_init(f->def_action);
  if (!ctx)
    return shim_fail(err, SHIM_INTERNAL, "linux.seccomp: seccomp_init failed");
  /* Architectures first: libseccomp only puts rules into the architectures it has then. */
  for (size_t i = 0; i < f->n_arches; i++) {
    uint32_t arch = arches[f->arches[i]].arch;
    if (arch == 0)
      continue;
    r = seccomp_arch_add(ctx, arch);
    if (r < 0 && r != -EEXIST) /* EEXIST: the native one, always there */
      return shim_fail_errno(err, -r, "linux.seccomp.architectures[%zu]: add %s", i, arches[f->arches[i]].name);
  }
  /* Set on the context too, so that a flag this kernel lacks fails here as before. */
  f->load_flags = 0;
  for (size_t i = 0; i < f->n_flags; i++) {
    if (flags[f->flags[i]].attr == 0)
      continue;
    r = seccomp_attr_set(ctx, flags[f->flags[i]].attr, 1);
    if (r < 0)
      return shim_fail_errno(err, -r, "linux.seccomp.flags[%zu]: %s", i, flags[f->flags[i]].name);
    f->load_flags |= flags[f->flags[i]].load_flag;
  }
  for (size_t i = 0; i < f->n_rules; i++)
    if (add_rules(ctx, &f->rules[i], i, f->def_action, err) < 0)
      return -1;
  if (export_program(ctx, f, err) < 0)
    return -1;
  compilations++;
  to_cache(f);
  return 0;
}

int seccomp_apply(struct seccomp_filter *f, struct shim_err *err)
{
  struct sock_fprog prog;
  /* no_new_privs is the spec's own choice (process.noNewPrivileges): the caller
   * sets it; as root with CAP_SYS_ADMIN the filter loads without it. */
  if (seccomp_compile(f, err) < 0)
    return -1;
  prog.len = (unsigned short) f->prog_len;
  prog.filter = f->prog;
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, f->load_flags, &prog) == 0)
    return 0;
  if (errno == EACCES || errno == EPERM)
    return shim_fail_errno(err, errno, "linux.seccomp: load the filter (needs CAP_SYS_ADMIN or no_new_privs)");
  return shim_fail_errno(err, errno, "linux.seccomp: load the filter");
}
