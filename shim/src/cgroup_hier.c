/* cgroup_hier.c: the host's cgroup hierarchies (v1, v2 or hybrid), found once from
 * mountinfo, and which of them holds a controller; reading a cgroup's control files,
 * and writing them so that an update can be undone (the journal). */
#include "cgroup_internal.h"

#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>

struct hier g_hier[MAX_HIER];
size_t g_nhier;
bool g_v2_only;
static bool g_detected;

/* Is c one of the tokens of list (separated by commas, spaces or newlines)? */
bool list_has(const char *list, const char *c)
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

/* ---- the hierarchies skiffd passed (--cgroups, api/shim/PROTOCOL.md) ------------ */

static const char *g_passed; /* the --cgroups JSON, or NULL */

void cgroup_use_hierarchies(const char *json)
{
  g_passed = json;
}

/* Does /proc/self/cgroup list exactly these hierarchies ("<id>:<controllers>", in the
 * file's order)? A v1 hierarchy mounted or released since skiffd looked changes them. */
static bool same_hierarchies(json_t *want)
{
  cleanup_free char *text = NULL;
  struct shim_err ignored;
  size_t i = 0;
  char *save = NULL;
  if (!json_is_array(want) || read_file("/proc/self/cgroup", &text, NULL, 1 << 16, &ignored) < 0)
    return false;
  for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save), i++) {
    const char *w = json_string_value(json_array_get(want, i));
    char *colon = strchr(line, ':');
    char *end = colon ? strchr(colon + 1, ':') : NULL;
    if (!w || !end || strlen(w) != (size_t) (end - line) || strncmp(w, line, (size_t) (end - line)) != 0)
      return false;
  }
  return i == json_array_size(want);
}

/* Is path still the root of the mount whose device skiffd saw ("maj:min")? */
static bool same_mount(const char *path, const char *dev)
{
  struct stat st;
  unsigned maj, min;
  char rest;
  if (!dev || sscanf(dev, "%u:%u%c", &maj, &min, &rest) != 2 || stat(path, &st) < 0)
    return false;
  return major(st.st_dev) == maj && minor(st.st_dev) == min;
}

/* Take the hierarchies from what skiffd passed, if it still holds: the same hierarchies
 * as /proc/self/cgroup lists now, each mount point still on the device skiffd saw. This
 * saves reading /proc/self/mountinfo, whose size grows with the node's pods (every pod's
 * shm, netns and rootfs mounts: 2,400 lines and 31 ms at 500 pods). */
static bool use_passed(const char *proc_cgroups)
{
  cleanup_json json_t *doc = json_loads(g_passed, 0, NULL);
  json_t *mounts = json_object_get(doc, "mounts");
  size_t i;
  json_t *m;
  if (!json_is_array(mounts) || !same_hierarchies(json_object_get(doc, "hierarchies")))
    return false;
  json_array_foreach (mounts, i, m) {
    const char *path = json_string_value(json_object_get(m, "path"));
    if (!path || !same_mount(path, json_string_value(json_object_get(m, "dev"))))
      return false;
  }
  g_nhier = 0;
  json_array_foreach (mounts, i, m) {
    const char *path = json_string_value(json_object_get(m, "path"));
    const char *fstype = json_string_value(json_object_get(m, "fstype"));
    const char *options = json_string_value(json_object_get(m, "options"));
    char opts[1024];
    if (strncmp(path, CG_ROOT "/", strlen(CG_ROOT) + 1) != 0 || strlen(path) >= PATH_MAX)
      continue;
    if (fstype && strcmp(fstype, "cgroup") == 0 && options) {
      snprintf(opts, sizeof(opts), "%s", options);
      add_v1(path, opts, proc_cgroups);
    } else if (fstype && strcmp(fstype, "cgroup2") == 0) {
      add_v2(path);
    }
  }
  return true;
}

int cg_detect(struct shim_err *err)
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
    if (g_passed) {
      if (use_passed(proc_cgroups)) {
        g_detected = true;
        return 0;
      }
      shim_log("the cgroup hierarchies skiffd passed have changed since: reading /proc/self/mountinfo");
    }
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
  cg_detect(&ignored);
  return g_v2_only;
}

/* ---- controller lookup ---------------------------------------------------- */

/* The hierarchy that holds controller c (v1 names: cpuacct, blkio, devices,
 * freezer are mapped to what cgroup2 offers), or -1. */
int hier_for(const char *c)
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

const char *dir_for(struct cgroup *cg, const char *c)
{
  int i = hier_for(c);
  return i >= 0 && cg->used[i] ? cg->dirs[i] : NULL;
}

bool ctl_v2(const char *c)
{
  int i = hier_for(c);
  return i >= 0 && g_hier[i].v2;
}

/* The cgroup's dir on a cgroup2 hierarchy, or -1. */
int v2_index(struct cgroup *cg)
{
  for (size_t i = 0; i < g_nhier; i++)
    if (g_hier[i].v2 && cg->used[i])
      return (int) i;
  return -1;
}

bool cg_unlimited(uint64_t v)
{
  /* v1 reports "unlimited" as a huge page-aligned number, v2 as "max". */
  return v >= (1ULL << 62);
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
void journal_rollback(struct journal *j)
{
  for (size_t k = j->n; k-- > 0;) {
    struct shim_err err;
    if (write_file(j->e[k].path, j->e[k].old, strlen(j->e[k].old), 0, &err) < 0)
      shim_log("update rollback: %s", err.msg);
  }
}

void journal_free(struct journal *j)
{
  for (size_t k = 0; k < j->n; k++) {
    free(j->e[k].path);
    free(j->e[k].old);
  }
  free(j->e);
}

/* Every write of a limit goes through here, so that an update can be undone. */
int cg_write_path(struct cgroup *cg, const char *path, const char *value, size_t len, struct shim_err *err)
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

int cg_write(struct cgroup *cg, const char *c, const char *file, const char *value, const char *field, struct shim_err *err)
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

int cg_writef(struct cgroup *cg, const char *c, const char *file, const char *field, struct shim_err *err,
                     const char *fmt, ...)
{
  char buf[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  return cg_write(cg, c, file, buf, field, err);
}

bool cg_has_file(struct cgroup *cg, const char *c, const char *file)
{
  char path[PATH_MAX + 64];
  const char *dir = dir_for(cg, c);
  if (!dir)
    return false;
  snprintf(path, sizeof(path), "%s/%s", dir, file);
  return path_exists(path);
}

/* Contents of a controller file, or NULL. */
char *cg_read(struct cgroup *cg, const char *c, const char *file)
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
bool cg_read_u64(struct cgroup *cg, const char *c, const char *file, uint64_t *out)
{
  cleanup_free char *text = cg_read(cg, c, file);
  if (!text)
    return false;
  *out = strncmp(text, "max", 3) == 0 ? UINT64_MAX : strtoull(text, NULL, 10);
  return true;
}

/* Value of "key N" in a flat-keyed file (memory.stat, cpu.stat, memory.events). */
bool cg_read_key(struct cgroup *cg, const char *c, const char *file, const char *key, uint64_t *out)
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
