/* cgroup.c: the cgroupfs driver for v1, v2 and hybrid hosts (v1 controllers
 * plus controllers enabled on a cgroup2 mount, such as hugetlb here):
 * create, apply and update linux.resources, stats, signal, destroy. */
#include "shim.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/bpf.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#define CG_ROOT "/sys/fs/cgroup"
#define MAX_HIER 16

/* One mounted hierarchy: a v1 hierarchy with its controllers, or cgroup2. */
struct hier {
  char mount[PATH_MAX];
  char controllers[256]; /* v1: "cpu,cpuacct"; v2: space-separated enabled list */
  bool v2;
};

struct cgroup {
  char path[PATH_MAX];           /* relative to each hierarchy root, starts with / */
  char dirs[MAX_HIER][PATH_MAX]; /* per hierarchy */
  bool created[MAX_HIER];        /* the leaf was made by us */
  int bpf_fd;                    /* v2 device filter attached by us */
};

static struct hier g_hier[MAX_HIER];
static size_t g_nhier;
static bool g_detected, g_v2_only;

static int detect(struct shim_err *err)
{
  struct statfs sfs;
  FILE *f;
  char line[4096];
  if (g_detected)
    return 0;
  if (statfs(CG_ROOT, &sfs) < 0)
    return shim_fail_errno(err, errno, "statfs %s", CG_ROOT);
  g_nhier = 0;
  if (sfs.f_type == CGROUP2_SUPER_MAGIC) {
    g_v2_only = true;
    snprintf(g_hier[0].mount, sizeof(g_hier[0].mount), "%s", CG_ROOT);
    g_hier[0].v2 = true;
    g_nhier = 1;
  } else {
    f = fopen("/proc/self/mountinfo", "re");
    if (!f)
      return shim_fail_errno(err, errno, "open /proc/self/mountinfo");
    while (fgets(line, sizeof(line), f) && g_nhier < MAX_HIER) {
      /* ... mountpoint ... - fstype source superopts */
      char *sep = strstr(line, " - "), mnt[PATH_MAX], fstype[64], src[256], opts[1024];
      int field = 0;
      char *tok, *save;
      if (!sep)
        continue;
      if (sscanf(sep + 3, "%63s %255s %1023s", fstype, src, opts) != 3)
        continue;
      for (tok = strtok_r(line, " ", &save); tok && field < 4; tok = strtok_r(NULL, " ", &save))
        field++;
      if (!tok)
        continue;
      snprintf(mnt, sizeof(mnt), "%s", tok);
      if (strncmp(mnt, CG_ROOT "/", strlen(CG_ROOT) + 1) != 0)
        continue;
      if (strcmp(fstype, "cgroup") == 0) {
        struct hier *h = &g_hier[g_nhier];
        size_t clen = 0;
        h->controllers[0] = '\0';
        for (char *o = strtok_r(opts, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
          if (strcmp(o, "rw") == 0 || strcmp(o, "ro") == 0 || strncmp(o, "release_agent", 13) == 0
              || strcmp(o, "clone_children") == 0 || strcmp(o, "noprefix") == 0 || strncmp(o, "xattr", 5) == 0)
            continue;
          clen += (size_t) snprintf(h->controllers + clen, sizeof(h->controllers) - clen, "%s%s", clen ? "," : "", o);
        }
        snprintf(h->mount, sizeof(h->mount), "%s", mnt);
        h->v2 = false;
        g_nhier++;
      } else if (strcmp(fstype, "cgroup2") == 0) {
        struct hier *h = &g_hier[g_nhier];
        char path[PATH_MAX + 32], *text = NULL;
        struct shim_err ignored;
        snprintf(h->mount, sizeof(h->mount), "%s", mnt);
        h->v2 = true;
        snprintf(path, sizeof(path), "%s/cgroup.controllers", mnt);
        if (read_file(path, &text, NULL, 4096, &ignored) == 0) {
          text[strcspn(text, "\n")] = '\0';
          snprintf(h->controllers, sizeof(h->controllers), "%s", text);
          free(text);
        }
        g_nhier++;
      }
    }
    fclose(f);
  }
  g_detected = true;
  return 0;
}

bool cgroup_is_v2_only(void)
{
  struct shim_err ignored;
  detect(&ignored);
  return g_v2_only;
}

/* Does hierarchy h carry controller c? (v1 comma list or v2 space list) */
static bool hier_has(const struct hier *h, const char *c)
{
  const char *p = h->controllers;
  size_t n = strlen(c);
  while ((p = strstr(p, c))) {
    bool start = p == h->controllers || p[-1] == ',' || p[-1] == ' ';
    bool end = p[n] == '\0' || p[n] == ',' || p[n] == ' ';
    if (start && end)
      return true;
    p += n;
  }
  return false;
}

/* The hierarchy that controls c: a v1 one first, else a v2 one that has it. */
static int hier_for(const char *c)
{
  for (size_t i = 0; i < g_nhier; i++)
    if (!g_hier[i].v2 && hier_has(&g_hier[i], c))
      return (int) i;
  for (size_t i = 0; i < g_nhier; i++)
    if (g_hier[i].v2 && (hier_has(&g_hier[i], c) || g_v2_only))
      return (int) i;
  return -1;
}

static const char *dir_for(struct cgroup *cg, const char *controller)
{
  int i = hier_for(controller);
  return i < 0 ? NULL : cg->dirs[i];
}

static int cg_write(struct cgroup *cg, const char *controller, const char *file, const char *value, const char *field,
                    struct shim_err *err)
{
  char path[PATH_MAX + 64];
  const char *dir = dir_for(cg, controller);
  if (!dir)
    return shim_fail(err, SHIM_FAILED_PRECONDITION, "%s: the %s cgroup controller is not available on this host", field,
                     controller);
  snprintf(path, sizeof(path), "%s/%s", dir, file);
  if (write_file(path, value, strlen(value), 0, err) < 0) {
    shim_err_prefix(err, "%s", field);
    return -1;
  }
  return 0;
}

static int cg_writef(struct cgroup *cg, const char *controller, const char *file, const char *field, struct shim_err *err,
                     const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static int cg_writef(struct cgroup *cg, const char *controller, const char *file, const char *field, struct shim_err *err,
                     const char *fmt, ...)
{
  char buf[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  return cg_write(cg, controller, file, buf, field, err);
}

static bool is_v2(struct cgroup *cg, const char *controller)
{
  int i = hier_for(controller);
  return i >= 0 && g_hier[i].v2;
}

/* ---- validation ------------------------------------------------------------ */

static int check_cpuset(const char *s, const char *field, struct shim_err *err)
{
  if (!s)
    return 0;
  for (const char *p = s; *p; p++)
    if (!strchr("0123456789,-", *p))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: \"%s\" is not a CPU/node list like \"0-3,5\"", field, s);
  return 0;
}

int cgroup_validate_resources(json_t *res, struct shim_err *err)
{
  json_t *cpu, *mem, *pids, *hp, *devs, *unified, *bio, *v;
  int64_t i64;
  uint64_t u64;
  bool has;
  size_t i;
  const char *s, *key;
  if (!res)
    return 0;
  if (!json_is_object(res))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.resources: must be an object");
  if (spec_get_object(res, "cpu", "linux.resources", &cpu, err) < 0 || spec_get_object(res, "memory", "linux.resources", &mem, err) < 0
      || spec_get_object(res, "pids", "linux.resources", &pids, err) < 0
      || spec_get_array(res, "hugepageLimits", "linux.resources", &hp, err) < 0
      || spec_get_array(res, "devices", "linux.resources", &devs, err) < 0
      || spec_get_object(res, "unified", "linux.resources", &unified, err) < 0
      || spec_get_object(res, "blockIO", "linux.resources", &bio, err) < 0)
    return -1;
  if (cpu) {
    if (spec_get_uint64(cpu, "shares", "linux.resources.cpu", &has, &u64, err) < 0)
      return -1;
    if (has && u64 != 0 && (u64 < 2 || u64 > 262144))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.resources.cpu.shares: %llu not in 2..262144", (unsigned long long) u64);
    if (spec_get_int64(cpu, "quota", "linux.resources.cpu", &has, &i64, err) < 0)
      return -1;
    if (has && i64 != -1 && i64 != 0 && i64 < 1000)
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.resources.cpu.quota: %lld must be -1 or at least 1000", (long long) i64);
    if (spec_get_uint64(cpu, "period", "linux.resources.cpu", &has, &u64, err) < 0)
      return -1;
    if (has && u64 != 0 && (u64 < 1000 || u64 > 1000000))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.resources.cpu.period: %llu not in 1000..1000000", (unsigned long long) u64);
    if (spec_get_string(cpu, "cpus", "linux.resources.cpu", &s, err) < 0 || check_cpuset(s, "linux.resources.cpu.cpus", err) < 0
        || spec_get_string(cpu, "mems", "linux.resources.cpu", &s, err) < 0 || check_cpuset(s, "linux.resources.cpu.mems", err) < 0)
      return -1;
  }
  if (mem) {
    static const char *const keys[] = { "limit", "reservation", "swap" };
    for (size_t k = 0; k < 3; k++) {
      if (spec_get_int64(mem, keys[k], "linux.resources.memory", &has, &i64, err) < 0)
        return -1;
      if (has && i64 < -1)
        return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.resources.memory.%s: %lld must be -1 or positive", keys[k], (long long) i64);
    }
    if (spec_get_uint64(mem, "swappiness", "linux.resources.memory", &has, &u64, err) < 0)
      return -1;
    if (has && u64 > 100)
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.resources.memory.swappiness: %llu over 100", (unsigned long long) u64);
  }
  if (pids && spec_get_int64(pids, "limit", "linux.resources.pids", NULL, &i64, err) < 0)
    return -1;
  json_array_foreach (hp, i, v) {
    if (!json_is_string(json_object_get(v, "pageSize")) || !json_is_integer(json_object_get(v, "limit")))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.resources.hugepageLimits[%zu]: pageSize and limit required", i);
    s = json_string_value(json_object_get(v, "pageSize"));
    if (strspn(s, "0123456789KMGB") != strlen(s))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.resources.hugepageLimits[%zu].pageSize: bad \"%s\"", i, s);
  }
  json_array_foreach (devs, i, v) {
    const char *type, *access;
    bool allow;
    char where[64];
    snprintf(where, sizeof(where), "linux.resources.devices[%zu]", i);
    if (!json_is_object(v))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: must be an object", where);
    if (spec_get_bool(v, "allow", where, &allow, err) < 0 || spec_get_string(v, "type", where, &type, err) < 0
        || spec_get_string(v, "access", where, &access, err) < 0)
      return -1;
    if (type && (strlen(type) != 1 || !strchr("abc", type[0])))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.type: must be a, b or c", where);
    if (access && (strspn(access, "rwm") != strlen(access) || !*access))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.access: must be letters of \"rwm\"", where);
    if (spec_get_int64(v, "major", where, &has, &i64, err) < 0 || (has && i64 < -1))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.major: bad value", where);
    if (spec_get_int64(v, "minor", where, &has, &i64, err) < 0 || (has && i64 < -1))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.minor: bad value", where);
  }
  json_object_foreach (unified, key, v) {
    if (!json_is_string(v))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.resources.unified[\"%s\"]: value must be a string", key);
    if (!*key || strchr(key, '/') || strstr(key, "..") || key[0] == '.')
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.resources.unified: bad file name \"%s\"", key);
  }
  if (bio && spec_get_uint64(bio, "weight", "linux.resources.blockIO", NULL, &u64, err) < 0)
    return -1;
  return 0;
}

/* ---- applying -------------------------------------------------------------- */

static int apply_cpu(struct cgroup *cg, json_t *cpu, struct shim_err *err)
{
  json_t *shares = json_object_get(cpu, "shares"), *quota = json_object_get(cpu, "quota"),
         *period = json_object_get(cpu, "period");
  const char *cpus = json_string_value(json_object_get(cpu, "cpus")), *mems = json_string_value(json_object_get(cpu, "mems"));
  if (!cpu)
    return 0;
  if (is_v2(cg, "cpu")) {
    if (json_integer_value(shares) > 0) {
      uint64_t s = (uint64_t) json_integer_value(shares);
      uint64_t w = 1 + ((s - 2) * 9999) / 262142;
      if (cg_writef(cg, "cpu", "cpu.weight", "linux.resources.cpu.shares", err, "%llu", (unsigned long long) w) < 0)
        return -1;
    }
    if (quota || period) {
      int64_t q = quota ? json_integer_value(quota) : -1;
      uint64_t p = json_integer_value(period) > 0 ? (uint64_t) json_integer_value(period) : 100000;
      if (q > 0) {
        if (cg_writef(cg, "cpu", "cpu.max", "linux.resources.cpu.quota", err, "%lld %llu", (long long) q, (unsigned long long) p) < 0)
          return -1;
      } else if (cg_writef(cg, "cpu", "cpu.max", "linux.resources.cpu.quota", err, "max %llu", (unsigned long long) p) < 0) {
        return -1;
      }
    }
  } else {
    if (json_integer_value(shares) > 0
        && cg_writef(cg, "cpu", "cpu.shares", "linux.resources.cpu.shares", err, "%lld", (long long) json_integer_value(shares)) < 0)
      return -1;
    /* Period first: a quota above the old period's limits may be refused. */
    if (json_integer_value(period) > 0
        && cg_writef(cg, "cpu", "cpu.cfs_period_us", "linux.resources.cpu.period", err, "%lld", (long long) json_integer_value(period)) < 0)
      return -1;
    if (quota && json_integer_value(quota) != 0
        && cg_writef(cg, "cpu", "cpu.cfs_quota_us", "linux.resources.cpu.quota", err, "%lld", (long long) json_integer_value(quota)) < 0)
      return -1;
  }
  if (cpus && *cpus && cg_write(cg, "cpuset", is_v2(cg, "cpuset") ? "cpuset.cpus" : "cpuset.cpus", cpus, "linux.resources.cpu.cpus", err) < 0)
    return -1;
  if (mems && *mems && cg_write(cg, "cpuset", "cpuset.mems", mems, "linux.resources.cpu.mems", err) < 0)
    return -1;
  return 0;
}

static void fmt_limit(char *buf, size_t len, json_t *v, bool v2)
{
  int64_t x = json_integer_value(v);
  if (json_is_real(v) || x < 0)
    snprintf(buf, len, "%s", v2 ? "max" : "-1");
  else
    snprintf(buf, len, "%lld", (long long) x);
}

static int apply_memory(struct cgroup *cg, json_t *mem, struct shim_err *err)
{
  json_t *limit = json_object_get(mem, "limit"), *res = json_object_get(mem, "reservation"), *swap = json_object_get(mem, "swap");
  json_t *swappiness = json_object_get(mem, "swappiness");
  char buf[64];
  if (!mem)
    return 0;
  if (is_v2(cg, "memory")) {
    if (limit) {
      fmt_limit(buf, sizeof(buf), limit, true);
      if (cg_write(cg, "memory", "memory.max", buf, "linux.resources.memory.limit", err) < 0)
        return -1;
    }
    if (res) {
      fmt_limit(buf, sizeof(buf), res, true);
      if (cg_write(cg, "memory", "memory.low", buf, "linux.resources.memory.reservation", err) < 0)
        return -1;
    }
    if (swap) {
      /* OCI swap is memory+swap; v2 counts swap alone. */
      int64_t s = json_integer_value(swap), l = json_integer_value(limit);
      if (s < 0 || json_is_real(swap))
        snprintf(buf, sizeof(buf), "max");
      else
        snprintf(buf, sizeof(buf), "%lld", (long long) (s > l && l > 0 ? s - l : 0));
      if (cg_write(cg, "memory", "memory.swap.max", buf, "linux.resources.memory.swap", err) < 0 && err->errnum != ENOENT)
        return -1;
    }
  } else {
    const char *dir = dir_for(cg, "memory");
    char path[PATH_MAX + 64];
    bool has_memsw;
    if (!dir)
      return shim_fail(err, SHIM_FAILED_PRECONDITION, "linux.resources.memory: no memory cgroup on this host");
    snprintf(path, sizeof(path), "%s/memory.memsw.limit_in_bytes", dir);
    has_memsw = access(path, F_OK) == 0;
    /* memsw must stay >= limit: raise it first when growing, after when shrinking. */
    if (limit) {
      fmt_limit(buf, sizeof(buf), limit, false);
      if (has_memsw && swap)
        cg_write(cg, "memory", "memory.memsw.limit_in_bytes", "-1", "linux.resources.memory.swap", err);
      if (cg_write(cg, "memory", "memory.limit_in_bytes", buf, "linux.resources.memory.limit", err) < 0)
        return -1;
    }
    if (swap && has_memsw) {
      fmt_limit(buf, sizeof(buf), swap, false);
      if (cg_write(cg, "memory", "memory.memsw.limit_in_bytes", buf, "linux.resources.memory.swap", err) < 0)
        return -1;
    }
    if (res) {
      fmt_limit(buf, sizeof(buf), res, false);
      if (cg_write(cg, "memory", "memory.soft_limit_in_bytes", buf, "linux.resources.memory.reservation", err) < 0)
        return -1;
    }
    if (json_is_integer(swappiness)
        && cg_writef(cg, "memory", "memory.swappiness", "linux.resources.memory.swappiness", err, "%lld", (long long) json_integer_value(swappiness)) < 0)
      return -1;
    if (json_is_true(json_object_get(mem, "disableOOMKiller"))
        && cg_write(cg, "memory", "memory.oom_control", "1", "linux.resources.memory.disableOOMKiller", err) < 0)
      return -1;
  }
  return 0;
}

static int apply_pids(struct cgroup *cg, json_t *pids, struct shim_err *err)
{
  json_t *limit = json_object_get(pids, "limit");
  char buf[32];
  if (!limit)
    return 0;
  if (json_integer_value(limit) <= 0)
    snprintf(buf, sizeof(buf), "max");
  else
    snprintf(buf, sizeof(buf), "%lld", (long long) json_integer_value(limit));
  return cg_write(cg, "pids", "pids.max", buf, "linux.resources.pids.limit", err);
}

static int apply_hugetlb(struct cgroup *cg, json_t *limits, struct shim_err *err)
{
  size_t i;
  json_t *v;
  json_array_foreach (limits, i, v) {
    const char *size = json_string_value(json_object_get(v, "pageSize"));
    char file[64], field[64];
    int64_t limit = json_integer_value(json_object_get(v, "limit"));
    snprintf(field, sizeof(field), "linux.resources.hugepageLimits[%zu]", i);
    if (is_v2(cg, "hugetlb")) {
      char s[16];
      /* v2 names sizes "2MB"; v1 "2MB" too, with .limit_in_bytes. */
      snprintf(s, sizeof(s), "%s", size);
      snprintf(file, sizeof(file), "hugetlb.%s.max", s);
    } else {
      snprintf(file, sizeof(file), "hugetlb.%s.limit_in_bytes", size);
    }
    if (cg_writef(cg, "hugetlb", file, field, err, "%lld", (long long) limit) < 0)
      return -1;
  }
  return 0;
}

/* v1 device rules: deny all, then each rule in order. */
static int apply_devices_v1(struct cgroup *cg, json_t *devs, struct shim_err *err)
{
  size_t i;
  json_t *d;
  if (!devs)
    return 0;
  if (cg_write(cg, "devices", "devices.deny", "a", "linux.resources.devices", err) < 0)
    return -1;
  json_array_foreach (devs, i, d) {
    const char *type = json_string_value(json_object_get(d, "type"));
    const char *access = json_string_value(json_object_get(d, "access"));
    json_t *maj = json_object_get(d, "major"), *min = json_object_get(d, "minor");
    char rule[96], majs[24], mins[24], field[48];
    if (maj && json_integer_value(maj) >= 0)
      snprintf(majs, sizeof(majs), "%lld", (long long) json_integer_value(maj));
    else
      snprintf(majs, sizeof(majs), "*");
    if (min && json_integer_value(min) >= 0)
      snprintf(mins, sizeof(mins), "%lld", (long long) json_integer_value(min));
    else
      snprintf(mins, sizeof(mins), "*");
    if (!type || type[0] == 'a')
      snprintf(rule, sizeof(rule), "a");
    else
      snprintf(rule, sizeof(rule), "%c %s:%s %s", type[0], majs, mins, access ? access : "rwm");
    snprintf(field, sizeof(field), "linux.resources.devices[%zu]", i);
    if (cg_write(cg, "devices", json_is_true(json_object_get(d, "allow")) ? "devices.allow" : "devices.deny", rule, field, err) < 0)
      return -1;
  }
  return 0;
}

/* v2 device rules: a BPF_PROG_TYPE_CGROUP_DEVICE program. The rules are
 * checked from last to first, the first match decides (so the last matching
 * rule in spec order wins, as on v1); no match denies. */
static int apply_devices_v2(struct cgroup *cg, json_t *devs, struct shim_err *err)
{
  size_t n = json_array_size(devs), cap = 8 + n * 12, k = 0;
  struct bpf_insn *prog;
  union bpf_attr attr;
  int fd, dirfd;
  const char *dir = dir_for(cg, "devices");

  if (!devs)
    return 0;
  if (!dir)
    dir = cg->dirs[0];
  prog = calloc(cap, sizeof(*prog));
  if (!prog)
    return shim_fail_errno(err, ENOMEM, "device filter");
#define INSN(c, d, s, o, i) (prog[k++] = (struct bpf_insn) { .code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i) })
  /* r2 = type (low 16 bits of access_type), r3 = access (high 16), r4 = major, r5 = minor */
  INSN(BPF_LDX | BPF_MEM | BPF_W, 2, 1, 0, 0);
  INSN(BPF_ALU | BPF_AND | BPF_K, 2, 0, 0, 0xffff);
  INSN(BPF_LDX | BPF_MEM | BPF_W, 3, 1, 0, 0);
  INSN(BPF_ALU | BPF_RSH | BPF_K, 3, 0, 0, 16);
  INSN(BPF_LDX | BPF_MEM | BPF_W, 4, 1, 4, 0);
  INSN(BPF_LDX | BPF_MEM | BPF_W, 5, 1, 8, 0);
  for (size_t r = n; r-- > 0;) {
    json_t *d = json_array_get(devs, r);
    const char *type = json_string_value(json_object_get(d, "type"));
    const char *access = json_string_value(json_object_get(d, "access"));
    json_t *maj = json_object_get(d, "major"), *min = json_object_get(d, "minor");
    int acc = 0, btype = 0, allow = json_is_true(json_object_get(d, "allow"));
    size_t start = k;
    int skip_idx[4], nskip = 0;
    for (const char *a = access ? access : "rwm"; *a; a++)
      acc |= *a == 'm' ? BPF_DEVCG_ACC_MKNOD : *a == 'r' ? BPF_DEVCG_ACC_READ : BPF_DEVCG_ACC_WRITE;
    if (type && type[0] == 'b')
      btype = BPF_DEVCG_DEV_BLOCK;
    else if (type && type[0] == 'c')
      btype = BPF_DEVCG_DEV_CHAR;
    (void) start;
    if (btype) {
      skip_idx[nskip++] = (int) k;
      INSN(BPF_JMP | BPF_JNE | BPF_K, 2, 0, 0, btype);
    }
    /* access requested must be a subset of acc: (r3 & ~acc) != 0 -> skip */
    INSN(BPF_MOV | BPF_ALU64 | BPF_X, 0, 3, 0, 0);
    INSN(BPF_ALU | BPF_AND | BPF_K, 0, 0, 0, ~acc);
    skip_idx[nskip++] = (int) k;
    INSN(BPF_JMP | BPF_JNE | BPF_K, 0, 0, 0, 0);
    if (maj && json_integer_value(maj) >= 0) {
      skip_idx[nskip++] = (int) k;
      INSN(BPF_JMP | BPF_JNE | BPF_K, 4, 0, 0, (int) json_integer_value(maj));
    }
    if (min && json_integer_value(min) >= 0) {
      skip_idx[nskip++] = (int) k;
      INSN(BPF_JMP | BPF_JNE | BPF_K, 5, 0, 0, (int) json_integer_value(min));
    }
    INSN(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, allow);
    INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
    for (int s = 0; s < nskip; s++)
      prog[skip_idx[s]].off = (short) (k - (size_t) skip_idx[s] - 1);
  }
  INSN(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 0);
  INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
#undef INSN
  /* Without a verifier log first: a log buffer too small for the verifier's
   * output fails the load with ENOSPC even when the program is fine. On a
   * real failure, load again with a log to say why. */
  memset(&attr, 0, sizeof(attr));
  attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
  attr.insns = (uint64_t) (uintptr_t) prog;
  attr.insn_cnt = (uint32_t) k;
  attr.license = (uint64_t) (uintptr_t) "GPL";
  fd = (int) syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof(attr));
  if (fd < 0) {
    int e = errno;
    char *log = calloc(1, 65536);
    if (log) {
      attr.log_buf = (uint64_t) (uintptr_t) log;
      attr.log_size = 65535;
      attr.log_level = 1;
      syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof(attr));
      /* The verifier's complaint is its last line. */
      size_t n = strlen(log);
      while (n > 0 && log[n - 1] == '\n')
        log[--n] = '\0';
      char *last = strrchr(log, '\n');
      shim_fail_errno(err, e, "linux.resources.devices: load the device filter (%s)", last ? last + 1 : log);
      free(log);
    } else {
      shim_fail_errno(err, e, "linux.resources.devices: load the device filter");
    }
    free(prog);
    return -1;
  }
  free(prog);
  dirfd = open(dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
  if (dirfd < 0) {
    close(fd);
    return shim_fail_errno(err, errno, "linux.resources.devices: open %s", dir);
  }
  memset(&attr, 0, sizeof(attr));
  attr.target_fd = (uint32_t) dirfd;
  attr.attach_bpf_fd = (uint32_t) fd;
  attr.attach_type = BPF_CGROUP_DEVICE;
  attr.attach_flags = BPF_F_ALLOW_MULTI;
  if (syscall(SYS_bpf, BPF_PROG_ATTACH, &attr, sizeof(attr)) < 0) {
    int e = errno;
    close(fd);
    close(dirfd);
    return shim_fail_errno(err, e, "linux.resources.devices: attach the device filter to %s", dir);
  }
  close(dirfd);
  if (cg->bpf_fd >= 0)
    close(cg->bpf_fd);
  cg->bpf_fd = fd;
  return 0;
}

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

static int apply_unified(struct cgroup *cg, json_t *unified, struct shim_err *err)
{
  const char *key;
  json_t *v;
  json_object_foreach (unified, key, v) {
    char path[PATH_MAX + 256], field[300];
    int i;
    /* The controller is the file's prefix ("memory.high" -> memory). */
    char controller[64];
    snprintf(controller, sizeof(controller), "%.*s", (int) strcspn(key, "."), key);
    i = hier_for(controller);
    if (i < 0 || !g_hier[i].v2) {
      i = -1;
      for (size_t h = 0; h < g_nhier; h++)
        if (g_hier[h].v2)
          i = (int) h;
    }
    snprintf(field, sizeof(field), "linux.resources.unified[\"%s\"]", key);
    if (i < 0)
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: this host has no cgroup v2 hierarchy", field);
    snprintf(path, sizeof(path), "%s/%s", cg->dirs[i], key);
    if (access(path, F_OK) < 0)
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: no such cgroup v2 file here (controller not enabled on the unified hierarchy)", field);
    if (write_file(path, json_string_value(v), json_string_length(v), 0, err) < 0) {
      shim_err_prefix(err, "%s", field);
      return -1;
    }
  }
  return 0;
}

static int apply(struct cgroup *cg, json_t *res, struct shim_err *err)
{
  json_t *bio;
  if (!res)
    return 0;
  if (apply_cpu(cg, json_object_get(res, "cpu"), err) < 0 || apply_memory(cg, json_object_get(res, "memory"), err) < 0
      || apply_pids(cg, json_object_get(res, "pids"), err) < 0
      || apply_hugetlb(cg, json_object_get(res, "hugepageLimits"), err) < 0)
    return -1;
  if (json_object_get(res, "devices")) {
    json_t *rules = with_default_devices(json_object_get(res, "devices"));
    int r;
    if (!rules)
      return shim_fail_errno(err, ENOMEM, "linux.resources.devices");
    r = hier_for("devices") >= 0 && !is_v2(cg, "devices") ? apply_devices_v1(cg, rules, err) : apply_devices_v2(cg, rules, err);
    json_decref(rules);
    if (r < 0)
      return -1;
  }
  bio = json_object_get(res, "blockIO");
  if (json_integer_value(json_object_get(bio, "weight")) > 0) {
    /* Best effort: the weight knob exists only with some I/O schedulers. */
    struct shim_err ignored;
    int64_t w = json_integer_value(json_object_get(bio, "weight"));
    if (is_v2(cg, "io"))
      cg_writef(cg, "io", "io.weight", "blockIO", &ignored, "default %lld", (long long) w);
    else
      cg_writef(cg, "blkio", "blkio.weight", "blockIO", &ignored, "%lld", (long long) w);
  }
  return apply_unified(cg, json_object_get(res, "unified"), err);
}

/* ---- creating ---------------------------------------------------------------- */

/* v1 cpuset children start empty: copy cpus/mems down each new level. */
static int init_cpuset_level(const char *dir, struct shim_err *err)
{
  static const char *const files[] = { "cpuset.cpus", "cpuset.mems" };
  for (size_t f = 0; f < 2; f++) {
    char path[PATH_MAX + 32], parent[PATH_MAX + 32], *val = NULL, *cur = NULL;
    snprintf(path, sizeof(path), "%s/%s", dir, files[f]);
    if (read_file(path, &cur, NULL, 4096, err) < 0)
      return -1;
    if (cur[0] != '\n' && cur[0] != '\0') {
      free(cur);
      continue;
    }
    free(cur);
    snprintf(parent, sizeof(parent), "%s/../%s", dir, files[f]);
    if (read_file(parent, &val, NULL, 4096, err) < 0)
      return -1;
    if (write_file(path, val, strlen(val), 0, err) < 0) {
      free(val);
      return -1;
    }
    free(val);
  }
  return 0;
}

static int enable_v2_controllers(const char *mount, const char *rel, const char *controllers, struct shim_err *err)
{
  /* Each ancestor of the leaf must delegate the controllers to its children. */
  char dir[PATH_MAX], want[512];
  size_t len = 0;
  const char *p = controllers;
  want[0] = '\0';
  while (*p) {
    size_t n = strcspn(p, " \n");
    if (n > 0)
      len += (size_t) snprintf(want + len, sizeof(want) - len, "%s+%.*s", len ? " " : "", (int) n, p);
    p += n;
    while (*p == ' ' || *p == '\n')
      p++;
  }
  if (!len)
    return 0;
  snprintf(dir, sizeof(dir), "%s", mount);
  for (const char *s = rel; *s;) {
    char path[PATH_MAX + 32];
    const char *next = strchr(s + 1, '/');
    struct shim_err ignored;
    snprintf(path, sizeof(path), "%s/cgroup.subtree_control", dir);
    /* Best effort per controller: a level with processes cannot delegate. */
    if (write_file(path, want, len, 0, &ignored) < 0) {
      char one[64];
      for (const char *q = want; *q;) {
        size_t n = strcspn(q, " ");
        snprintf(one, sizeof(one), "%.*s", (int) n, q);
        write_file(path, one, strlen(one), 0, &ignored);
        q += n;
        while (*q == ' ')
          q++;
      }
    }
    if (!next)
      break;
    snprintf(dir + strlen(dir), sizeof(dir) - strlen(dir), "%.*s", (int) (next - s), s);
    s = next;
  }
  (void) err;
  return 0;
}

static int cgroup_alloc(const char *cgroups_path, struct cgroup **out, struct shim_err *err)
{
  struct cgroup *cg;
  char rel[PATH_MAX];
  if (detect(err) < 0)
    return -1;
  if (!cgroups_path || !*cgroups_path)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.cgroupsPath: empty");
  if (strstr(cgroups_path, ".."))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.cgroupsPath: \"..\" not allowed in \"%s\"", cgroups_path);
  if (strchr(cgroups_path, ':'))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.cgroupsPath: \"%s\" is a systemd path; skiff-shim uses the cgroupfs driver", cgroups_path);
  snprintf(rel, sizeof(rel), "%s%s", cgroups_path[0] == '/' ? "" : "/", cgroups_path);
  while (strlen(rel) > 1 && rel[strlen(rel) - 1] == '/')
    rel[strlen(rel) - 1] = '\0';
  if (strcmp(rel, "/") == 0)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.cgroupsPath: the root cgroup cannot be a container's");
  cg = calloc(1, sizeof(*cg));
  if (!cg)
    return shim_fail_errno(err, ENOMEM, "cgroup");
  cg->bpf_fd = -1;
  snprintf(cg->path, sizeof(cg->path), "%s", rel);
  for (size_t i = 0; i < g_nhier; i++)
    snprintf(cg->dirs[i], sizeof(cg->dirs[i]), "%s%s", g_hier[i].mount, rel);
  *out = cg;
  return 0;
}

int cgroup_create(const char *cgroups_path, json_t *resources, struct cgroup **out, struct shim_err *err)
{
  struct cgroup *cg;
  if (cgroup_alloc(cgroups_path, &cg, err) < 0)
    return -1;
  for (size_t i = 0; i < g_nhier; i++) {
    const struct hier *h = &g_hier[i];
    struct stat st;
    bool existed = stat(cg->dirs[i], &st) == 0;
    if (!h->v2 && hier_has(h, "cpuset")) {
      /* Make each level, initialising cpuset as we go. */
      char dir[PATH_MAX];
      snprintf(dir, sizeof(dir), "%s", h->mount);
      for (const char *s = cg->path; *s;) {
        const char *next = strchr(s + 1, '/');
        snprintf(dir + strlen(dir), sizeof(dir) - strlen(dir), "%.*s", (int) (next ? next - s : (long) strlen(s)), s);
        if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
          shim_fail_errno(err, errno, "linux.cgroupsPath: mkdir %s", dir);
          goto fail;
        }
        if (init_cpuset_level(dir, err) < 0)
          goto fail;
        if (!next)
          break;
        s = next;
      }
    } else {
      if (h->v2 && !g_v2_only && !h->controllers[0])
        continue; /* an empty cgroup2 mount on a v1 host controls nothing */
      if (mkdir_p(cg->dirs[i], 0755, err) < 0) {
        shim_err_prefix(err, "linux.cgroupsPath");
        goto fail;
      }
      if (h->v2) {
        char parent_rel[PATH_MAX];
        snprintf(parent_rel, sizeof(parent_rel), "%s", cg->path);
        enable_v2_controllers(h->mount, parent_rel, h->controllers, err);
      }
    }
    cg->created[i] = !existed;
  }
  if (apply(cg, resources, err) < 0)
    goto fail;
  *out = cg;
  return 0;
fail:
  {
    struct shim_err ignored;
    cgroup_destroy(cg, &ignored);
    cgroup_free(cg);
  }
  return -1;
}

int cgroup_open(const char *cgroups_path, struct cgroup **out, struct shim_err *err)
{
  struct cgroup *cg;
  struct stat st;
  if (cgroup_alloc(cgroups_path, &cg, err) < 0)
    return -1;
  if (stat(cg->dirs[0], &st) < 0) {
    int e = errno;
    cgroup_free(cg);
    return shim_fail_errno(err, e, "cgroup %s", cgroups_path);
  }
  *out = cg;
  return 0;
}

int cgroup_add_pid(struct cgroup *cg, pid_t pid, struct shim_err *err)
{
  char buf[32];
  snprintf(buf, sizeof(buf), "%d", (int) pid);
  for (size_t i = 0; i < g_nhier; i++) {
    char path[PATH_MAX + 32];
    struct stat st;
    if (stat(cg->dirs[i], &st) < 0)
      continue; /* hierarchies we skipped (an empty cgroup2 mount) */
    snprintf(path, sizeof(path), "%s/cgroup.procs", cg->dirs[i]);
    if (write_file(path, buf, strlen(buf), 0, err) < 0)
      return -1;
  }
  return 0;
}

int cgroup_update(struct cgroup *cg, json_t *resources, struct shim_err *err)
{
  return apply(cg, resources, err);
}

/* ---- reading ----------------------------------------------------------------- */

static bool read_u64(struct cgroup *cg, const char *controller, const char *file, uint64_t *out)
{
  char path[PATH_MAX + 64], *text = NULL;
  struct shim_err ignored;
  const char *dir = dir_for(cg, controller);
  if (!dir)
    return false;
  snprintf(path, sizeof(path), "%s/%s", dir, file);
  if (read_file(path, &text, NULL, 4096, &ignored) < 0)
    return false;
  if (strncmp(text, "max", 3) == 0) {
    free(text);
    *out = UINT64_MAX;
    return true;
  }
  *out = strtoull(text, NULL, 10);
  free(text);
  return true;
}

/* Value of "key N" in a flat-keyed file (memory.stat, cpu.stat, memory.events). */
static bool read_key(struct cgroup *cg, const char *controller, const char *file, const char *key, uint64_t *out)
{
  char path[PATH_MAX + 64], *text = NULL;
  struct shim_err ignored;
  const char *dir = dir_for(cg, controller);
  size_t klen = strlen(key);
  bool found = false;
  if (!dir)
    return false;
  snprintf(path, sizeof(path), "%s/%s", dir, file);
  if (read_file(path, &text, NULL, 1 << 16, &ignored) < 0)
    return false;
  for (char *line = text; line && *line;) {
    if (strncmp(line, key, klen) == 0 && line[klen] == ' ') {
      *out = strtoull(line + klen + 1, NULL, 10);
      found = true;
      break;
    }
    line = strchr(line, '\n');
    if (line)
      line++;
  }
  free(text);
  return found;
}

long cgroup_oom_kills(struct cgroup *cg)
{
  uint64_t v = 0;
  if (!cg)
    return 0;
  if (is_v2(cg, "memory"))
    read_key(cg, "memory", "memory.events", "oom_kill", &v);
  else
    read_key(cg, "memory", "memory.oom_control", "oom_kill", &v);
  return (long) v;
}

static json_t *limit_json(uint64_t v, bool ok)
{
  /* v1 reports "unlimited" as a huge page-aligned number. */
  if (!ok || v == UINT64_MAX || v >= (1ULL << 62))
    return json_null();
  return json_integer((json_int_t) v);
}

int cgroup_stats(struct cgroup *cg, json_t **out, struct shim_err *err)
{
  uint64_t usage = 0, user = 0, sys = 0, mem = 0, inactive = 0, rss = 0, pgfault = 0, pgmaj = 0, limit = 0, pids = 0, pids_max = 0;
  bool has_limit, has_pids_max;
  if (is_v2(cg, "cpu") || is_v2(cg, "cpuacct")) {
    read_key(cg, "cpu", "cpu.stat", "usage_usec", &usage);
    read_key(cg, "cpu", "cpu.stat", "user_usec", &user);
    read_key(cg, "cpu", "cpu.stat", "system_usec", &sys);
    usage *= 1000;
    user *= 1000;
    sys *= 1000;
  } else {
    long hz = sysconf(_SC_CLK_TCK);
    read_u64(cg, "cpuacct", "cpuacct.usage", &usage);
    read_key(cg, "cpuacct", "cpuacct.stat", "user", &user);
    read_key(cg, "cpuacct", "cpuacct.stat", "system", &sys);
    user = user * (1000000000ULL / (uint64_t) (hz > 0 ? hz : 100));
    sys = sys * (1000000000ULL / (uint64_t) (hz > 0 ? hz : 100));
  }
  if (is_v2(cg, "memory")) {
    read_u64(cg, "memory", "memory.current", &mem);
    read_key(cg, "memory", "memory.stat", "inactive_file", &inactive);
    read_key(cg, "memory", "memory.stat", "anon", &rss);
    read_key(cg, "memory", "memory.stat", "pgfault", &pgfault);
    read_key(cg, "memory", "memory.stat", "pgmajfault", &pgmaj);
    has_limit = read_u64(cg, "memory", "memory.max", &limit);
  } else {
    read_u64(cg, "memory", "memory.usage_in_bytes", &mem);
    read_key(cg, "memory", "memory.stat", "total_inactive_file", &inactive);
    read_key(cg, "memory", "memory.stat", "total_rss", &rss);
    read_key(cg, "memory", "memory.stat", "total_pgfault", &pgfault);
    read_key(cg, "memory", "memory.stat", "total_pgmajfault", &pgmaj);
    has_limit = read_u64(cg, "memory", "memory.limit_in_bytes", &limit);
  }
  read_u64(cg, "pids", "pids.current", &pids);
  has_pids_max = read_u64(cg, "pids", "pids.max", &pids_max);
  *out = json_pack("{s:I,s:{s:I,s:I,s:I},s:{s:I,s:I,s:o,s:I,s:I,s:I},s:{s:I,s:o}}", "timestamp", (json_int_t) now_ns(), "cpu",
                   "usageNs", (json_int_t) usage, "userNs", (json_int_t) user, "systemNs", (json_int_t) sys, "memory",
                   "usageBytes", (json_int_t) mem, "workingSetBytes", (json_int_t) (mem > inactive ? mem - inactive : 0),
                   "limitBytes", limit_json(limit, has_limit), "rssBytes", (json_int_t) rss, "pageFaults", (json_int_t) pgfault,
                   "majorPageFaults", (json_int_t) pgmaj, "pids", "current", (json_int_t) pids, "limit",
                   limit_json(pids_max, has_pids_max));
  if (!*out)
    return shim_fail(err, SHIM_INTERNAL, "encode stats");
  return 0;
}

/* ---- processes ------------------------------------------------------------------ */

static const char *procs_dir(struct cgroup *cg)
{
  static const char *const prefer[] = { "pids", "memory", "cpu", "devices", "freezer" };
  for (size_t i = 0; i < sizeof(prefer) / sizeof(prefer[0]); i++) {
    const char *d = dir_for(cg, prefer[i]);
    struct stat st;
    if (d && stat(d, &st) == 0)
      return d;
  }
  return cg->dirs[0];
}

int cgroup_pids(struct cgroup *cg, pid_t **pids_out, size_t *n_out, struct shim_err *err)
{
  char path[PATH_MAX + 32], *text = NULL;
  size_t n = 0, cap = 16;
  pid_t *pids;
  snprintf(path, sizeof(path), "%s/cgroup.procs", procs_dir(cg));
  if (read_file(path, &text, NULL, 1 << 22, err) < 0)
    return -1;
  pids = malloc(cap * sizeof(pid_t));
  if (!pids) {
    free(text);
    return shim_fail_errno(err, ENOMEM, "cgroup pids");
  }
  for (char *p = text; *p;) {
    char *end;
    long v = strtol(p, &end, 10);
    if (end == p)
      break;
    if (n == cap) {
      pid_t *np = realloc(pids, (cap *= 2) * sizeof(pid_t));
      if (!np) {
        free(pids);
        free(text);
        return shim_fail_errno(err, ENOMEM, "cgroup pids");
      }
      pids = np;
    }
    pids[n++] = (pid_t) v;
    p = end;
    while (*p == '\n')
      p++;
  }
  free(text);
  *pids_out = pids;
  *n_out = n;
  return 0;
}

int cgroup_signal_all(struct cgroup *cg, int sig, struct shim_err *err)
{
  pid_t *pids = NULL;
  size_t n = 0;
  if (cgroup_pids(cg, &pids, &n, err) < 0)
    return err->errnum == ENOENT ? 0 : -1;
  for (size_t i = 0; i < n; i++)
    kill(pids[i], sig);
  free(pids);
  return 0;
}

static bool freeze(struct cgroup *cg, bool on)
{
  struct shim_err ignored;
  if (g_v2_only) {
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/cgroup.freeze", cg->dirs[0]);
    return write_file(path, on ? "1" : "0", 1, 0, &ignored) == 0;
  }
  if (!dir_for(cg, "freezer"))
    return false;
  return cg_write(cg, "freezer", "freezer.state", on ? "FROZEN" : "THAWED", "freezer", &ignored) == 0;
}

int cgroup_destroy(struct cgroup *cg, struct shim_err *err)
{
  struct timespec pause = { 0, 2 * 1000 * 1000 };
  pid_t *pids = NULL;
  size_t n = 0;
  int tries;

  /* Freeze so nothing forks while we kill, then kill, then thaw. */
  if (cgroup_pids(cg, &pids, &n, err) == 0 && n > 0) {
    bool frozen = freeze(cg, true);
    free(pids);
    pids = NULL;
    cgroup_signal_all(cg, SIGKILL, err);
    if (frozen)
      freeze(cg, false);
  }
  free(pids);
  for (tries = 0; tries < 2500; tries++) { /* ~5 s */
    bool left = false;
    for (size_t i = 0; i < g_nhier; i++) {
      if (rmdir(cg->dirs[i]) < 0 && errno != ENOENT) {
        if (errno == EBUSY) {
          left = true;
          continue;
        }
        return shim_fail_errno(err, errno, "remove cgroup %s", cg->dirs[i]);
      }
    }
    if (!left)
      break;
    cgroup_signal_all(cg, SIGKILL, err);
    nanosleep(&pause, NULL);
  }
  if (tries == 2500)
    return shim_fail(err, SHIM_INTERNAL, "cgroup %s still has processes after SIGKILL", cg->path);
  if (cg->bpf_fd >= 0) {
    close(cg->bpf_fd);
    cg->bpf_fd = -1;
  }
  return 0;
}

const char *cgroup_dir(struct cgroup *cg, const char *controller)
{
  if (!controller || !*controller) {
    for (size_t i = 0; i < g_nhier; i++)
      if (g_hier[i].v2)
        return cg->dirs[i];
    return NULL;
  }
  return dir_for(cg, controller);
}

int cgroup_foreach_hierarchy(struct cgroup *cg, int (*fn)(void *ctx, const char *name, const char *host_dir), void *ctx,
                             struct shim_err *err)
{
  for (size_t i = 0; i < g_nhier; i++) {
    const char *name = strrchr(g_hier[i].mount, '/') + 1;
    struct stat st;
    if (stat(cg->dirs[i], &st) < 0)
      continue;
    if (fn(ctx, name, cg->dirs[i]) < 0)
      return -1;
  }
  (void) err;
  return 0;
}

void cgroup_free(struct cgroup *cg)
{
  if (!cg)
    return;
  if (cg->bpf_fd >= 0)
    close(cg->bpf_fd);
  free(cg);
}
