/* cgroup_devices.c: linux.resources.devices: the rules checked, then enforced as v1
 * devices.allow/deny lines or, on cgroup2, as a BPF_PROG_TYPE_CGROUP_DEVICE program. */
#include "cgroup_internal.h"

#include <fcntl.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int cg_validate_devices(json_t *devs, struct shim_err *err)
{
  size_t i;
  json_t *v;
  json_array_foreach (devs, i, v) {
    const char *type, *access;
    bool allow;
    int64_t num;
    bool has;
    char where[64];
    snprintf(where, sizeof(where), "linux.resources.devices[%zu]", i);
    if (!json_is_object(v))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: must be an object", where);
    if (spec_get_bool(v, "allow", where, &allow, err) < 0 || spec_get_string(v, "type", where, &type, err) < 0
        || spec_get_string(v, "access", where, &access, err) < 0)
      return -1;
    if (!spec_has(v, "allow"))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.allow: required", where);
    if (type && (strlen(type) != 1 || !strchr("abc", type[0])))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.type: \"%s\" must be \"a\", \"b\" or \"c\"", where, type);
    if (access && (!*access || strspn(access, "rwm") != strlen(access)))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.access: \"%s\" must be letters of \"rwm\"", where, access);
    for (int k = 0; k < 2; k++) {
      const char *key = k ? "minor" : "major";
      if (spec_get_int64(v, key, where, &has, &num, err) < 0)
        return -1;
      if (has && (num < -1 || num > INT32_MAX))
        return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.%s: %lld must be -1 (any) or 0..%d", where, key, (long long) num,
                         INT32_MAX);
    }
  }
  return 0;
}

/* ---- applying: devices ----------------------------------------------------------- */

/* The spec's rules, then the devices every container gets (the OCI default
 * devices, /dev/tty, /dev/console, /dev/ptmx and the pty slaves), as other
 * runtimes allow them whatever the rules say. */
static json_t *with_default_devices(json_t *rules)
{
  static const struct {
    int major, minor;
  } defaults[] = { { 1, 3 }, { 1, 5 }, { 1, 7 }, { 1, 8 }, { 1, 9 }, { 5, 0 }, { 5, 1 }, { 5, 2 }, { 136, -1 } };
  json_t *all = json_copy(rules);
  if (!all)
    return NULL;
  for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
    json_array_append_new(all, json_pack("{s:b,s:s,s:i,s:i,s:s}", "allow", 1, "type", "c", "major", defaults[i].major,
                                         "minor", defaults[i].minor, "access", "rwm"));
  return all;
}

struct dev_rule {
  bool allow;
  char type;     /* 'a', 'b' or 'c' */
  int64_t major; /* -1: any */
  int64_t minor;
  const char *access;
};

static void dev_rule(json_t *d, struct dev_rule *r)
{
  const char *type = json_string_value(json_object_get(d, "type"));
  json_t *maj = json_object_get(d, "major"), *min = json_object_get(d, "minor");
  r->allow = json_is_true(json_object_get(d, "allow"));
  r->type = type && *type ? type[0] : 'a';
  r->major = json_is_integer(maj) ? (int64_t) json_integer_value(maj) : -1;
  r->minor = json_is_integer(min) ? (int64_t) json_integer_value(min) : -1;
  r->access = json_string_value(json_object_get(d, "access"));
  if (!r->access || !*r->access)
    r->access = "rwm";
}

/* v1: deny everything, then each rule in order to devices.allow/deny. */
static int apply_devices_v1(struct cgroup *cg, json_t *rules, struct shim_err *err)
{
  size_t i;
  json_t *d;
  if (cg_write(cg, "devices", "devices.deny", "a", "linux.resources.devices", err) < 0)
    return -1;
  json_array_foreach (rules, i, d) {
    struct dev_rule r;
    char majs[24] = "*", mins[24] = "*", field[48], line[96];
    const char *file;
    bool full = false;
    dev_rule(d, &r);
    file = r.allow ? "devices.allow" : "devices.deny";
    snprintf(field, sizeof(field), "linux.resources.devices[%zu]", i);
    if (r.major >= 0)
      snprintf(majs, sizeof(majs), "%lld", (long long) r.major);
    if (r.minor >= 0)
      snprintf(mins, sizeof(mins), "%lld", (long long) r.minor);
    full = strchr(r.access, 'r') && strchr(r.access, 'w') && strchr(r.access, 'm');
    if (r.type == 'a' && r.major < 0 && r.minor < 0 && full) {
      /* "a" resets the default and drops the exceptions: all or nothing. */
      if (cg_write(cg, "devices", file, "a", field, err) < 0)
        return -1;
      continue;
    }
    /* v1's "a" takes no numbers or access: spell it as both kinds. */
    for (const char *t = r.type == 'a' ? "cb" : (r.type == 'b' ? "b" : "c"); *t; t++) {
      snprintf(line, sizeof(line), "%c %s:%s %s", *t, majs, mins, r.access);
      if (cg_write(cg, "devices", file, line, field, err) < 0)
        return -1;
    }
  }
  return 0;
}

static long sys_bpf(int cmd, union bpf_attr *attr)
{
  return syscall(SYS_bpf, cmd, attr, sizeof(*attr));
}

struct prog {
  struct bpf_insn *insns;
  size_t n, cap;
};

static void emit(struct prog *p, uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
  if (p->n < p->cap)
    p->insns[p->n] = (struct bpf_insn) { .code = code, .dst_reg = dst, .src_reg = src, .off = off, .imm = imm };
  p->n++;
}

/* The device filter program. Registers: r2 device type, r4 major, r5 minor,
 * r6 the requested access bits not yet decided. Rules are visited from the
 * last to the first, so for each access bit the LAST matching rule in spec
 * order decides it (as writing them one after another does on v1): an
 * allow rule settles its bits, a deny rule matching any undecided bit
 * refuses. When every requested bit is allowed the access is allowed; bits
 * no rule matched are denied (default deny). */
static void build_device_prog(json_t *rules, struct prog *p)
{
  enum { R0 = 0, R1, R2, R3, R4, R5, R6 };
  size_t n = json_array_size(rules);
  emit(p, BPF_LDX | BPF_MEM | BPF_W, R2, R1, 0, 0); /* access_type: type | access << 16 */
  emit(p, BPF_ALU | BPF_AND | BPF_K, R2, 0, 0, 0xffff);
  emit(p, BPF_LDX | BPF_MEM | BPF_W, R6, R1, 0, 0);
  emit(p, BPF_ALU | BPF_RSH | BPF_K, R6, 0, 0, 16);
  emit(p, BPF_LDX | BPF_MEM | BPF_W, R4, R1, 4, 0);
  emit(p, BPF_LDX | BPF_MEM | BPF_W, R5, R1, 8, 0);
  for (size_t i = n; i-- > 0;) {
    struct dev_rule r;
    size_t skips[8], nskip = 0;
    int32_t acc = 0;
    dev_rule(json_array_get(rules, i), &r);
    for (const char *a = r.access; *a; a++)
      acc |= *a == 'r' ? BPF_DEVCG_ACC_READ : *a == 'w' ? BPF_DEVCG_ACC_WRITE : BPF_DEVCG_ACC_MKNOD;
    if (r.type != 'a') {
      skips[nskip++] = p->n;
      emit(p, BPF_JMP | BPF_JNE | BPF_K, R2, 0, 0, r.type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR);
    }
    if (r.major >= 0) {
      skips[nskip++] = p->n;
      emit(p, BPF_JMP | BPF_JNE | BPF_K, R4, 0, 0, (int32_t) r.major);
    }
    if (r.minor >= 0) {
      skips[nskip++] = p->n;
      emit(p, BPF_JMP | BPF_JNE | BPF_K, R5, 0, 0, (int32_t) r.minor);
    }
    if (r.allow) {
      emit(p, BPF_ALU64 | BPF_AND | BPF_K, R6, 0, 0, ~acc);
      skips[nskip++] = p->n;
      emit(p, BPF_JMP | BPF_JNE | BPF_K, R6, 0, 0, 0); /* bits left: earlier rules decide them */
      emit(p, BPF_ALU64 | BPF_MOV | BPF_K, R0, 0, 0, 1);
    } else {
      emit(p, BPF_ALU64 | BPF_MOV | BPF_X, R0, R6, 0, 0);
      emit(p, BPF_ALU64 | BPF_AND | BPF_K, R0, 0, 0, acc);
      skips[nskip++] = p->n;
      emit(p, BPF_JMP | BPF_JEQ | BPF_K, R0, 0, 0, 0);
      emit(p, BPF_ALU64 | BPF_MOV | BPF_K, R0, 0, 0, 0);
    }
    emit(p, BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
    for (size_t s = 0; s < nskip && p->n <= p->cap; s++)
      p->insns[skips[s]].off = (int16_t) (p->n - skips[s] - 1);
  }
  emit(p, BPF_ALU64 | BPF_MOV | BPF_K, R0, 0, 0, 0);
  emit(p, BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
}

static int load_device_prog(json_t *rules, struct shim_err *err)
{
  size_t cap = 8 + json_array_size(rules) * 12;
  cleanup_free struct bpf_insn *insns = calloc(cap, sizeof(*insns));
  struct prog p = { .insns = insns, .cap = cap };
  union bpf_attr attr;
  int fd, e;
  if (!insns)
    return shim_fail_errno(err, ENOMEM, "linux.resources.devices: device filter");
  build_device_prog(rules, &p);
  if (p.n > p.cap)
    return shim_fail(err, SHIM_INTERNAL, "linux.resources.devices: device filter overflow (%zu > %zu)", p.n, p.cap);
  /* Without a verifier log first: a log buffer too small for the verifier's
   * output fails the load with ENOSPC even when the program is fine. On a
   * real failure, load again with a log to say why. */
  memset(&attr, 0, sizeof(attr));
  attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
  attr.insns = (uint64_t) (uintptr_t) p.insns;
  attr.insn_cnt = (uint32_t) p.n;
  attr.license = (uint64_t) (uintptr_t) "GPL";
  fd = (int) sys_bpf(BPF_PROG_LOAD, &attr);
  if (fd >= 0)
    return fd;
  e = errno;
  {
    cleanup_free char *log = calloc(1, 65536);
    char *last = NULL;
    if (log) {
      size_t n;
      attr.log_buf = (uint64_t) (uintptr_t) log;
      attr.log_size = 65535;
      attr.log_level = 1;
      fd = (int) sys_bpf(BPF_PROG_LOAD, &attr);
      if (fd >= 0)
        close(fd);
      /* The verifier's complaint is its last line. */
      n = strlen(log);
      while (n > 0 && log[n - 1] == '\n')
        log[--n] = '\0';
      last = strrchr(log, '\n');
      last = last ? last + 1 : log;
    }
    if (e == EPERM)
      return shim_fail_errno(err, e, "linux.resources.devices: load the cgroup v2 device filter (needs CAP_BPF and CAP_SYS_ADMIN)");
    return shim_fail_errno(err, e, "linux.resources.devices: load the cgroup v2 device filter (%s)", last && *last ? last : "no log");
  }
}

/* Detach every device program attached directly to the cgroup except the
 * one just attached (BPF_F_ALLOW_MULTI runs them all and a device must pass
 * each, so an old rule set would otherwise still apply after an update). */
static int detach_other_device_progs(int dirfd, int keep_fd, const char *dir, struct shim_err *err)
{
  uint32_t ids[64];
  struct bpf_prog_info info;
  union bpf_attr attr;
  memset(&info, 0, sizeof(info));
  memset(&attr, 0, sizeof(attr));
  attr.info.bpf_fd = (uint32_t) keep_fd;
  attr.info.info_len = sizeof(info);
  attr.info.info = (uint64_t) (uintptr_t) &info;
  if (sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &attr) < 0)
    return shim_fail_errno(err, errno, "linux.resources.devices: read the device filter's id");
  memset(&attr, 0, sizeof(attr));
  attr.query.target_fd = (uint32_t) dirfd;
  attr.query.attach_type = BPF_CGROUP_DEVICE;
  attr.query.prog_ids = (uint64_t) (uintptr_t) ids;
  attr.query.prog_cnt = sizeof(ids) / sizeof(ids[0]);
  if (sys_bpf(BPF_PROG_QUERY, &attr) < 0)
    return shim_fail_errno(err, errno, "linux.resources.devices: list the device filters of %s", dir);
  for (uint32_t k = 0; k < attr.query.prog_cnt && k < sizeof(ids) / sizeof(ids[0]); k++) {
    union bpf_attr a;
    cleanup_close int old = -1;
    if (ids[k] == info.id)
      continue;
    memset(&a, 0, sizeof(a));
    a.prog_id = ids[k];
    old = (int) sys_bpf(BPF_PROG_GET_FD_BY_ID, &a);
    if (old < 0) {
      if (errno == ENOENT)
        continue;
      return shim_fail_errno(err, errno, "linux.resources.devices: open the old device filter %u of %s", ids[k], dir);
    }
    memset(&a, 0, sizeof(a));
    a.target_fd = (uint32_t) dirfd;
    a.attach_bpf_fd = (uint32_t) old;
    a.attach_type = BPF_CGROUP_DEVICE;
    if (sys_bpf(BPF_PROG_DETACH, &a) < 0 && errno != ENOENT)
      return shim_fail_errno(err, errno, "linux.resources.devices: detach the old device filter %u of %s", ids[k], dir);
  }
  return 0;
}

/* v2: a BPF_PROG_TYPE_CGROUP_DEVICE program attached with BPF_F_ALLOW_MULTI,
 * replacing the one an earlier create/update attached. The cgroup holds the
 * program; no fd is kept. */
static int apply_devices_v2(const char *dir, json_t *rules, struct shim_err *err)
{
  cleanup_close int prog = -1;
  cleanup_close int dirfd = -1;
  union bpf_attr attr;
  prog = load_device_prog(rules, err);
  if (prog < 0)
    return -1;
  dirfd = open(dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
  if (dirfd < 0)
    return shim_fail_errno(err, errno, "linux.resources.devices: open %s", dir);
  memset(&attr, 0, sizeof(attr));
  attr.target_fd = (uint32_t) dirfd;
  attr.attach_bpf_fd = (uint32_t) prog;
  attr.attach_type = BPF_CGROUP_DEVICE;
  attr.attach_flags = BPF_F_ALLOW_MULTI;
  if (sys_bpf(BPF_PROG_ATTACH, &attr) < 0)
    return shim_fail_errno(err, errno, "linux.resources.devices: attach the device filter to %s", dir);
  return detach_other_device_progs(dirfd, prog, dir, err);
}

int cg_apply_devices(struct cgroup *cg, json_t *devs, struct shim_err *err)
{
  cleanup_json json_t *rules = NULL;
  int i = hier_for("devices");
  if (!devs)
    return 0;
  if (i < 0 || !cg->used[i])
    return shim_fail(err, SHIM_FAILED_PRECONDITION,
                     "linux.resources.devices: this host has neither a v1 devices cgroup nor a cgroup2 hierarchy to filter devices with");
  rules = with_default_devices(devs);
  if (!rules)
    return shim_fail_errno(err, ENOMEM, "linux.resources.devices");
  return g_hier[i].v2 ? apply_devices_v2(cg->dirs[i], rules, err) : apply_devices_v1(cg, rules, err);
}
