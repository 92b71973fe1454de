/* cgroup_stats.c: what a cgroup reports: CPU, memory, swap, pids, OOM kills, PSI and
 * per-device I/O (see api/shim/PROTOCOL.md "stats"), from v1 or v2 files. */
#include "cgroup_internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

long cgroup_oom_kills(struct cgroup *cg)
{
  uint64_t v = 0;
  if (!cg)
    return 0;
  if (ctl_v2("memory"))
    cg_read_key(cg, "memory", "memory.events", "oom_kill", &v);
  else
    cg_read_key(cg, "memory", "memory.oom_control", "oom_kill", &v);
  return (long) v;
}

bool cgroup_memory_limit(struct cgroup *cg, uint64_t *out)
{
  uint64_t v = 0;
  if (!cg || !cg_read_u64(cg, "memory", ctl_v2("memory") ? "memory.max" : "memory.limit_in_bytes", &v) || cg_unlimited(v))
    return false;
  *out = v;
  return true;
}

static json_t *limit_json(uint64_t v, bool ok)
{
  if (!ok || cg_unlimited(v))
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
    cg_read_u64(cg, "cpuacct", "cpuacct.usage", &usage);
    cg_read_key(cg, "cpuacct", "cpuacct.stat", "user", &user);
    cg_read_key(cg, "cpuacct", "cpuacct.stat", "system", &sys);
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
    cg_read_u64(cg, "memory", "memory.current", &mem);
    cg_read_key(cg, "memory", "memory.stat", "inactive_file", &inactive);
    cg_read_key(cg, "memory", "memory.stat", "anon", &rss);
    cg_read_key(cg, "memory", "memory.stat", "pgfault", &pgfault);
    cg_read_key(cg, "memory", "memory.stat", "pgmajfault", &pgmaj);
    cg_read_key(cg, "memory", "memory.stat", "file", &cache);
    has_limit = cg_read_u64(cg, "memory", "memory.max", &limit);
    has_swap = cg_read_u64(cg, "memory", "memory.swap.current", &swap);
    has_swap_limit = cg_read_u64(cg, "memory", "memory.swap.max", &swap_limit);
  } else {
    /* v1 limits memory+swap (memsw, with swap accounting on): swap may use the rest. */
    uint64_t memsw_limit = 0;
    cg_read_u64(cg, "memory", "memory.usage_in_bytes", &mem);
    cg_read_key(cg, "memory", "memory.stat", "total_inactive_file", &inactive);
    cg_read_key(cg, "memory", "memory.stat", "total_rss", &rss);
    cg_read_key(cg, "memory", "memory.stat", "total_pgfault", &pgfault);
    cg_read_key(cg, "memory", "memory.stat", "total_pgmajfault", &pgmaj);
    cg_read_key(cg, "memory", "memory.stat", "total_cache", &cache);
    has_limit = cg_read_u64(cg, "memory", "memory.limit_in_bytes", &limit);
    has_swap = cg_read_key(cg, "memory", "memory.stat", "total_swap", &swap);
    has_swap_limit = cg_read_u64(cg, "memory", "memory.memsw.limit_in_bytes", &memsw_limit);
    swap_limit = memsw_limit;
    if (has_swap_limit && !cg_unlimited(memsw_limit) && has_limit && !cg_unlimited(limit))
      swap_limit = memsw_limit > limit ? memsw_limit - limit : 0;
  }
  if (!cg_read_u64(cg, "pids", "pids.current", &pids)) {
    /* No pids controller: count the processes instead. */
    cleanup_free pid_t *list = NULL;
    size_t n = 0;
    struct shim_err ignored;
    if (cgroup_pids(cg, &list, &n, &ignored) == 0)
      pids = n;
  }
  has_pids_max = cg_read_u64(cg, "pids", "pids.max", &pids_max);
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
