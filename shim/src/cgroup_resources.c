/* cgroup_resources.c: linux.resources: checked (types and ranges, before anything is
 * made) and parsed once into struct resources, then applied to a cgroup from it: cpu,
 * memory, pids, hugetlb, block I/O weight and unified files, each written as v1 or v2
 * takes it; devices in cgroup_devices.c. */
#include "cgroup_internal.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- validation ------------------------------------------------------------- */

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

static int parse_cpu(json_t *cpu, struct resources *r, struct shim_err *err)
{
  const char *w = "linux.resources.cpu";
  struct res_cpu *c = &r->cpu;
  if (field_uint64(cpu, "shares", w, &c->has_shares, &c->shares, err) < 0
      || field_int64(cpu, "quota", w, &c->has_quota, &c->quota, err) < 0
      || field_uint64(cpu, "period", w, &c->has_period, &c->period, err) < 0
      || field_int64(cpu, "realtimeRuntime", w, &c->has_rt_runtime, &c->rt_runtime, err) < 0
      || field_uint64(cpu, "realtimePeriod", w, &c->has_rt_period, &c->rt_period, err) < 0
      || field_int64(cpu, "idle", w, &c->has_idle, &c->idle, err) < 0)
    return -1;
  /* 0 is "not set" for shares, quota and period, as CRI sends them. */
  if (c->has_shares && c->shares != 0 && (c->shares < 2 || c->shares > 262144))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.shares: %llu not in 2..262144", w, (unsigned long long) c->shares);
  if (c->has_quota && c->quota != 0 && c->quota != -1 && c->quota < 1000)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.quota: %lld must be -1 (no limit) or at least 1000 (microseconds)", w,
                     (long long) c->quota);
  if (c->has_period && c->period != 0 && (c->period < 1000 || c->period > 1000000))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.period: %llu not in 1000..1000000 (microseconds)", w,
                     (unsigned long long) c->period);
  if (c->has_rt_runtime && c->rt_runtime < -1)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.realtimeRuntime: %lld is not allowed (-1 means unlimited)", w,
                     (long long) c->rt_runtime);
  if (c->has_rt_period && c->rt_period > INT64_MAX / 2)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.realtimePeriod: %llu too large", w, (unsigned long long) c->rt_period);
  if (c->has_rt_runtime && c->has_rt_period && c->rt_period > 0 && c->rt_runtime > (int64_t) c->rt_period)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.realtimeRuntime: %lld exceeds realtimePeriod %llu", w,
                     (long long) c->rt_runtime, (unsigned long long) c->rt_period);
  if (c->has_idle && c->idle != 0 && c->idle != 1)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.idle: %lld must be 0 or 1", w, (long long) c->idle);
  if (field_string(cpu, "cpus", w, &c->cpus, err) < 0 || check_cpulist(c->cpus, "linux.resources.cpu.cpus", err) < 0
      || field_string(cpu, "mems", w, &c->mems, err) < 0 || check_cpulist(c->mems, "linux.resources.cpu.mems", err) < 0)
    return -1;
  return 0;
}

static int parse_memory(json_t *mem, struct resources *r, struct shim_err *err)
{
  const char *w = "linux.resources.memory";
  struct res_memory *m = &r->memory;
  int64_t ignored;
  bool has, b;
  if (get_limit(mem, "limit", w, &m->has_limit, &m->limit, err) < 0 || get_limit(mem, "swap", w, &m->has_swap, &m->swap, err) < 0
      || get_limit(mem, "reservation", w, &m->has_reservation, &m->reservation, err) < 0
      || get_limit(mem, "kernel", w, &has, &ignored, err) < 0 || get_limit(mem, "kernelTCP", w, &has, &ignored, err) < 0
      || field_uint64(mem, "swappiness", w, &m->has_swappiness, &m->swappiness, err) < 0
      || field_bool(mem, "disableOOMKiller", w, &m->disable_oom_killer, err) < 0
      || field_bool(mem, "useHierarchy", w, &b, err) < 0 || field_bool(mem, "checkBeforeUpdate", w, &b, err) < 0)
    return -1;
  m->has_disable_oom_killer = field_present(mem, "disableOOMKiller");
  /* swappiness 2^64-1 is what some generators send for "not set". */
  if (m->has_swappiness && m->swappiness != UINT64_MAX && m->swappiness > 100)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.swappiness: %llu over 100", w, (unsigned long long) m->swappiness);
  if (m->has_limit && m->has_swap && m->limit > 0 && m->swap > 0 && m->swap < m->limit)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.swap: %lld is below limit %lld (swap is the memory+swap total)", w,
                     (long long) m->swap, (long long) m->limit);
  return 0;
}

static int parse_hugepage(json_t *v, const char *where, void *item, void *ctx, struct shim_err *err)
{
  struct res_hugepage *h = item;
  bool has;
  if (field_string(v, "pageSize", where, &h->page_size, err) < 0 || get_limit(v, "limit", where, &has, &h->limit, err) < 0)
    return -1;
  if (!h->page_size)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.pageSize: required", where);
  if (!page_size_ok(h->page_size))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.pageSize: \"%s\" is not a size like \"2MB\" or \"1GB\"", where,
                     h->page_size);
  if (!has)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.limit: required", where);
  return 0;
}

static int parse_unified(json_t *unified, struct resources *r, struct shim_err *err)
{
  const char *key;
  json_t *v;
  r->unified = calloc(json_object_size(unified) + 1, sizeof(*r->unified));
  if (!r->unified)
    return shim_fail_errno(err, ENOMEM, "linux.resources.unified");
  json_object_foreach (unified, key, v) {
    if (!unified_name_ok(key))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.resources.unified: \"%s\" is not a cgroup file name", key);
    if (!json_is_string(v))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.resources.unified[\"%s\"]: must be a string", key);
    r->unified[r->n_unified++] = (struct res_unified) { .key = key, .value = json_string_value(v), .value_len = json_string_length(v) };
  }
  return 0;
}

int resources_parse(json_t *res, struct resources *out, struct shim_err *err)
{
  const char *w = "linux.resources";
  json_t *cpu, *mem, *pids, *hp, *devs, *unified, *bio;
  memset(out, 0, sizeof(*out));
  if (!res || json_is_null(res))
    return 0;
  if (!json_is_object(res))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.resources: must be an object");
  if (field_object(res, "cpu", w, &cpu, err) < 0 || field_object(res, "memory", w, &mem, err) < 0
      || field_object(res, "pids", w, &pids, err) < 0 || field_array(res, "hugepageLimits", w, &hp, err) < 0
      || field_array(res, "devices", w, &devs, err) < 0 || field_object(res, "unified", w, &unified, err) < 0
      || field_object(res, "blockIO", w, &bio, err) < 0)
    return -1;
  if (cpu && parse_cpu(cpu, out, err) < 0)
    return -1;
  if (mem && parse_memory(mem, out, err) < 0)
    return -1;
  if (pids && get_limit(pids, "limit", "linux.resources.pids", &out->has_pids, &out->pids_limit, err) < 0)
    return -1;
  if (field_objects(hp, "linux.resources.hugepageLimits", sizeof(*out->hugepages), (void **) &out->hugepages, &out->n_hugepages,
                    parse_hugepage, NULL, err) < 0)
    return -1;
  out->has_devices = devs != NULL;
  if (cg_parse_devices(devs, &out->devices, &out->n_devices, err) < 0)
    return -1;
  if (bio) {
    static const char *const keys[] = { "weight", "leafWeight" };
    for (size_t k = 0; k < 2; k++) {
      uint64_t u64;
      bool has;
      if (field_uint64(bio, keys[k], "linux.resources.blockIO", &has, &u64, err) < 0)
        return -1;
      if (has && u64 != 0 && (u64 < 10 || u64 > 1000))
        return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.resources.blockIO.%s: %llu not in 10..1000", keys[k],
                         (unsigned long long) u64);
      if (k == 0) {
        out->has_blkio_weight = has;
        out->blkio_weight = u64;
      }
    }
  }
  return parse_unified(unified, out, err);
}

void resources_free(struct resources *r)
{
  free(r->hugepages);
  free(r->devices);
  free(r->unified);
  memset(r, 0, sizeof(*r));
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

static int apply_cpu(struct cgroup *cg, const struct resources *r, struct shim_err *err)
{
  const char *cpus = r->cpu.cpus, *mems = r->cpu.mems;
  uint64_t shares = r->cpu.shares, period = r->cpu.period;
  int64_t quota = r->cpu.quota;
  bool v2 = ctl_v2("cpu");
  bool has_shares = r->cpu.has_shares && shares != 0;
  bool has_quota = r->cpu.has_quota && quota != 0;
  bool has_period = r->cpu.has_period && period != 0;
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
  if (apply_rt(cg, r->cpu.has_rt_runtime, r->cpu.rt_runtime, r->cpu.has_rt_period, r->cpu.rt_period, err) < 0)
    return -1;
  if (r->cpu.has_idle && cg_writef(cg, "cpu", "cpu.idle", "linux.resources.cpu.idle", err, "%lld", (long long) r->cpu.idle) < 0)
    return -1;
  if (cpus && *cpus && cg_write(cg, "cpuset", "cpuset.cpus", cpus, "linux.resources.cpu.cpus", err) < 0)
    return -1;
  if (mems && *mems && cg_write(cg, "cpuset", "cpuset.mems", mems, "linux.resources.cpu.mems", err) < 0)
    return -1;
  return 0;
}

/* ---- applying: memory --------------------------------------------------------- */

static int apply_memory_v2(struct cgroup *cg, const struct resources *r, struct shim_err *err)
{
  int64_t limit = r->memory.limit, res = r->memory.reservation, swap = r->memory.swap;
  bool has_limit = r->memory.has_limit && limit != 0, has_res = r->memory.has_reservation;
  bool has_swap = r->memory.has_swap && swap != 0;
  char buf[32];
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
        if (has_limit || !cg_read_u64(cg, "memory", "memory.max", &cur) || cg_unlimited(cur))
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

static int apply_memory_v1(struct cgroup *cg, const struct resources *r, struct shim_err *err)
{
  int64_t limit = r->memory.limit, res = r->memory.reservation, swap = r->memory.swap;
  uint64_t swappiness = r->memory.swappiness, cur_limit = UINT64_MAX, cur_memsw = UINT64_MAX;
  bool has_limit = r->memory.has_limit && limit != 0, has_res = r->memory.has_reservation;
  bool has_swap = r->memory.has_swap && swap != 0, has_memsw = cg_has_file(cg, "memory", "memory.memsw.limit_in_bytes");
  char lbuf[32], sbuf[32], buf[32];
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
    cg_read_u64(cg, "memory", "memory.limit_in_bytes", &cur_limit);
    memsw_first = swap < 0 || (!cg_unlimited(cur_limit) && (uint64_t) swap >= cur_limit);
    if (memsw_first) {
      if (cg_write(cg, "memory", "memory.memsw.limit_in_bytes", sbuf, "linux.resources.memory.swap", err) < 0
          || cg_write(cg, "memory", "memory.limit_in_bytes", lbuf, "linux.resources.memory.limit", err) < 0)
        return -1;
    } else if (cg_write(cg, "memory", "memory.limit_in_bytes", lbuf, "linux.resources.memory.limit", err) < 0
               || cg_write(cg, "memory", "memory.memsw.limit_in_bytes", sbuf, "linux.resources.memory.swap", err) < 0) {
      return -1;
    }
  } else if (has_limit) {
    if (has_memsw && cg_read_u64(cg, "memory", "memory.memsw.limit_in_bytes", &cur_memsw) && !cg_unlimited(cur_memsw)
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
  if (r->memory.has_swappiness && swappiness <= 100
      && cg_writef(cg, "memory", "memory.swappiness", "linux.resources.memory.swappiness", err, "%llu",
                   (unsigned long long) swappiness) < 0)
    return -1;
  if (r->memory.has_disable_oom_killer
      && cg_write(cg, "memory", "memory.oom_control", r->memory.disable_oom_killer ? "1" : "0",
                  "linux.resources.memory.disableOOMKiller", err) < 0)
    return -1;
  /* memory.kernel and kernelTCP are ignored (deprecated; gone from recent kernels). */
  return 0;
}

static int apply_memory(struct cgroup *cg, const struct resources *r, struct shim_err *err)
{
  if (!r->memory.has_limit && !r->memory.has_reservation && !r->memory.has_swap && !r->memory.has_swappiness
      && !r->memory.has_disable_oom_killer)
    return 0;
  if (!dir_for(cg, "memory"))
    return shim_fail(err, SHIM_FAILED_PRECONDITION, "linux.resources.memory: the memory cgroup controller is not available on this host");
  return ctl_v2("memory") ? apply_memory_v2(cg, r, err) : apply_memory_v1(cg, r, err);
}

/* ---- applying: pids, hugetlb, blkio ------------------------------------------- */

static int apply_pids(struct cgroup *cg, const struct resources *r, struct shim_err *err)
{
  char buf[32];
  if (!r->has_pids)
    return 0;
  snprintf(buf, sizeof(buf), r->pids_limit <= 0 ? "max" : "%lld", (long long) r->pids_limit);
  return cg_write(cg, "pids", "pids.max", buf, "linux.resources.pids.limit", err);
}

static int apply_hugetlb(struct cgroup *cg, const struct resources *r, struct shim_err *err)
{
  if (!r->n_hugepages)
    return 0;
  if (!dir_for(cg, "hugetlb"))
    return shim_fail(err, SHIM_FAILED_PRECONDITION, "linux.resources.hugepageLimits: the hugetlb cgroup controller is not available on this host");
  for (size_t i = 0; i < r->n_hugepages; i++) {
    const char *size = r->hugepages[i].page_size;
    int64_t limit = r->hugepages[i].limit;
    bool v2 = ctl_v2("hugetlb");
    char file[64], rsvd[64], field[64], value[32];
    struct shim_err ignored;
    snprintf(field, sizeof(field), "linux.resources.hugepageLimits[%zu]", i);
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
static void apply_blkio(struct cgroup *cg, const struct resources *r)
{
  uint64_t weight = r->blkio_weight;
  struct shim_err ignored;
  int ok;
  if (!r->has_blkio_weight || weight == 0)
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

/* ---- applying: unified ---------------------------------------------------------- */

static int apply_unified(struct cgroup *cg, const struct resources *r, struct shim_err *err)
{
  for (size_t k = 0; k < r->n_unified; k++) {
    const char *key = r->unified[k].key;
    char path[PATH_MAX + 256], field[300], controller[64];
    int i = -1;
    snprintf(field, sizeof(field), "linux.resources.unified[\"%s\"]", key);
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
    if (!path_exists(path))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: %s does not exist (no such cgroup v2 file, or its controller is not enabled here)",
                       field, path);
    if (cg_write_path(cg, path, r->unified[k].value, r->unified[k].value_len, err) < 0) {
      shim_err_prefix(err, "%s", field);
      return -1;
    }
  }
  return 0;
}

int cg_apply(struct cgroup *cg, const struct resources *r, struct shim_err *err)
{
  if (!r)
    return 0;
  if (apply_cpu(cg, r, err) < 0 || apply_memory(cg, r, err) < 0 || apply_pids(cg, r, err) < 0 || apply_hugetlb(cg, r, err) < 0
      || (r->has_devices && cg_apply_devices(cg, r->devices, r->n_devices, err) < 0))
    return -1;
  apply_blkio(cg, r);
  /* Last, so that explicit v2 files win over converted values. */
  return apply_unified(cg, r, err);
}

int cgroup_update(struct cgroup *cg, const struct resources *resources, struct shim_err *err)
{
  __attribute__((cleanup(journal_free))) struct journal j = { 0 };
  int rc;
  cg->journal = &j;
  rc = cg_apply(cg, resources, err);
  cg->journal = NULL;
  if (rc < 0)
    journal_rollback(&j);
  return rc;
}
