/* cgroup_internal.h: what the cgroup driver's files share (cgroup.c, cgroup_hier.c,
 * cgroup_resources.c, cgroup_devices.c, cgroup_stats.c); the rest of the shim sees
 * the cgroup_* functions of shim.h only. */
#ifndef SKIFF_SHIM_CGROUP_INTERNAL_H
#define SKIFF_SHIM_CGROUP_INTERNAL_H

#include "shim.h"

#include <limits.h>

#define CG_ROOT "/sys/fs/cgroup"
#define MAX_HIER CGROUP_JOIN_MAX /* shim.h: a join holds an fd per hierarchy */
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

/* ---- the host's hierarchies and control files (cgroup_hier.c) ----------------- */

extern struct hier g_hier[MAX_HIER];
extern size_t g_nhier;
extern bool g_v2_only; /* /sys/fs/cgroup is one cgroup2 mount */

/* Find the hierarchies (once). */
int cg_detect(struct shim_err *err);
/* Is c one of the tokens of list (separated by commas, spaces or newlines)? */
bool list_has(const char *list, const char *c);
/* The hierarchy that holds controller c (v1 names: cpuacct, blkio, devices,
 * freezer are mapped to what cgroup2 offers), or -1. */
int hier_for(const char *c);
/* The cgroup's dir for controller c, NULL when it is in no hierarchy holding c. */
const char *dir_for(struct cgroup *cg, const char *c);
/* Controller c is on a cgroup2 hierarchy. */
bool ctl_v2(const char *c);
/* The cgroup's dir on a cgroup2 hierarchy, or -1. */
int v2_index(struct cgroup *cg);
/* A limit the kernel reports as none: v1's huge page-aligned number, v2's "max". */
bool cg_unlimited(uint64_t v);

/* Every write of a limit goes through these, so that an update can be undone;
 * field names the spec field in errors. */
int cg_write_path(struct cgroup *cg, const char *path, const char *value, size_t len, struct shim_err *err);
int cg_write(struct cgroup *cg, const char *c, const char *file, const char *value, const char *field, struct shim_err *err);
int cg_writef(struct cgroup *cg, const char *c, const char *file, const char *field, struct shim_err *err, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
bool cg_has_file(struct cgroup *cg, const char *c, const char *file);
/* Contents of a controller file, or NULL. */
char *cg_read(struct cgroup *cg, const char *c, const char *file);
/* A number file; "max" reads as UINT64_MAX. */
bool cg_read_u64(struct cgroup *cg, const char *c, const char *file, uint64_t *out);
/* Value of "key N" in a flat-keyed file (memory.stat, cpu.stat, memory.events). */
bool cg_read_key(struct cgroup *cg, const char *c, const char *file, const char *key, uint64_t *out);
/* Put every journaled file back, newest first. */
void journal_rollback(struct journal *j);
void journal_free(struct journal *j);

/* ---- resources (cgroup_resources.c, cgroup_devices.c) ------------------------- */

/* Apply parsed resources (NULL: none) to the cgroup. */
int cg_apply(struct cgroup *cg, const struct resources *r, struct shim_err *err);
/* linux.resources.devices checked and parsed (a missing type is 'a', numbers -1, access "rwm"). */
int cg_parse_devices(json_t *devs, struct res_device **out, size_t *n, struct shim_err *err);
/* The rules, and the devices every container gets, as v1 lines or a v2 BPF program. */
int cg_apply_devices(struct cgroup *cg, const struct res_device *devices, size_t n, struct shim_err *err);

#endif
