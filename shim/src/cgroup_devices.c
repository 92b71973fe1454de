/* cgroup_devices.c: linux.resources.devices: the rules checked and parsed, then
 * enforced as v1 devices.allow/deny lines or, on cgroup2, as a
 * BPF_PROG_TYPE_CGROUP_DEVICE program. */
#include "cgroup_internal.h"

#include <fcntl.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int parse_rule(json_t *v, const char *where, void *item, void *ctx, struct shim_err *err)
{
  struct res_device *r = item;
  const char *type;
  int64_t num[2];
  bool has[2];
  if (field_bool(v, "allow", where, &r->allow, err) < 0 || field_string(v, "type", where, &type, err) < 0
      || field_string(v, "access", where, &r->access, err) < 0)
    return -1;
  if (!field_present(v, "allow"))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.allow: required", where);
  if (type && (strlen(type) != 1 || !strchr("abc", type[0])))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.type: \"%s\" must be \"a\", \"b\" or \"c\"", where, type);
  if (r->access && (!*r->access || strspn(r->access, "rwm") != strlen(r->access)))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.access: \"%s\" must be letters of \"rwm\"", where, r->access);
  for (int k = 0; k < 2; k++) {
    const char *key = k ? "minor" : "major";
    if (field_int64(v, key, where, &has[k], &num[k], err) < 0)
      return -1;
    if (has[k] && (num[k] < -1 || num[k] > INT32_MAX))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.%s: %lld must be -1 (any) or 0..%d", where, key, (long long) num[k],
                       INT32_MAX);
  }
  r->type = type ? type[0] : 'a';
  r->major = has[0] ? num[0] : -1;
  r->minor = has[1] ? num[1] : -1;
  if (!r->access)
    r->access = "rwm";
  return 0;
}

int cg_parse_devices(json_t *devs, struct res_device **out, size_t *n, struct shim_err *err)
{
  return field_objects(devs, "linux.resources.devices", sizeof(**out), (void **) out, n, parse_rule, NULL, err);
}

/* ---- applying: devices ----------------------------------------------------------- */

/* The spec's rules, then the devices every container gets (the OCI default
 * devices, /dev/tty, /dev/console, /dev/ptmx and the pty slaves), as other
 * runtimes allow them whatever the rules say. */
static struct res_device *with_default_devices(const struct res_device *rules, size_t n, size_t *total)
{
  static const struct {
    int major, minor;
  } defaults[] = { { 1, 3 }, { 1, 5 }, { 1, 7 }, { 1, 8 }, { 1, 9 }, { 5, 0 }, { 5, 1 }, { 5, 2 }, { 136, -1 } };
  size_t nd = sizeof(defaults) / sizeof(defaults[0]);
  struct res_device *all = calloc(n + nd, sizeof(*all));
  if (!all)
    return NULL;
  memcpy(all, rules, n * sizeof(*all));
  for (size_t i = 0; i < nd; i++)
    all[n + i] = (struct res_device) { .allow = true, .type = 'c', .major = defaults[i].major, .minor = defaults[i].minor, .access = "rwm" };
  *total = n + nd;
  return all;
}

/* Writes of v1 rules, one rule a write. A new cgroup's (a dozen rules) go through one
 * open file each for devices.allow and devices.deny; an update's through cg_write,
 * which keeps what each write replaced. */
struct rule_writer {
  struct cgroup *cg;
  int fd[2]; /* deny, allow */
};

static void rule_writer_close(struct rule_writer *w)
{
  for (int i = 0; i < 2; i++)
    if (w->fd[i] >= 0)
      close(w->fd[i]);
}

static int write_rule(struct rule_writer *w, bool allow, const char *line, const char *field, struct shim_err *err)
{
  const char *file = allow ? "devices.allow" : "devices.deny";
  const char *dir = dir_for(w->cg, "devices");
  char path[PATH_MAX + 32];
  if (w->cg->journal || !dir)
    return cg_write(w->cg, "devices", file, line, field, err);
  snprintf(path, sizeof(path), "%s/%s", dir, file);
  if (w->fd[allow] < 0 && (w->fd[allow] = open(path, O_WRONLY | O_CLOEXEC)) < 0)
    return shim_fail_errno(err, errno, "%s: open %s", field, path);
  if (write_all(w->fd[allow], line, strlen(line)) < 0)
    return shim_fail_errno(err, errno, "%s: write %s", field, path);
  return 0;
}

/* v1: deny everything, then each rule in order to devices.allow/deny. */
static int apply_devices_v1(struct cgroup *cg, const struct res_device *rules, size_t n, struct shim_err *err)
{
  __attribute__((cleanup(rule_writer_close))) struct rule_writer w = { cg, { -1, -1 } };
  if (write_rule(&w, false, "a", "linux.resources.devices", err) < 0)
    return -1;
  for (size_t i = 0; i < n; i++) {
    struct res_device r = rules[i];
    char majs[24] = "*", mins[24] = "*", field[48], line[96];
    bool full = false;
    snprintf(field, sizeof(field), "linux.resources.devices[%zu]", i);
    if (r.major >= 0)
      snprintf(majs, sizeof(majs), "%lld", (long long) r.major);
    if (r.minor >= 0)
      snprintf(mins, sizeof(mins), "%lld", (long long) r.minor);
    full = strchr(r.access, 'r') && strchr(r.access, 'w') && strchr(r.access, 'm');
    if (r.type == 'a' && r.major < 0 && r.minor < 0 && full) {
      /* "a" resets the default and drops the exceptions: all or nothing. */
      if (write_rule(&w, r.allow, "a", field, err) < 0)
        return -1;
      continue;
    }
    /* v1's "a" takes no numbers or access: spell it as both kinds. */
    for (const char *t = r.type == 'a' ? "cb" : (r.type == 'b' ? "b" : "c"); *t; t++) {
      snprintf(line, sizeof(line), "%c %s:%s %s", *t, majs, mins, r.access);
      if (write_rule(&w, r.allow, line, field, err) < 0)
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
static void build_device_prog(const struct res_device *rules, size_t n, struct prog *p)
{
  enum { R0 = 0, R1, R2, R3, R4, R5, R6 };
  emit(p, BPF_LDX | BPF_MEM | BPF_W, R2, R1, 0, 0); /* access_type: type | access << 16 */
  emit(p, BPF_ALU | BPF_AND | BPF_K, R2, 0, 0, 0xffff);
  emit(p, BPF_LDX | BPF_MEM | BPF_W, R6, R1, 0, 0);
  emit(p, BPF_ALU | BPF_RSH | BPF_K, R6, 0, 0, 16);
  emit(p, BPF_LDX | BPF_MEM | BPF_W, R4, R1, 4, 0);
  emit(p, BPF_LDX | BPF_MEM | BPF_W, R5, R1, 8, 0);
  for (size_t i = n; i-- > 0;) {
    struct res_device r = rules[i];
    size_t skips[8], nskip = 0;
    int32_t acc = 0;
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

static int load_device_prog(const struct res_device *rules, size_t n, struct shim_err *err)
{
  size_t cap = 8 + n * 12;
  cleanup_free struct bpf_insn *insns = calloc(cap, sizeof(*insns));
  struct prog p = { .insns = insns, .cap = cap };
  union bpf_attr attr;
  int fd, e;
  if (!insns)
    return shim_fail_errno(err, ENOMEM, "linux.resources.devices: device filter");
  build_device_prog(rules, n, &p);
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
static int apply_devices_v2(const char *dir, const struct res_device *rules, size_t n, struct shim_err *err)
{
  cleanup_close int prog = -1;
  cleanup_close int dirfd = -1;
  union bpf_attr attr;
  prog = load_device_prog(rules, n, err);
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

int cg_apply_devices(struct cgroup *cg, const struct res_device *devices, size_t n, struct shim_err *err)
{
  cleanup_free struct res_device *rules = NULL;
  size_t total;
  int i = hier_for("devices");
  if (i < 0 || !cg->used[i])
    return shim_fail(err, SHIM_FAILED_PRECONDITION,
                     "linux.resources.devices: this host has neither a v1 devices cgroup nor a cgroup2 hierarchy to filter devices with");
  rules = with_default_devices(devices, n, &total);
  if (!rules)
    return shim_fail_errno(err, ENOMEM, "linux.resources.devices");
  return g_hier[i].v2 ? apply_devices_v2(cg->dirs[i], rules, total, err) : apply_devices_v1(cg, rules, total, err);
}
