/* cgroup.c: the cgroupfs driver for v1, v2 and hybrid hosts (v1 controllers
 * plus controllers enabled on a cgroup2 mount, such as hugetlb here):
 * create, apply and update linux.resources, stats, signal, destroy. */
#include "shim.h"

#include <ctype.h>
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
#define DESTROY_WAIT_MS 5000
#define RMDIR_BUSY_MS 1000
#define MAX_DEPTH 32

/* One mounted hierarchy: a v1 hierarchy with its controllers, or cgroup2. */
struct hier {
  char mount[PATH_MAX];
  char controllers[256]; /* v1: mount options naming controllers, "cpu,cpuacct" or
                            "name=systemd"; v2: cgroup.controllers of the mount */
  bool v2;
};

struct cgroup {
  char path[PATH_MAX];           /* relative to each hierarchy root, starts with / */
  char dirs[MAX_HIER][PATH_MAX]; /* per hierarchy */
  bool used[MAX_HIER];           /* the cgroup lives in this hierarchy */
  size_t created_from[MAX_HIER]; /* length of the shallowest dir cgroup_create made, 0 if none */
  struct journal *journal;       /* set while cgroup_update runs: what each write replaced */
};

/* The files an update wrote, each with what it held before the first write,
 * so that an update the kernel refuses half-way can be put back. */
struct journal_entry {
  char *path;
  char *old;
};
struct journal {
  struct journal_entry *e;
  size_t n, cap;
};

static struct hier g_hier[MAX_HIER];
static size_t g_nhier;
static bool g_detected, g_v2_only;

static void sleep_ms(long ms)
{
  struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
    ;
}

static int64_t mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool is_dir(const char *path)
{
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool exists(const char *path)
{
  return access(path, F_OK) == 0;
}

/* Is c one of the tokens of list (separated by commas, spaces or newlines)? */
static bool list_has(const char *list, const char *c)
{
  size_t n = strlen(c);
  for (const char *p = list; *p;) {
    size_t len = strcspn(p, ", \n");
    if (len == n && strncmp(p, c, n) == 0)
      return true;
    p += len;
    p += strspn(p, ", \n");
  }
  return false;
}

/* ---- detection ------------------------------------------------------------- */

/* Undo mountinfo's octal escapes ("\040" for a space) in place. */
static void unescape(char *s)
{
  char *w = s;
  for (char *r = s; *r;) {
    if (r[0] == '\\' && r[1] >= '0' && r[1] <= '7' && r[2] >= '0' && r[2] <= '7' && r[3] >= '0' && r[3] <= '7') {
      *w++ = (char) (((r[1] - '0') << 6) | ((r[2] - '0') << 3) | (r[3] - '0'));
      r += 4;
    } else {
      *w++ = *r++;
    }
  }
  *w = '\0';
}

/* A v1 mount option that names a controller: "name=..." or a subsystem the
 * kernel lists in /proc/cgroups (so "noprefix", "xattr" and the like are not
 * taken for controllers). */
static bool is_controller_opt(const char *opt, const char *proc_cgroups)
{
  static const char *const flags[] = { "rw", "ro", "noprefix", "clone_children", "xattr", "cpuset_v2_mode",
                                       "favordynmods", "nofavordynmods" };
  if (strncmp(opt, "name=", 5) == 0)
    return true;
  if (proc_cgroups) {
    size_t n = strlen(opt);
    for (const char *l = proc_cgroups; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
      if (strncmp(l, opt, n) == 0 && (l[n] == '\t' || l[n] == ' '))
        return true;
    return false;
  }
  if (strchr(opt, '='))
    return false;
  for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
    if (strcmp(opt, flags[i]) == 0)
      return false;
  return true;
}

static struct hier *hier_slot(const char *mount)
{
  for (size_t i = 0; i < g_nhier; i++)
    if (strcmp(g_hier[i].mount, mount) == 0)
      return &g_hier[i]; /* mounted over: the later mount is the visible one */
  if (g_nhier == MAX_HIER)
    return NULL;
  memset(&g_hier[g_nhier], 0, sizeof(g_hier[0]));
  return &g_hier[g_nhier++];
}

static void add_v2(const char *mount)
{
  struct hier *h = hier_slot(mount);
  char path[PATH_MAX + 32];
  cleanup_free char *text = NULL;
  struct shim_err ignored;
  if (!h)
    return;
  snprintf(h->mount, sizeof(h->mount), "%s", mount);
  h->v2 = true;
  h->controllers[0] = '\0';
  snprintf(path, sizeof(path), "%s/cgroup.controllers", mount);
  if (read_file(path, &text, NULL, 4096, &ignored) == 0) {
    text[strcspn(text, "\n")] = '\0';
    snprintf(h->controllers, sizeof(h->controllers), "%s", text);
  }
}

static void add_v1(const char *mount, char *opts, const char *proc_cgroups)
{
  char controllers[256];
  size_t clen = 0;
  char *save = NULL;
  struct hier *h;
  controllers[0] = '\0';
  for (char *o = strtok_r(opts, ",", &save); o; o = strtok_r(NULL, ",", &save))
    if (is_controller_opt(o, proc_cgroups) && clen < sizeof(controllers))
      clen += (size_t) snprintf(controllers + clen, sizeof(controllers) - clen, "%s%s", clen ? "," : "", o);
  if (!clen)
    return;
  /* The same hierarchy mounted twice: keep the first. */
  for (size_t i = 0; i < g_nhier; i++)
    if (!g_hier[i].v2 && strcmp(g_hier[i].controllers, controllers) == 0 && strcmp(g_hier[i].mount, mount) != 0)
      return;
  h = hier_slot(mount);
  if (!h)
    return;
  snprintf(h->mount, sizeof(h->mount), "%s", mount);
  snprintf(h->controllers, sizeof(h->controllers), "%s", controllers);
  h->v2 = false;
}

static int detect(struct shim_err *err)
{
  struct statfs sfs;
  if (g_detected)
    return 0;
  if (statfs(CG_ROOT, &sfs) < 0)
    return shim_fail_errno(err, errno, "statfs %s", CG_ROOT);
  g_nhier = 0;
  if (sfs.f_type == CGROUP2_SUPER_MAGIC) {
    g_v2_only = true;
    add_v2(CG_ROOT);
  } else {
    /* v1 or hybrid: every cgroup and cgroup2 mount under /sys/fs/cgroup/. */
    cleanup_free char *proc_cgroups = NULL;
    cleanup_free char *mountinfo = NULL;
    struct shim_err ignored;
    char *save = NULL;
    if (read_file("/proc/cgroups", &proc_cgroups, NULL, 1 << 16, &ignored) < 0)
      proc_cgroups = NULL;
    if (read_file("/proc/self/mountinfo", &mountinfo, NULL, 1 << 24, err) < 0)
      return -1;
    for (char *line = strtok_r(mountinfo, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
      /* id parent maj:min root mountpoint opts [optional...] - fstype source superopts */
      char *sep = strstr(line, " - "), *fields[5], *s2 = NULL, *tail, *fstype, *super;
      size_t nf = 0;
      if (!sep)
        continue;
      *sep = '\0';
      tail = sep + 3;
      for (char *t = strtok_r(line, " ", &s2); t && nf < 5; t = strtok_r(NULL, " ", &s2))
        fields[nf++] = t;
      fstype = strtok_r(tail, " ", &s2);
      if (nf < 5 || !fstype || !strtok_r(NULL, " ", &s2) || !(super = strtok_r(NULL, " ", &s2)))
        continue;
      unescape(fields[4]);
      if (strncmp(fields[4], CG_ROOT "/", strlen(CG_ROOT) + 1) != 0 || strlen(fields[4]) >= PATH_MAX)
        continue;
      if (strcmp(fstype, "cgroup") == 0)
        add_v1(fields[4], super, proc_cgroups);
      else if (strcmp(fstype, "cgroup2") == 0)
        add_v2(fields[4]);
    }
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

/* ---- controller lookup ---------------------------------------------------- */

/* The hierarchy that holds controller c (v1 names: cpuacct, blkio, devices,
 * freezer are mapped to what cgroup2 offers), or -1. */
static int hier_for(const char *c)
{
  const char *v2name = strcmp(c, "cpuacct") == 0 ? "cpu" : strcmp(c, "blkio") == 0 ? "io" : c;
  for (size_t i = 0; i < g_nhier; i++)
    if (!g_hier[i].v2 && list_has(g_hier[i].controllers, c))
      return (int) i;
  for (size_t i = 0; i < g_nhier; i++)
    if (g_hier[i].v2 && list_has(g_hier[i].controllers, v2name))
      return (int) i;
  /* Device filtering (BPF) and freezing are part of cgroup2 itself. */
  if (g_v2_only && (strcmp(c, "devices") == 0 || strcmp(c, "freezer") == 0))
    return 0;
  return -1;
}

static const char *dir_for(struct cgroup *cg, const char *c)
{
  int i = hier_for(c);
  return i >= 0 && cg->used[i] ? cg->dirs[i] : NULL;
}

static bool ctl_v2(const char *c)
{
  int i = hier_for(c);
  return i >= 0 && g_hier[i].v2;
}

/* The cgroup's dir on a cgroup2 hierarchy, or -1. */
static int v2_index(struct cgroup *cg)
{
  for (size_t i = 0; i < g_nhier; i++)
    if (g_hier[i].v2 && cg->used[i])
      return (int) i;
  return -1;
}

/* ---- the update journal ------------------------------------------------------ */

/* What to write back to restore a file: its contents, except memory.oom_control,
 * which reads as "oom_kill_disable N ..." and takes N. */
static char *restorable(const char *path, char *text)
{
  const char *base = strrchr(path, '/') + 1, *key = "oom_kill_disable ";
  char *v;
  if (strcmp(base, "memory.oom_control") != 0)
    return text;
  v = strstr(text, key);
  if (!v) {
    free(text);
    return NULL;
  }
  memmove(text, v + strlen(key), strcspn(v + strlen(key), "\n") + 1);
  text[strcspn(text, "\n")] = '\0';
  return text;
}

/* Remember path's contents before the update's first write to it. A file that
 * cannot be read back (v1 devices.allow/deny are write-only) is not restored. */
static void journal_note(struct journal *j, const char *path)
{
  struct shim_err ignored;
  cleanup_free char *old = NULL;
  for (size_t k = 0; k < j->n; k++)
    if (strcmp(j->e[k].path, path) == 0)
      return;
  if (j->n == j->cap) {
    size_t cap = j->cap ? j->cap * 2 : 16;
    struct journal_entry *e = realloc(j->e, cap * sizeof(*e));
    if (!e)
      return;
    j->e = e;
    j->cap = cap;
  }
  if (read_file(path, &old, NULL, 1 << 16, &ignored) < 0 || !(old = restorable(path, old)))
    return;
  j->e[j->n].path = strdup(path);
  if (!j->e[j->n].path)
    return;
  j->e[j->n].old = old;
  old = NULL;
  j->n++;
}

/* Put every journaled file back, newest first: each step returns to a state the
 * cgroup was in before, so the kernel's own rules (memory <= memory+swap, a
 * realtime runtime within its period) hold at every step. */
static void journal_rollback(struct journal *j)
{
  for (size_t k = j->n; k-- > 0;) {
    struct shim_err err;
    if (write_file(j->e[k].path, j->e[k].old, strlen(j->e[k].old), 0, &err) < 0)
      shim_log("update rollback: %s", err.msg);
  }
}

static void journal_free(struct journal *j)
{
  for (size_t k = 0; k < j->n; k++) {
    free(j->e[k].path);
    free(j->e[k].old);
  }
  free(j->e);
}

/* Every write of a limit goes through here, so that an update can be undone. */
static int cg_write_path(struct cgroup *cg, const char *path, const char *value, size_t len, struct shim_err *err)
{
  if (cg->journal)
    journal_note(cg->journal, path);
  if (write_file(path, value, len, 0, err) == 0)
    return 0;
  /* The kernel will not take this value in the cgroup's present state, e.g. a v1
   * memory limit below the memory in use that it cannot reclaim. */
  if (err->errnum == EBUSY)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "the kernel refused \"%.*s\" for %s in the cgroup's present state (%s)",
                     (int) (len > 64 ? 64 : len), value, path, strerror(EBUSY));
  return -1;
}

static int cg_write(struct cgroup *cg, const char *c, const char *file, const char *value, const char *field, struct shim_err *err)
{
  char path[PATH_MAX + 64];
  int i = hier_for(c);
  if (i < 0 || !cg->used[i])
    return shim_fail(err, SHIM_FAILED_PRECONDITION, "%s: the %s cgroup controller is not available on this host", field, c);
  snprintf(path, sizeof(path), "%s/%s", cg->dirs[i], file);
  if (cg_write_path(cg, path, value, strlen(value), err) == 0)
    return 0;
  if (err->errnum == ENOENT && g_hier[i].v2)
    return shim_fail(err, SHIM_FAILED_PRECONDITION, "%s: %s does not exist: the %s controller is not enabled for this cgroup",
                     field, path, c);
  shim_err_prefix(err, "%s", field);
  return -1;
}

static int cg_writef(struct cgroup *cg, const char *c, const char *file, const char *field, struct shim_err *err,
                     const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static int cg_writef(struct cgroup *cg, const char *c, const char *file, const char *field, struct shim_err *err,
                     const char *fmt, ...)
{
  char buf[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  return cg_write(cg, c, file, buf, field, err);
}

static bool cg_has_file(struct cgroup *cg, const char *c, const char *file)
{
  char path[PATH_MAX + 64];
  const char *dir = dir_for(cg, c);
  if (!dir)
    return false;
  snprintf(path, sizeof(path), "%s/%s", dir, file);
  return exists(path);
}

/* Contents of a controller file, or NULL. */
static char *cg_read(struct cgroup *cg, const char *c, const char *file)
{
  char path[PATH_MAX + 64], *text = NULL;
  struct shim_err ignored;
  const char *dir = dir_for(cg, c);
  if (!dir)
    return NULL;
  snprintf(path, sizeof(path), "%s/%s", dir, file);
  if (read_file(path, &text, NULL, 1 << 20, &ignored) < 0)
    return NULL;
  return text;
}

/* A number file; "max" reads as UINT64_MAX. */
static bool read_u64(struct cgroup *cg, const char *c, const char *file, uint64_t *out)
{
  cleanup_free char *text = cg_read(cg, c, file);
  if (!text)
    return false;
  *out = strncmp(text, "max", 3) == 0 ? UINT64_MAX : strtoull(text, NULL, 10);
  return true;
}

/* Value of "key N" in a flat-keyed file (memory.stat, cpu.stat, memory.events). */
static bool read_key(struct cgroup *cg, const char *c, const char *file, const char *key, uint64_t *out)
{
  cleanup_free char *text = cg_read(cg, c, file);
  size_t klen = strlen(key);
  if (!text)
    return false;
  for (char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
    if (strncmp(line, key, klen) == 0 && line[klen] == ' ') {
      *out = strtoull(line + klen + 1, NULL, 10);
      return true;
    }
  }
  return false;
}

/* ---- validation ------------------------------------------------------------- */

static bool present(json_t *obj, const char *key)
{
  json_t *v = obj ? json_object_get(obj, key) : NULL;
  return v && !json_is_null(v);
}

/* A limit in bytes or a count: an integer >= -1 (-1 is unlimited); a real
 * from 2^63 up (2^64-1 from some generators) also means unlimited. */
static int get_limit(json_t *obj, const char *key, const char *where, bool *has, int64_t *out, struct shim_err *err)
{
  json_t *v = obj ? json_object_get(obj, key) : NULL;
  *has = false;
  *out = 0;
  if (!v || json_is_null(v))
    return 0;
  if (json_is_real(v) && json_real_value(v) >= 9.2e18) {
    *out = -1;
  } else if (!json_is_integer(v)) {
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.%s: must be an integer", where, key);
  } else {
    *out = (int64_t) json_integer_value(v);
    if (*out < -1)
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.%s: %lld is not allowed (-1 means unlimited)", where, key,
                       (long long) *out);
  }
  *has = true;
  return 0;
}

/* A CPU or memory-node list as the kernel takes it: "0-3,5". */
static int check_cpulist(const char *s, const char *field, struct shim_err *err)
{
  const char *p = s;
  if (!s || !*s)
    return 0;
  for (;;) {
    unsigned long a, b;
    char *end;
    if (!isdigit((unsigned char) *p))
      break;
    a = b = strtoul(p, &end, 10);
    p = end;
    if (*p == '-') {
      if (!isdigit((unsigned char) p[1]))
        break;
      b = strtoul(p + 1, &end, 10);
      p = end;
      if (b < a)
        return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: range %lu-%lu in \"%s\" is backwards", field, a, b, s);
    }
    if (*p == '\0')
      return 0;
    if (*p != ',')
      break;
    p++;
  }
  return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: \"%s\" is not a list like \"0-3,5\"", field, s);
}

/* "2MB", "1GB", "64KB". */
static bool page_size_ok(const char *s)
{
  size_t d = strspn(s, "0123456789");
  return d > 0 && s[0] != '0' && (strcmp(s + d, "KB") == 0 || strcmp(s + d, "MB") == 0 || strcmp(s + d, "GB") == 0);
}

/* A file name in the cgroup's own directory, nothing that walks out of it. */
static bool unified_name_ok(const char *key)
{
  return *key && key[0] != '.' && !strchr(key, '/') && !strstr(key, "..") && strchr(key, '.');
}

static int validate_cpu(json_t *cpu, struct shim_err *err)
{
  const char *w = "linux.resources.cpu", *s;
  uint64_t shares, period, rt_period;
  int64_t quota, rt_runtime, idle;
  bool has_shares, has_period, has_rt_period, has_quota, has_rt_runtime, has_idle;
  if (spec_get_uint64(cpu, "shares", w, &has_shares, &shares, err) < 0
      || spec_get_int64(cpu, "quota", w, &has_quota, &quota, err) < 0
      || spec_get_uint64(cpu, "period", w, &has_period, &period, err) < 0
      || spec_get_int64(cpu, "realtimeRuntime", w, &has_rt_runtime, &rt_runtime, err) < 0
      || spec_get_uint64(cpu, "realtimePeriod", w, &has_rt_period, &rt_period, err) < 0
      || spec_get_int64(cpu, "idle", w, &has_idle, &idle, err) < 0)
    return -1;
  /* 0 is "not set" for shares, quota and period, as CRI sends them. */
  if (has_shares && shares != 0 && (shares < 2 || shares > 262144))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.shares: %llu not in 2..262144", w, (unsigned long long) shares);
  if (has_quota && quota != 0 && quota != -1 && quota < 1000)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.quota: %lld must be -1 (no limit) or at least 1000 (microseconds)", w,
                     (long long) quota);
  if (has_period && period != 0 && (period < 1000 || period > 1000000))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.period: %llu not in 1000..1000000 (microseconds)", w,
                     (unsigned long long) period);
  if (has_rt_runtime && rt_runtime < -1)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.realtimeRuntime: %lld is not allowed (-1 means unlimited)", w,
                     (long long) rt_runtime);
  if (has_rt_period && rt_period > INT64_MAX / 2)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.realtimePeriod: %llu too large", w, (unsigned long long) rt_period);
  if (has_rt_runtime && has_rt_period && rt_period > 0 && rt_runtime > (int64_t) rt_period)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.realtimeRuntime: %lld exceeds realtimePeriod %llu", w, (long long) rt_runtime,
                     (unsigned long long) rt_period);
  if (has_idle && idle != 0 && idle != 1)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.idle: %lld must be 0 or 1", w, (long long) idle);
  if (spec_get_string(cpu, "cpus", w, &s, err) < 0 || check_cpulist(s, "linux.resources.cpu.cpus", err) < 0
      || spec_get_string(cpu, "mems", w, &s, err) < 0 || check_cpulist(s, "linux.resources.cpu.mems", err) < 0)
    return -1;
  return 0;
}

static int validate_memory(json_t *mem, struct shim_err *err)
{
  const char *w = "linux.resources.memory";
  int64_t limit, swap, x;
  uint64_t swappiness;
  bool has_limit, has_swap, has, b;
  if (get_limit(mem, "limit", w, &has_limit, &limit, err) < 0 || get_limit(mem, "swap", w, &has_swap, &swap, err) < 0
      || get_limit(mem, "reservation", w, &has, &x, err) < 0 || get_limit(mem, "kernel", w, &has, &x, err) < 0
      || get_limit(mem, "kernelTCP", w, &has, &x, err) < 0
      || spec_get_uint64(mem, "swappiness", w, &has, &swappiness, err) < 0
      || spec_get_bool(mem, "disableOOMKiller", w, &b, err) < 0 || spec_get_bool(mem, "useHierarchy", w, &b, err) < 0
      || spec_get_bool(mem, "checkBeforeUpdate", w, &b, err) < 0)
    return -1;
  /* swappiness 2^64-1 is what some generators send for "not set". */
  if (has && swappiness != UINT64_MAX && swappiness > 100)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.swappiness: %llu over 100", w, (unsigned long long) swappiness);
  if (has_limit && has_swap && limit > 0 && swap > 0 && swap < limit)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.swap: %lld is below limit %lld (swap is the memory+swap total)", w,
                     (long long) swap, (long long) limit);
  return 0;
}

static int validate_devices(json_t *devs, struct shim_err *err)
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
    if (!present(v, "allow"))
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

int cgroup_validate_resources(json_t *res, struct shim_err *err)
{
  const char *w = "linux.resources", *key;
  json_t *cpu, *mem, *pids, *hp, *devs, *unified, *bio, *v;
  int64_t i64;
  uint64_t u64;
  bool has;
  size_t i;
  if (!res || json_is_null(res))
    return 0;
  if (!json_is_object(res))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.resources: must be an object");
  if (spec_get_object(res, "cpu", w, &cpu, err) < 0 || spec_get_object(res, "memory", w, &mem, err) < 0
      || spec_get_object(res, "pids", w, &pids, err) < 0 || spec_get_array(res, "hugepageLimits", w, &hp, err) < 0
      || spec_get_array(res, "devices", w, &devs, err) < 0 || spec_get_object(res, "unified", w, &unified, err) < 0
      || spec_get_object(res, "blockIO", w, &bio, err) < 0)
    return -1;
  if (cpu && validate_cpu(cpu, err) < 0)
    return -1;
  if (mem && validate_memory(mem, err) < 0)
    return -1;
  if (pids && get_limit(pids, "limit", "linux.resources.pids", &has, &i64, err) < 0)
    return -1;
  json_array_foreach (hp, i, v) {
    char where[64];
    const char *size;
    snprintf(where, sizeof(where), "linux.resources.hugepageLimits[%zu]", i);
    if (!json_is_object(v))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: must be an object", where);
    if (spec_get_string(v, "pageSize", where, &size, err) < 0 || get_limit(v, "limit", where, &has, &i64, err) < 0)
      return -1;
    if (!size)
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.pageSize: required", where);
    if (!page_size_ok(size))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.pageSize: \"%s\" is not a size like \"2MB\" or \"1GB\"", where, size);
    if (!has)
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.limit: required", where);
  }
  if (validate_devices(devs, err) < 0)
    return -1;
  if (bio) {
    static const char *const keys[] = { "weight", "leafWeight" };
    for (size_t k = 0; k < 2; k++) {
      if (spec_get_uint64(bio, keys[k], "linux.resources.blockIO", &has, &u64, err) < 0)
        return -1;
      if (has && u64 != 0 && (u64 < 10 || u64 > 1000))
        return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.resources.blockIO.%s: %llu not in 10..1000", keys[k],
                         (unsigned long long) u64);
    }
  }
  json_object_foreach (unified, key, v) {
    if (!unified_name_ok(key))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.resources.unified: \"%s\" is not a cgroup file name", key);
    if (!json_is_string(v))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.resources.unified[\"%s\"]: must be a string", key);
  }
  return 0;
}

/* ---- applying: cpu ---------------------------------------------------------- */

static int apply_rt(struct cgroup *cg, bool has_rt, int64_t rt, bool has_rp, uint64_t rp, struct shim_err *err)
{
  const char *fr = "linux.resources.cpu.realtimeRuntime", *fp = "linux.resources.cpu.realtimePeriod";
  struct shim_err first;
  /* 0 is the kernel's default for a child group: taken as not set. */
  has_rt = has_rt && rt != 0;
  has_rp = has_rp && rp != 0;
  if (!has_rt && !has_rp)
    return 0;
  if (ctl_v2("cpu")) {
    return shim_fail(err, SHIM_FAILED_PRECONDITION, "%s: real-time limits need the cgroup v1 cpu controller (cpu.rt_runtime_us)",
                     has_rt ? fr : fp);
  }
  if (!has_rp)
    return cg_writef(cg, "cpu", "cpu.rt_runtime_us", fr, err, "%lld", (long long) rt);
  if (!has_rt)
    return cg_writef(cg, "cpu", "cpu.rt_period_us", fp, err, "%llu", (unsigned long long) rp);
  /* The runtime must fit in the period at every step: period first unless
   * the new period is below the current runtime. */
  if (cg_writef(cg, "cpu", "cpu.rt_period_us", fp, &first, "%llu", (unsigned long long) rp) == 0)
    return cg_writef(cg, "cpu", "cpu.rt_runtime_us", fr, err, "%lld", (long long) rt);
  if (cg_writef(cg, "cpu", "cpu.rt_runtime_us", fr, err, "%lld", (long long) rt) < 0)
    return -1;
  return cg_writef(cg, "cpu", "cpu.rt_period_us", fp, err, "%llu", (unsigned long long) rp);
}

static int apply_cpu(struct cgroup *cg, json_t *cpu, struct shim_err *err)
{
  const char *w = "linux.resources.cpu", *cpus, *mems;
  uint64_t shares, period, rt_period;
  int64_t quota, rt_runtime, idle;
  bool has_shares, has_quota, has_period, has_rt_runtime, has_rt_period, has_idle, v2 = ctl_v2("cpu");
  if (!cpu)
    return 0;
  if (spec_get_uint64(cpu, "shares", w, &has_shares, &shares, err) < 0 || spec_get_int64(cpu, "quota", w, &has_quota, &quota, err) < 0
      || spec_get_uint64(cpu, "period", w, &has_period, &period, err) < 0
      || spec_get_int64(cpu, "realtimeRuntime", w, &has_rt_runtime, &rt_runtime, err) < 0
      || spec_get_uint64(cpu, "realtimePeriod", w, &has_rt_period, &rt_period, err) < 0
      || spec_get_int64(cpu, "idle", w, &has_idle, &idle, err) < 0 || spec_get_string(cpu, "cpus", w, &cpus, err) < 0
      || spec_get_string(cpu, "mems", w, &mems, err) < 0)
    return -1;
  has_shares = has_shares && shares != 0;
  has_quota = has_quota && quota != 0;
  has_period = has_period && period != 0;
  if (has_shares) {
    if (v2) {
      /* cpu.shares 2..262144 onto cpu.weight 1..10000. */
      uint64_t weight = 1 + ((shares - 2) * 9999) / 262142;
      if (cg_writef(cg, "cpu", "cpu.weight", "linux.resources.cpu.shares", err, "%llu", (unsigned long long) weight) < 0)
        return -1;
    } else if (cg_writef(cg, "cpu", "cpu.shares", "linux.resources.cpu.shares", err, "%llu", (unsigned long long) shares) < 0) {
      return -1;
    }
  }
  if (v2 && (has_quota || has_period)) {
    /* cpu.max is "quota period"; a quota alone keeps the period, a period
     * alone must restate the current quota. */
    char q[32], val[64];
    if (has_quota) {
      snprintf(q, sizeof(q), quota < 0 ? "max" : "%lld", (long long) quota);
    } else {
      cleanup_free char *cur = cg_read(cg, "cpu", "cpu.max");
      snprintf(q, sizeof(q), "%.*s", cur ? (int) strcspn(cur, " \n") : 3, cur ? cur : "max");
    }
    if (has_period)
      snprintf(val, sizeof(val), "%s %llu", q, (unsigned long long) period);
    else
      snprintf(val, sizeof(val), "%s", q);
    if (cg_write(cg, "cpu", "cpu.max", val, has_quota ? "linux.resources.cpu.quota" : "linux.resources.cpu.period", err) < 0)
      return -1;
  } else if (has_quota || has_period) {
    if (has_period
        && cg_writef(cg, "cpu", "cpu.cfs_period_us", "linux.resources.cpu.period", err, "%llu", (unsigned long long) period) < 0)
      return -1;
    if (has_quota && cg_writef(cg, "cpu", "cpu.cfs_quota_us", "linux.resources.cpu.quota", err, "%lld", (long long) quota) < 0)
      return -1;
  }
  if (apply_rt(cg, has_rt_runtime, rt_runtime, has_rt_period, rt_period, err) < 0)
    return -1;
  if (has_idle && cg_writef(cg, "cpu", "cpu.idle", "linux.resources.cpu.idle", err, "%lld", (long long) idle) < 0)
    return -1;
  if (cpus && *cpus && cg_write(cg, "cpuset", "cpuset.cpus", cpus, "linux.resources.cpu.cpus", err) < 0)
    return -1;
  if (mems && *mems && cg_write(cg, "cpuset", "cpuset.mems", mems, "linux.resources.cpu.mems", err) < 0)
    return -1;
  return 0;
}

/* ---- applying: memory --------------------------------------------------------- */

static bool unlimited(uint64_t v)
{
  /* v1 reports "unlimited" as a huge page-aligned number, v2 as "max". */
  return v >= (1ULL << 62);
}

static int apply_memory_v2(struct cgroup *cg, json_t *mem, struct shim_err *err)
{
  const char *w = "linux.resources.memory";
  int64_t limit, res, swap;
  bool has_limit, has_res, has_swap;
  char buf[32];
  if (get_limit(mem, "limit", w, &has_limit, &limit, err) < 0 || get_limit(mem, "reservation", w, &has_res, &res, err) < 0
      || get_limit(mem, "swap", w, &has_swap, &swap, err) < 0)
    return -1;
  has_limit = has_limit && limit != 0;
  has_swap = has_swap && swap != 0;
  if (has_limit) {
    snprintf(buf, sizeof(buf), limit < 0 ? "max" : "%lld", (long long) limit);
    if (cg_write(cg, "memory", "memory.max", buf, "linux.resources.memory.limit", err) < 0)
      return -1;
  }
  if (has_swap) {
    /* OCI swap is memory+swap; memory.swap.max counts swap alone. */
    if (swap < 0) {
      snprintf(buf, sizeof(buf), "max");
    } else {
      uint64_t cur = UINT64_MAX;
      int64_t mem_limit = limit;
      if (!has_limit || limit < 0) {
        if (has_limit || !read_u64(cg, "memory", "memory.max", &cur) || unlimited(cur))
          return shim_fail(err, SHIM_INVALID_ARGUMENT,
                           "linux.resources.memory.swap: %lld needs a memory limit (swap is the memory+swap total)", (long long) swap);
        mem_limit = (int64_t) cur;
      }
      if (swap < mem_limit)
        return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.resources.memory.swap: %lld is below the memory limit %lld", (long long) swap,
                         (long long) mem_limit);
      snprintf(buf, sizeof(buf), "%lld", (long long) (swap - mem_limit));
    }
    if (!cg_has_file(cg, "memory", "memory.swap.max"))
      shim_log("linux.resources.memory.swap: no memory.swap.max (swap accounting is off); not applied");
    else if (cg_write(cg, "memory", "memory.swap.max", buf, "linux.resources.memory.swap", err) < 0)
      return -1;
  }
  if (has_res) {
    snprintf(buf, sizeof(buf), res < 0 ? "max" : "%lld", (long long) res);
    if (cg_write(cg, "memory", "memory.low", buf, "linux.resources.memory.reservation", err) < 0)
      return -1;
  }
  /* swappiness and disableOOMKiller have no cgroup2 counterpart: ignored. */
  return 0;
}

static int apply_memory_v1(struct cgroup *cg, json_t *mem, struct shim_err *err)
{
  const char *w = "linux.resources.memory";
  int64_t limit, res, swap;
  uint64_t swappiness, cur_limit = UINT64_MAX, cur_memsw = UINT64_MAX;
  bool has_limit, has_res, has_swap, has_swappiness, has_memsw = cg_has_file(cg, "memory", "memory.memsw.limit_in_bytes");
  char lbuf[32], sbuf[32], buf[32];
  if (get_limit(mem, "limit", w, &has_limit, &limit, err) < 0 || get_limit(mem, "reservation", w, &has_res, &res, err) < 0
      || get_limit(mem, "swap", w, &has_swap, &swap, err) < 0
      || spec_get_uint64(mem, "swappiness", w, &has_swappiness, &swappiness, err) < 0)
    return -1;
  has_limit = has_limit && limit != 0;
  has_swap = has_swap && swap != 0;
  snprintf(lbuf, sizeof(lbuf), "%lld", (long long) (limit < 0 ? -1 : limit));
  snprintf(sbuf, sizeof(sbuf), "%lld", (long long) (swap < 0 ? -1 : swap));
  if (has_swap && !has_memsw) {
    shim_log("linux.resources.memory.swap: no memory.memsw.limit_in_bytes (swap accounting is off); not applied");
    has_swap = false;
  }
  if (has_limit && has_swap) {
    /* The kernel keeps limit <= memsw at every step: raise memsw first
     * unless the new memsw is below the current limit. */
    bool memsw_first;
    read_u64(cg, "memory", "memory.limit_in_bytes", &cur_limit);
    memsw_first = swap < 0 || (!unlimited(cur_limit) && (uint64_t) swap >= cur_limit);
    if (memsw_first) {
      if (cg_write(cg, "memory", "memory.memsw.limit_in_bytes", sbuf, "linux.resources.memory.swap", err) < 0
          || cg_write(cg, "memory", "memory.limit_in_bytes", lbuf, "linux.resources.memory.limit", err) < 0)
        return -1;
    } else if (cg_write(cg, "memory", "memory.limit_in_bytes", lbuf, "linux.resources.memory.limit", err) < 0
               || cg_write(cg, "memory", "memory.memsw.limit_in_bytes", sbuf, "linux.resources.memory.swap", err) < 0) {
      return -1;
    }
  } else if (has_limit) {
    if (has_memsw && read_u64(cg, "memory", "memory.memsw.limit_in_bytes", &cur_memsw) && !unlimited(cur_memsw)
        && (limit < 0 || (uint64_t) limit > cur_memsw))
      return shim_fail(err, SHIM_INVALID_ARGUMENT,
                       "linux.resources.memory.limit: %s is above the current memory+swap limit %llu; give linux.resources.memory.swap too",
                       lbuf, (unsigned long long) cur_memsw);
    if (cg_write(cg, "memory", "memory.limit_in_bytes", lbuf, "linux.resources.memory.limit", err) < 0)
      return -1;
  } else if (has_swap && cg_write(cg, "memory", "memory.memsw.limit_in_bytes", sbuf, "linux.resources.memory.swap", err) < 0) {
    return -1;
  }
  if (has_res) {
    snprintf(buf, sizeof(buf), "%lld", (long long) (res < 0 ? -1 : res));
    if (cg_write(cg, "memory", "memory.soft_limit_in_bytes", buf, "linux.resources.memory.reservation", err) < 0)
      return -1;
  }
  if (has_swappiness && swappiness <= 100
      && cg_writef(cg, "memory", "memory.swappiness", "linux.resources.memory.swappiness", err, "%llu",
                   (unsigned long long) swappiness) < 0)
    return -1;
  if (present(mem, "disableOOMKiller")
      && cg_write(cg, "memory", "memory.oom_control", json_is_true(json_object_get(mem, "disableOOMKiller")) ? "1" : "0",
                  "linux.resources.memory.disableOOMKiller", err) < 0)
    return -1;
  /* memory.kernel and kernelTCP are ignored (deprecated; gone from recent kernels). */
  return 0;
}

static int apply_memory(struct cgroup *cg, json_t *mem, struct shim_err *err)
{
  static const char *const keys[] = { "limit", "reservation", "swap", "swappiness", "disableOOMKiller" };
  bool any = false;
  if (!mem)
    return 0;
  for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
    any = any || present(mem, keys[k]);
  if (!any)
    return 0;
  if (!dir_for(cg, "memory"))
    return shim_fail(err, SHIM_FAILED_PRECONDITION, "linux.resources.memory: the memory cgroup controller is not available on this host");
  return ctl_v2("memory") ? apply_memory_v2(cg, mem, err) : apply_memory_v1(cg, mem, err);
}

/* ---- applying: pids, hugetlb, blkio ------------------------------------------- */

static int apply_pids(struct cgroup *cg, json_t *pids, struct shim_err *err)
{
  int64_t limit;
  bool has;
  char buf[32];
  if (get_limit(pids, "limit", "linux.resources.pids", &has, &limit, err) < 0)
    return -1;
  if (!has)
    return 0;
  snprintf(buf, sizeof(buf), limit <= 0 ? "max" : "%lld", (long long) limit);
  return cg_write(cg, "pids", "pids.max", buf, "linux.resources.pids.limit", err);
}

static int apply_hugetlb(struct cgroup *cg, json_t *limits, struct shim_err *err)
{
  size_t i;
  json_t *v;
  if (!json_array_size(limits))
    return 0;
  if (!dir_for(cg, "hugetlb"))
    return shim_fail(err, SHIM_FAILED_PRECONDITION, "linux.resources.hugepageLimits: the hugetlb cgroup controller is not available on this host");
  json_array_foreach (limits, i, v) {
    const char *size = json_string_value(json_object_get(v, "pageSize"));
    bool v2 = ctl_v2("hugetlb"), has;
    char file[64], rsvd[64], field[64], value[32];
    int64_t limit;
    struct shim_err ignored;
    snprintf(field, sizeof(field), "linux.resources.hugepageLimits[%zu]", i);
    if (!size || get_limit(v, "limit", field, &has, &limit, err) < 0)
      return size ? -1 : shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.pageSize: required", field);
    snprintf(file, sizeof(file), v2 ? "hugetlb.%s.max" : "hugetlb.%s.limit_in_bytes", size);
    snprintf(rsvd, sizeof(rsvd), v2 ? "hugetlb.%s.rsvd.max" : "hugetlb.%s.rsvd.limit_in_bytes", size);
    if (!cg_has_file(cg, "hugetlb", file))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.pageSize: this host has no %s huge pages (no %s)", field, size, file);
    snprintf(value, sizeof(value), limit < 0 ? (v2 ? "max" : "-1") : "%lld", (long long) limit);
    if (cg_write(cg, "hugetlb", file, value, field, err) < 0)
      return -1;
    /* Limit reservations too, so that mmap fails cleanly instead of a
     * SIGBUS at fault time (best effort: older kernels lack the file). */
    if (cg_has_file(cg, "hugetlb", rsvd))
      cg_write(cg, "hugetlb", rsvd, value, field, &ignored);
  }
  return 0;
}

/* Best effort: the weight knobs exist only with some I/O schedulers. */
static void apply_blkio(struct cgroup *cg, json_t *bio)
{
  uint64_t weight;
  bool has;
  struct shim_err ignored;
  int ok;
  if (spec_get_uint64(bio, "weight", "linux.resources.blockIO", &has, &weight, &ignored) < 0 || !has || weight == 0)
    return;
  if (!dir_for(cg, "blkio")) {
    shim_log("linux.resources.blockIO.weight: no blkio/io cgroup controller here; not applied");
    return;
  }
  if (ctl_v2("blkio")) {
    /* blkio.weight 10..1000 onto io.weight 1..10000; io.bfq.weight keeps the v1 range. */
    uint64_t w2 = 1 + ((weight - 10) * 9999) / 990;
    ok = cg_writef(cg, "io", "io.weight", "", &ignored, "default %llu", (unsigned long long) w2) == 0
         || cg_writef(cg, "io", "io.bfq.weight", "", &ignored, "%llu", (unsigned long long) weight) == 0;
  } else {
    ok = cg_writef(cg, "blkio", "blkio.weight", "", &ignored, "%llu", (unsigned long long) weight) == 0
         || cg_writef(cg, "blkio", "blkio.bfq.weight", "", &ignored, "%llu", (unsigned long long) weight) == 0;
  }
  if (!ok)
    shim_log("linux.resources.blockIO.weight: no weight file for this I/O scheduler; not applied");
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

static int apply_devices(struct cgroup *cg, json_t *devs, struct shim_err *err)
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

/* ---- applying: unified ---------------------------------------------------------- */

static int apply_unified(struct cgroup *cg, json_t *unified, struct shim_err *err)
{
  const char *key;
  json_t *v;
  json_object_foreach (unified, key, v) {
    char path[PATH_MAX + 256], field[300], controller[64];
    int i = -1;
    snprintf(field, sizeof(field), "linux.resources.unified[\"%s\"]", key);
    if (!unified_name_ok(key) || !json_is_string(v))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: not a cgroup file name with a string value", field);
    /* The controller is the file's prefix ("memory.high" -> memory). */
    snprintf(controller, sizeof(controller), "%.*s", (int) strcspn(key, "."), key);
    if (strcmp(controller, "cgroup") != 0) {
      i = hier_for(controller);
      if (i >= 0 && !g_hier[i].v2)
        return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: the %s controller is on cgroup v1 on this host; unified sets cgroup v2 files only",
                         field, controller);
    }
    if (i < 0 || !cg->used[i])
      i = v2_index(cg);
    if (i < 0)
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: this host has no cgroup v2 hierarchy for the container", field);
    snprintf(path, sizeof(path), "%s/%s", cg->dirs[i], key);
    if (!exists(path))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: %s does not exist (no such cgroup v2 file, or its controller is not enabled here)",
                       field, path);
    if (cg_write_path(cg, path, json_string_value(v), json_string_length(v), err) < 0) {
      shim_err_prefix(err, "%s", field);
      return -1;
    }
  }
  return 0;
}

static int apply(struct cgroup *cg, json_t *res, struct shim_err *err)
{
  if (!res || json_is_null(res))
    return 0;
  if (apply_cpu(cg, json_object_get(res, "cpu"), err) < 0 || apply_memory(cg, json_object_get(res, "memory"), err) < 0
      || apply_pids(cg, json_object_get(res, "pids"), err) < 0
      || apply_hugetlb(cg, json_object_get(res, "hugepageLimits"), err) < 0
      || apply_devices(cg, json_object_get(res, "devices"), err) < 0)
    return -1;
  apply_blkio(cg, json_object_get(res, "blockIO"));
  /* Last, so that explicit v2 files win over converted values. */
  return apply_unified(cg, json_object_get(res, "unified"), err);
}

/* ---- creating -------------------------------------------------------------------- */

/* v1 cpuset children start with empty cpus/mems (and cannot hold tasks):
 * copy the parent's values into a level that has none. */
static int init_cpuset_level(const char *dir, struct shim_err *err)
{
  static const char *const files[] = { "cpuset.cpus", "cpuset.mems" };
  for (size_t f = 0; f < 2; f++) {
    char path[PATH_MAX + 32], parent[PATH_MAX + 32];
    cleanup_free char *cur = NULL;
    cleanup_free char *val = NULL;
    snprintf(path, sizeof(path), "%s/%s", dir, files[f]);
    if (read_file(path, &cur, NULL, 4096, err) < 0)
      return -1;
    if (cur[strspn(cur, " \n")] != '\0')
      continue;
    snprintf(parent, sizeof(parent), "%.*s/%s", (int) (strrchr(dir, '/') - dir), dir, files[f]);
    if (read_file(parent, &val, NULL, 4096, err) < 0 || write_file(path, val, strlen(val), 0, err) < 0)
      return -1;
  }
  return 0;
}

/* Let dir's children use the controllers we may need that dir has. Best
 * effort: a controller that cannot be enabled (not offered, or dir holds
 * processes) shows up as a clear error if a resource needs it. */
static void enable_v2_controllers(const char *dir)
{
  static const char *const wanted[] = { "cpu", "cpuset", "io", "memory", "pids", "hugetlb" };
  char path[PATH_MAX + 32], want[128];
  cleanup_free char *offered = NULL;
  cleanup_free char *enabled = NULL;
  struct shim_err ignored;
  size_t len = 0;
  snprintf(path, sizeof(path), "%s/cgroup.controllers", dir);
  if (read_file(path, &offered, NULL, 4096, &ignored) < 0)
    return;
  snprintf(path, sizeof(path), "%s/cgroup.subtree_control", dir);
  if (read_file(path, &enabled, NULL, 4096, &ignored) < 0)
    return;
  want[0] = '\0';
  for (size_t i = 0; i < sizeof(wanted) / sizeof(wanted[0]); i++)
    if (list_has(offered, wanted[i]) && !list_has(enabled, wanted[i]))
      len += (size_t) snprintf(want + len, sizeof(want) - len, "%s+%s", len ? " " : "", wanted[i]);
  if (!len || write_file(path, want, len, 0, &ignored) == 0)
    return;
  for (char *save = NULL, *one = strtok_r(want, " ", &save); one; one = strtok_r(NULL, " ", &save))
    write_file(path, one, strlen(one), 0, &ignored);
}

/* mkdir -p the cgroup in hierarchy i, remembering the first level made. */
static int make_hier(struct cgroup *cg, size_t i, struct shim_err *err)
{
  const struct hier *h = &g_hier[i];
  bool cpuset_v1 = !h->v2 && list_has(h->controllers, "cpuset");
  char dir[PATH_MAX];
  size_t len = strlen(h->mount);
  memcpy(dir, h->mount, len + 1);
  for (const char *s = cg->path; *s;) {
    size_t n = strcspn(s + 1, "/") + 1; /* "/component" */
    if (h->v2)
      enable_v2_controllers(dir);
    memcpy(dir + len, s, n);
    len += n;
    dir[len] = '\0';
    s += n;
    if (mkdir(dir, 0755) == 0) {
      if (!cg->created_from[i])
        cg->created_from[i] = len;
    } else if (errno != EEXIST) {
      return shim_fail_errno(err, errno, "linux.cgroupsPath: mkdir %s", dir);
    } else if (!is_dir(dir)) {
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.cgroupsPath: %s exists and is not a cgroup directory", dir);
    }
    if (cpuset_v1 && init_cpuset_level(dir, err) < 0) {
      shim_err_prefix(err, "linux.cgroupsPath: cpuset");
      return -1;
    }
  }
  return 0;
}

/* rmdir that waits a little while the kernel still counts exiting tasks. */
static int rmdir_retry(const char *dir, struct shim_err *err)
{
  int64_t deadline = mono_ms() + RMDIR_BUSY_MS;
  long pause = 1;
  for (;;) {
    if (rmdir(dir) == 0 || errno == ENOENT)
      return 0;
    if (errno != EBUSY || mono_ms() >= deadline)
      return shim_fail_errno(err, errno, "remove cgroup %s", dir);
    sleep_ms(pause);
    pause = pause < 32 ? pause * 2 : pause;
  }
}

/* rmdir dir after its child cgroups (made inside the container, e.g. by a
 * nested runtime), deepest first. */
static int remove_tree(const char *dir, int depth, struct shim_err *err)
{
  cleanup_dir DIR *d = depth < MAX_DEPTH ? opendir(dir) : NULL;
  struct dirent *e;
  while (d && (e = readdir(d))) {
    char sub[PATH_MAX];
    if (e->d_type != DT_DIR || strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    if ((size_t) snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name) >= sizeof(sub))
      continue;
    if (remove_tree(sub, depth + 1, err) < 0)
      return -1;
  }
  return rmdir_retry(dir, err);
}

/* Take back what cgroup_create made: the levels it created, deepest first. */
static void undo_create(struct cgroup *cg)
{
  for (size_t i = 0; i < g_nhier; i++) {
    char dir[PATH_MAX];
    struct shim_err ignored;
    if (!cg->used[i] || !cg->created_from[i])
      continue;
    snprintf(dir, sizeof(dir), "%s", cg->dirs[i]);
    while (strlen(dir) >= cg->created_from[i]) {
      if (remove_tree(dir, 0, &ignored) < 0)
        break;
      *strrchr(dir, '/') = '\0';
    }
  }
}

static int cgroup_alloc(const char *cgroups_path, struct cgroup **out, struct shim_err *err)
{
  cleanup_cgroup struct cgroup *cg = NULL;
  char rel[PATH_MAX];
  size_t len = 0;
  if (detect(err) < 0)
    return -1;
  if (!cgroups_path || !*cgroups_path)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.cgroupsPath: empty");
  if (strchr(cgroups_path, ':'))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.cgroupsPath: \"%s\" is a systemd path; skiff-shim uses the cgroupfs driver",
                     cgroups_path);
  /* Normalise to "/a/b": one slash between components, none at the end. */
  for (const char *s = cgroups_path; *s;) {
    size_t n;
    s += strspn(s, "/");
    n = strcspn(s, "/");
    if (!n)
      break;
    if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.cgroupsPath: \"%.*s\" not allowed in \"%s\"", (int) n, s, cgroups_path);
    if (len + n + 2 > sizeof(rel) - 64)
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.cgroupsPath: too long");
    rel[len++] = '/';
    memcpy(rel + len, s, n);
    len += n;
    s += n;
  }
  rel[len] = '\0';
  if (!len)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.cgroupsPath: the root cgroup cannot be a container's");
  if (!g_nhier)
    return shim_fail(err, SHIM_FAILED_PRECONDITION, "no cgroup hierarchy is mounted under %s", CG_ROOT);
  cg = calloc(1, sizeof(*cg));
  if (!cg)
    return shim_fail_errno(err, ENOMEM, "cgroup");
  memcpy(cg->path, rel, len + 1);
  for (size_t i = 0; i < g_nhier; i++) {
    if (strlen(g_hier[i].mount) + len >= sizeof(cg->dirs[i]))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.cgroupsPath: too long");
    snprintf(cg->dirs[i], sizeof(cg->dirs[i]), "%s%s", g_hier[i].mount, rel);
  }
  *out = cg;
  cg = NULL;
  return 0;
}

/* The hierarchies a container's cgroup lives in: every v1 one (name=systemd
 * included, so /proc/<pid>/cgroup names the container there too) and a
 * cgroup2 one unless it is an empty unified mount on a v1 host. */
static bool hier_wanted(size_t i)
{
  return !g_hier[i].v2 || g_v2_only || g_hier[i].controllers[0];
}

/* A create that failed: the levels it made go, deepest first. */
static void cleanup_undo_create(struct cgroup **cg)
{
  if (!*cg)
    return;
  undo_create(*cg);
  cgroup_free(*cg);
}

int cgroup_create(const char *cgroups_path, json_t *resources, struct cgroup **out, struct shim_err *err)
{
  __attribute__((cleanup(cleanup_undo_create))) struct cgroup *cg = NULL;
  if (cgroup_alloc(cgroups_path, &cg, err) < 0)
    return -1;
  for (size_t i = 0; i < g_nhier; i++) {
    if (!hier_wanted(i))
      continue;
    cg->used[i] = true;
    if (make_hier(cg, i, err) < 0)
      return -1;
  }
  if (apply(cg, resources, err) < 0)
    return -1;
  *out = cg;
  cg = NULL;
  return 0;
}

int cgroup_open(const char *cgroups_path, struct cgroup **out, struct shim_err *err)
{
  cleanup_cgroup struct cgroup *cg = NULL;
  bool any = false;
  if (cgroup_alloc(cgroups_path, &cg, err) < 0)
    return -1;
  for (size_t i = 0; i < g_nhier; i++) {
    cg->used[i] = hier_wanted(i) && is_dir(cg->dirs[i]);
    any = any || cg->used[i];
  }
  if (!any)
    return shim_fail(err, SHIM_NOT_FOUND, "cgroup %s does not exist", cgroups_path);
  *out = cg;
  cg = NULL;
  return 0;
}

int cgroup_open_parent(struct cgroup *cg, struct cgroup **out, struct shim_err *err)
{
  char parent[PATH_MAX];
  char *slash;
  snprintf(parent, sizeof(parent), "%s", cg->path);
  slash = strrchr(parent, '/');
  if (!slash || slash == parent)
    return shim_fail(err, SHIM_FAILED_PRECONDITION, "cgroup %s: its parent is the root cgroup", cg->path);
  *slash = '\0';
  return cgroup_open(parent, out, err);
}

int cgroup_add_pid(struct cgroup *cg, pid_t pid, struct shim_err *err)
{
  char buf[32];
  snprintf(buf, sizeof(buf), "%d", (int) pid);
  for (size_t i = 0; i < g_nhier; i++) {
    char path[PATH_MAX + 32];
    if (!cg->used[i])
      continue;
    snprintf(path, sizeof(path), "%s/cgroup.procs", cg->dirs[i]);
    if (write_file(path, buf, strlen(buf), 0, err) < 0) {
      shim_err_prefix(err, "add pid %d to the cgroup", (int) pid);
      return -1;
    }
  }
  return 0;
}

int cgroup_update(struct cgroup *cg, json_t *resources, struct shim_err *err)
{
  __attribute__((cleanup(journal_free))) struct journal j = { 0 };
  int rc;
  cg->journal = &j;
  rc = apply(cg, resources, err);
  cg->journal = NULL;
  if (rc < 0)
    journal_rollback(&j);
  return rc;
}

/* ---- reading -------------------------------------------------------------------- */

long cgroup_oom_kills(struct cgroup *cg)
{
  uint64_t v = 0;
  if (!cg)
    return 0;
  if (ctl_v2("memory"))
    read_key(cg, "memory", "memory.events", "oom_kill", &v);
  else
    read_key(cg, "memory", "memory.oom_control", "oom_kill", &v);
  return (long) v;
}

bool cgroup_memory_limit(struct cgroup *cg, uint64_t *out)
{
  uint64_t v = 0;
  if (!cg || !read_u64(cg, "memory", ctl_v2("memory") ? "memory.max" : "memory.limit_in_bytes", &v) || unlimited(v))
    return false;
  *out = v;
  return true;
}

static json_t *limit_json(uint64_t v, bool ok)
{
  if (!ok || unlimited(v))
    return json_null();
  return json_integer((json_int_t) v);
}

/* PSI of the cgroup's cgroup2 dir (on a hybrid host the unified one, which tracks
 * pressure whatever controllers it holds): {"cpu", "memory", "io"}, each null when its
 * file is unreadable or malformed; null itself where no pressure file can be read
 * (no cgroup2 dir, kernel without PSI or booted with psi=0). */
static json_t *psi_json(struct cgroup *cg)
{
  static const char *const res[] = { "cpu", "memory", "io" };
  cleanup_json json_t *out = NULL;
  bool any = false;
  int v2 = v2_index(cg);
  if (v2 < 0)
    return json_null();
  out = json_object();
  for (size_t i = 0; i < 3; i++) {
    char path[PATH_MAX + 32];
    cleanup_free char *text = NULL;
    struct shim_err ignored;
    json_t *p = NULL;
    snprintf(path, sizeof(path), "%s/%s.pressure", cg->dirs[v2], res[i]);
    if (read_file(path, &text, NULL, 4096, &ignored) == 0) {
      any = true;
      p = cgstat_pressure_json(text);
    }
    json_object_set_new(out, res[i], p ? p : json_null());
  }
  return any ? json_incref(out) : json_null();
}

/* Bytes and operations per device: io.stat where the io controller is on cgroup2,
 * else v1 blkio's throttle counters (which a kernel may keep only for devices with a
 * throttling rule); null where the cgroup has neither. */
static json_t *io_json(struct cgroup *cg)
{
  cleanup_free char *bytes = NULL;
  cleanup_free char *ops = NULL;
  if (ctl_v2("io")) {
    bytes = cg_read(cg, "io", "io.stat");
    return bytes ? json_pack("{s:o}", "devices", cgstat_io_stat_json(bytes)) : json_null();
  }
  bytes = cg_read(cg, "blkio", "blkio.throttle.io_service_bytes_recursive");
  if (!bytes)
    bytes = cg_read(cg, "blkio", "blkio.throttle.io_service_bytes");
  ops = cg_read(cg, "blkio", "blkio.throttle.io_serviced_recursive");
  if (!ops)
    ops = cg_read(cg, "blkio", "blkio.throttle.io_serviced");
  if (!bytes && !ops)
    return json_null();
  return json_pack("{s:o}", "devices", cgstat_blkio_json(bytes, ops));
}

int cgroup_stats(struct cgroup *cg, json_t **out, struct shim_err *err)
{
  uint64_t usage = 0, user = 0, sys = 0, mem = 0, inactive = 0, rss = 0, cache = 0, pgfault = 0, pgmaj = 0, limit = 0, pids = 0,
           pids_max = 0, swap = 0, swap_limit = 0;
  bool has_limit, has_pids_max, has_swap, has_swap_limit;
  json_t *swap_json;
  int cpuacct = hier_for("cpuacct"), v2 = v2_index(cg);
  if (cpuacct >= 0 && !g_hier[cpuacct].v2) {
    long hz = sysconf(_SC_CLK_TCK);
    uint64_t tick_ns = 1000000000ULL / (uint64_t) (hz > 0 ? hz : 100);
    read_u64(cg, "cpuacct", "cpuacct.usage", &usage);
    read_key(cg, "cpuacct", "cpuacct.stat", "user", &user);
    read_key(cg, "cpuacct", "cpuacct.stat", "system", &sys);
    user *= tick_ns;
    sys *= tick_ns;
  } else if (v2 >= 0) {
    /* cpu.stat's usage fields are in every cgroup2 cgroup, cpu controller or not. */
    char path[PATH_MAX + 32];
    cleanup_free char *text = NULL;
    struct shim_err ignored;
    snprintf(path, sizeof(path), "%s/cpu.stat", cg->dirs[v2]);
    if (read_file(path, &text, NULL, 1 << 16, &ignored) == 0) {
      static const char *const keys[] = { "usage_usec ", "user_usec ", "system_usec " };
      uint64_t *vals[] = { &usage, &user, &sys };
      for (char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        for (size_t k = 0; k < 3; k++)
          if (strncmp(l, keys[k], strlen(keys[k])) == 0)
            *vals[k] = strtoull(l + strlen(keys[k]), NULL, 10) * 1000;
    }
  }
  if (ctl_v2("memory")) {
    read_u64(cg, "memory", "memory.current", &mem);
    read_key(cg, "memory", "memory.stat", "inactive_file", &inactive);
    read_key(cg, "memory", "memory.stat", "anon", &rss);
    read_key(cg, "memory", "memory.stat", "pgfault", &pgfault);
    read_key(cg, "memory", "memory.stat", "pgmajfault", &pgmaj);
    read_key(cg, "memory", "memory.stat", "file", &cache);
    has_limit = read_u64(cg, "memory", "memory.max", &limit);
    has_swap = read_u64(cg, "memory", "memory.swap.current", &swap);
    has_swap_limit = read_u64(cg, "memory", "memory.swap.max", &swap_limit);
  } else {
    /* v1 limits memory+swap (memsw, with swap accounting on): swap may use the rest. */
    uint64_t memsw_limit = 0;
    read_u64(cg, "memory", "memory.usage_in_bytes", &mem);
    read_key(cg, "memory", "memory.stat", "total_inactive_file", &inactive);
    read_key(cg, "memory", "memory.stat", "total_rss", &rss);
    read_key(cg, "memory", "memory.stat", "total_pgfault", &pgfault);
    read_key(cg, "memory", "memory.stat", "total_pgmajfault", &pgmaj);
    read_key(cg, "memory", "memory.stat", "total_cache", &cache);
    has_limit = read_u64(cg, "memory", "memory.limit_in_bytes", &limit);
    has_swap = read_key(cg, "memory", "memory.stat", "total_swap", &swap);
    has_swap_limit = read_u64(cg, "memory", "memory.memsw.limit_in_bytes", &memsw_limit);
    swap_limit = memsw_limit;
    if (has_swap_limit && !unlimited(memsw_limit) && has_limit && !unlimited(limit))
      swap_limit = memsw_limit > limit ? memsw_limit - limit : 0;
  }
  if (!read_u64(cg, "pids", "pids.current", &pids)) {
    /* No pids controller: count the processes instead. */
    cleanup_free pid_t *list = NULL;
    size_t n = 0;
    struct shim_err ignored;
    if (cgroup_pids(cg, &list, &n, &ignored) == 0)
      pids = n;
  }
  has_pids_max = read_u64(cg, "pids", "pids.max", &pids_max);
  swap_json = has_swap ? json_pack("{s:I,s:o}", "usageBytes", (json_int_t) swap, "limitBytes", limit_json(swap_limit, has_swap_limit))
                      : json_null();
  *out = json_pack("{s:I,s:{s:I,s:I,s:I},s:{s:I,s:I,s:o,s:I,s:I,s:I,s:I,s:I},s:{s:I,s:o},s:o}", "timestamp", (json_int_t) now_ns(), "cpu",
                   "usageNs", (json_int_t) usage, "userNs", (json_int_t) user, "systemNs", (json_int_t) sys, "memory",
                   "usageBytes", (json_int_t) mem, "workingSetBytes", (json_int_t) (mem > inactive ? mem - inactive : 0),
                   "limitBytes", limit_json(limit, has_limit), "rssBytes", (json_int_t) rss, "pageFaults", (json_int_t) pgfault,
                   "majorPageFaults", (json_int_t) pgmaj, "cacheBytes", (json_int_t) cache, "oomKills",
                   (json_int_t) cgroup_oom_kills(cg), "pids", "current", (json_int_t) pids, "limit",
                   limit_json(pids_max, has_pids_max), "swap", swap_json);
  if (!*out)
    return shim_fail(err, SHIM_INTERNAL, "encode stats");
  json_object_set_new(*out, "psi", psi_json(cg));
  json_object_set_new(*out, "io", io_json(cg));
  return 0;
}

/* ---- processes ------------------------------------------------------------------- */

struct pidvec {
  pid_t *v;
  size_t n, cap;
};

static void pidvec_free(struct pidvec *pv)
{
  free(pv->v);
}

/* Append the processes of dir and of its child cgroups. */
static int collect_pids(const char *dir, int depth, struct pidvec *pv, struct shim_err *err)
{
  char path[PATH_MAX + 32];
  cleanup_free char *text = NULL;
  cleanup_dir DIR *d = NULL;
  struct dirent *e;
  snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
  if (read_file(path, &text, NULL, 1 << 22, err) < 0)
    return -1;
  for (char *p = text, *end; *p; p = end) {
    long v = strtol(p, &end, 10);
    if (end == p)
      break;
    if (pv->n == pv->cap) {
      size_t cap = pv->cap ? pv->cap * 2 : 16;
      pid_t *nv = realloc(pv->v, cap * sizeof(pid_t));
      if (!nv)
        return shim_fail_errno(err, ENOMEM, "cgroup pids");
      pv->v = nv;
      pv->cap = cap;
    }
    pv->v[pv->n++] = (pid_t) v;
  }
  if (depth >= MAX_DEPTH || !(d = opendir(dir)))
    return 0;
  while ((e = readdir(d))) {
    char sub[PATH_MAX];
    struct shim_err ignored;
    if (e->d_type != DT_DIR || strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    if ((size_t) snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name) >= sizeof(sub))
      continue;
    /* A child cgroup removed meanwhile is no error. */
    if (collect_pids(sub, depth + 1, pv, &ignored) < 0 && ignored.errnum != ENOENT) {
      *err = ignored;
      return -1;
    }
  }
  return 0;
}

/* The hierarchy whose cgroup.procs we read for the cgroup's processes. */
static const char *procs_dir(struct cgroup *cg)
{
  static const char *const prefer[] = { "pids", "memory", "freezer", "cpu", "devices" };
  for (size_t i = 0; i < sizeof(prefer) / sizeof(prefer[0]); i++) {
    const char *d = dir_for(cg, prefer[i]);
    if (d)
      return d;
  }
  for (size_t i = 0; i < g_nhier; i++)
    if (cg->used[i])
      return cg->dirs[i];
  return NULL;
}

int cgroup_pids(struct cgroup *cg, pid_t **pids_out, size_t *n_out, struct shim_err *err)
{
  __attribute__((cleanup(pidvec_free))) struct pidvec pv = { 0 };
  const char *dir = procs_dir(cg);
  if (!dir)
    return shim_fail(err, SHIM_NOT_FOUND, "cgroup %s: in no hierarchy", cg->path);
  if (collect_pids(dir, 0, &pv, err) < 0)
    return -1;
  *pids_out = pv.v;
  *n_out = pv.n;
  pv.v = NULL;
  return 0;
}

int cgroup_signal_all(struct cgroup *cg, int sig, struct shim_err *err)
{
  cleanup_free pid_t *pids = NULL;
  size_t n = 0;
  if (cgroup_pids(cg, &pids, &n, err) < 0)
    return err->errnum == ENOENT ? 0 : -1; /* no cgroup, no process */
  for (size_t i = 0; i < n; i++)
    kill(pids[i], sig);
  return 0;
}

/* SIGKILL what is in any of the cgroup's hierarchies; returns how many. */
static size_t kill_listed(struct cgroup *cg)
{
  size_t total = 0;
  for (size_t i = 0; i < g_nhier; i++) {
    __attribute__((cleanup(pidvec_free))) struct pidvec pv = { 0 };
    struct shim_err ignored;
    if (!cg->used[i])
      continue;
    collect_pids(cg->dirs[i], 0, &pv, &ignored);
    for (size_t k = 0; k < pv.n; k++)
      kill(pv.v[k], SIGKILL);
    total += pv.n;
  }
  return total;
}

static bool freeze(struct cgroup *cg, bool on)
{
  struct shim_err ignored;
  if (ctl_v2("freezer"))
    return cg_write(cg, "freezer", "cgroup.freeze", on ? "1" : "0", "freezer", &ignored) == 0;
  return cg_write(cg, "freezer", "freezer.state", on ? "FROZEN" : "THAWED", "freezer", &ignored) == 0;
}

int cgroup_destroy(struct cgroup *cg, struct shim_err *err)
{
  int v2 = v2_index(cg);
  bool any = false, killed = false;
  int64_t deadline;
  long pause = 1;
  for (size_t i = 0; i < g_nhier; i++)
    any = any || (cg->used[i] && exists(cg->dirs[i]));
  if (!any)
    return 0;
  /* The usual case: the container has exited and its cgroup is an empty
   * leaf. rmdir removes it at once; only a busy cgroup (processes, or child
   * cgroups the container made) takes the kill-and-wait path below. */
  {
    bool busy = false;
    for (size_t i = 0; i < g_nhier; i++)
      if (cg->used[i] && rmdir(cg->dirs[i]) < 0 && errno != ENOENT)
        busy = true;
    if (!busy)
      return 0;
  }
  /* cgroup.kill (Linux 5.14) kills the whole subtree at once; otherwise
   * freeze so nothing forks between listing and killing, then thaw so the
   * (v1-frozen) victims can die. */
  if (v2 >= 0) {
    char path[PATH_MAX + 32];
    struct shim_err ignored;
    snprintf(path, sizeof(path), "%s/cgroup.kill", cg->dirs[v2]);
    killed = exists(path) && write_file(path, "1", 1, 0, &ignored) == 0;
  }
  if (!killed) {
    bool frozen = freeze(cg, true);
    kill_listed(cg);
    if (frozen)
      freeze(cg, false);
  }
  /* Wait (bounded) until every hierarchy shows the cgroup empty, killing
   * anything that got in meanwhile. */
  deadline = mono_ms() + DESTROY_WAIT_MS;
  while (kill_listed(cg) > 0) {
    if (mono_ms() >= deadline)
      return shim_fail(err, SHIM_DEADLINE_EXCEEDED, "cgroup %s: processes still there %d s after SIGKILL", cg->path,
                       DESTROY_WAIT_MS / 1000);
    sleep_ms(pause);
    pause = pause < 32 ? pause * 2 : pause;
  }
  for (size_t i = 0; i < g_nhier; i++)
    if (cg->used[i] && remove_tree(cg->dirs[i], 0, err) < 0)
      return -1;
  return 0;
}

const char *cgroup_dir(struct cgroup *cg, const char *controller)
{
  if (!controller || !*controller) {
    int i = v2_index(cg);
    return i < 0 ? NULL : cg->dirs[i];
  }
  return dir_for(cg, controller);
}

int cgroup_foreach_hierarchy(struct cgroup *cg, int (*fn)(void *ctx, const char *name, const char *host_dir), void *ctx,
                             struct shim_err *err)
{
  for (size_t i = 0; i < g_nhier; i++) {
    /* The name is the mount's directory ("cpu,cpuacct", "unified"). */
    const char *name = strrchr(g_hier[i].mount, '/') + 1;
    if (!cg->used[i] || !is_dir(cg->dirs[i]))
      continue;
    if (fn(ctx, name, cg->dirs[i]) < 0)
      return -1;
  }
  (void) err;
  return 0;
}

void cgroup_free(struct cgroup *cg)
{
  free(cg);
}

void cleanup_cgroupp(struct cgroup **cg)
{
  cgroup_free(*cg);
}
