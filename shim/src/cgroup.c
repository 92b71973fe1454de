/* cgroup.c: the cgroupfs driver for v1, v2 and hybrid hosts (v1 controllers plus
 * controllers enabled on a cgroup2 mount, such as hugetlb here): a container's cgroup
 * created in every hierarchy (and its resources applied), opened, its processes
 * listed and signalled, and destroyed. */
#include "cgroup_internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DESTROY_WAIT_MS 5000
#define RMDIR_BUSY_MS 1000

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

/* ---- creating -------------------------------------------------------------------- */

/* Writing a v1 cpuset's cpus makes the kernel rebuild the scheduler domains when that
 * cpuset balances load (cpuset.sched_load_balance, 1 by default): a walk of every cpuset
 * and every task on the node under the cpuset mutex, about 1 ms at 500 pods, once per
 * new level. Below a cpuset that balances load the flag changes nothing (the kernel
 * skips the subtree of a balancing cpuset: its domain spans the subtree's cpus), so a
 * level made here under one turns it off before its cpus are written. Where no ancestor
 * balances, a level keeps the kernel's default. Best effort. */
static void skip_domain_rebuild(const char *dir, size_t mount_len)
{
  char path[PATH_MAX + 40];
  struct shim_err ignored;
  size_t dir_len = strlen(dir);
  bool covered = false;
  /* From the hierarchy's root down to dir's parent; most hosts answer at the root. */
  for (size_t len = mount_len; !covered && len < dir_len; len += strcspn(dir + len + 1, "/") + 1) {
    cleanup_free char *flag = NULL;
    snprintf(path, sizeof(path), "%.*s/cpuset.sched_load_balance", (int) len, dir);
    covered = read_file(path, &flag, NULL, 16, &ignored) == 0 && flag[0] == '1';
  }
  if (!covered)
    return;
  snprintf(path, sizeof(path), "%s/cpuset.sched_load_balance", dir);
  write_file(path, "0", 1, 0, &ignored);
}

/* v1 cpuset children start with empty cpus/mems (and cannot hold tasks):
 * copy the parent's values into a level that has none. */
static int init_cpuset_level(const char *dir, size_t mount_len, bool created, struct shim_err *err)
{
  static const char *const files[] = { "cpuset.cpus", "cpuset.mems" };
  if (created)
    skip_domain_rebuild(dir, mount_len);
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

/* A new v1 cpuset level gets its parent's cpus and mems, read once; false (nothing
 * written) when the parent has none itself or a file cannot be read or written. */
static bool copy_cpuset_of_parent(const char *dir, size_t mount_len)
{
  static const char *const files[] = { "cpuset.cpus", "cpuset.mems" };
  cleanup_free char *cpus = NULL;
  cleanup_free char *mems = NULL;
  char **val[2] = { &cpus, &mems };
  struct shim_err ignored;
  char path[PATH_MAX + 32];
  int parent_len = (int) (strrchr(dir, '/') - dir);
  for (size_t f = 0; f < 2; f++) {
    snprintf(path, sizeof(path), "%.*s/%s", parent_len, dir, files[f]);
    if (read_file(path, val[f], NULL, 4096, &ignored) < 0 || (*val[f])[strspn(*val[f], " \n")] == '\0')
      return false;
  }
  skip_domain_rebuild(dir, mount_len);
  for (size_t f = 0; f < 2; f++) {
    snprintf(path, sizeof(path), "%s/%s", dir, files[f]);
    if (write_file(path, *val[f], strlen(*val[f]), 0, &ignored) < 0)
      return false;
  }
  return true;
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
  const size_t mount_len = strlen(h->mount);
  size_t len = mount_len;
  /* The usual case: the parent (the pod's cgroup) is there, and only the container's
   * own level is new. cgroup2 levels get controllers enabled on the way down, and a v1
   * cpuset parent whose cpus or mems are empty is filled in first: those take the
   * walk below. */
  if (!h->v2 && mkdir(cg->dirs[i], 0755) == 0) {
    cg->created_from[i] = strlen(cg->dirs[i]);
    if (!cpuset_v1 || copy_cpuset_of_parent(cg->dirs[i], mount_len))
      return 0;
  }
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
    } else if (!path_is_dir(dir)) {
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "linux.cgroupsPath: %s exists and is not a cgroup directory", dir);
    }
    /* Levels from created_from down are ours, made now or just before the walk. */
    if (cpuset_v1 && init_cpuset_level(dir, mount_len, cg->created_from[i] && len >= cg->created_from[i], err) < 0) {
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
  if (cg_detect(err) < 0)
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

int cgroup_create(const char *cgroups_path, const struct resources *resources, struct cgroup **out, struct shim_err *err)
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
  if (cg_apply(cg, resources, err) < 0)
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
    cg->used[i] = hier_wanted(i) && path_is_dir(cg->dirs[i]);
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

/* ---- joining ---------------------------------------------------------------------- */

void cgroup_join_init(struct cgroup_join *j)
{
  memset(j, 0, sizeof(*j));
  j->v2_dir = j->v2_procs = -1;
}

int cgroup_join_open(struct cgroup *cg, struct cgroup_join *j, struct shim_err *err)
{
  cgroup_join_init(j);
  j->cg = cg;
  for (size_t i = 0; i < g_nhier; i++) {
    char path[PATH_MAX + 32];
    int fd;
    if (!cg->used[i])
      continue;
    if (g_hier[i].v2) {
      j->v2_dir = open(cg->dirs[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (j->v2_dir < 0)
        goto fail;
      j->v2_procs = openat(j->v2_dir, "cgroup.procs", O_WRONLY | O_CLOEXEC);
      if (j->v2_procs < 0)
        goto fail;
      j->v2_hier = (int) i;
      continue;
    }
    snprintf(path, sizeof(path), "%s/tasks", cg->dirs[i]);
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
      goto fail;
    j->v1_tasks[j->n_v1] = fd;
    j->v1_hier[j->n_v1++] = (int) i;
  }
  return 0;
fail:
  {
    int e = errno;
    cgroup_join_close(j);
    return shim_fail_errno(err, e, "cgroup %s: open it to join", cg->path);
  }
}

void cgroup_join_close(struct cgroup_join *j)
{
  for (size_t k = 0; k < j->n_v1; k++)
    close(j->v1_tasks[k]);
  j->n_v1 = 0;
  if (j->v2_procs >= 0)
    close(j->v2_procs);
  if (j->v2_dir >= 0)
    close(j->v2_dir);
  j->v2_procs = j->v2_dir = -1;
}

size_t cgroup_join_fds(const struct cgroup_join *j, int *fds, size_t max)
{
  size_t n = 0;
  for (size_t k = 0; k < j->n_v1 && n < max; k++)
    fds[n++] = j->v1_tasks[k];
  if (j->v2_dir >= 0 && n < max)
    fds[n++] = j->v2_dir;
  if (j->v2_procs >= 0 && n < max)
    fds[n++] = j->v2_procs;
  return n;
}

int cgroup_join_self(struct cgroup_join *j, bool in_v2, struct shim_err *err)
{
  int r = 0;
  for (size_t k = 0; k < j->n_v1 && r == 0; k++)
    if (write(j->v1_tasks[k], "0", 1) != 1)
      r = shim_fail_errno(err, errno, "join cgroup %s", j->cg->dirs[j->v1_hier[k]]);
  if (r == 0 && j->v2_procs >= 0 && !in_v2 && write(j->v2_procs, "0", 1) != 1)
    r = shim_fail_errno(err, errno, "join cgroup %s", j->cg->dirs[j->v2_hier]);
  cgroup_join_close(j);
  return r;
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
    any = any || (cg->used[i] && path_exists(cg->dirs[i]));
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
    killed = path_exists(path) && write_file(path, "1", 1, 0, &ignored) == 0;
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
    if (!cg->used[i] || !path_is_dir(cg->dirs[i]))
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
