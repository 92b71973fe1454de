/* test_cgroup.c: the cgroupfs driver on this host (v1, hybrid or v2): create
 * with limits, placement, stats, update, signal, OOM, destroy, validation; and,
 * on a hybrid host, the pure-v2 paths (BPF device filter included) by running
 * again in a private mount namespace with cgroup2 on /sys/fs/cgroup. */
#include "harness.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MiB (1024 * 1024)

static char g_top[64];   /* "/skiff-test-<pid>": parent of every test cgroup */
static char g_tmp[128];  /* temp dir holding device nodes */
static pid_t g_kids[64]; /* processes to kill on the way out */
static size_t g_nkids;
static bool g_in_v2_child;

static void sleep_ms(long ms)
{
  struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
  nanosleep(&ts, NULL);
}

static double mono_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A control file's contents without the trailing newline, or "<missing>". */
static char *cat(const char *dir, const char *file)
{
  char path[PATH_MAX];
  char *text = NULL;
  struct shim_err err;
  if (!dir)
    return strdup("<no dir>");
  snprintf(path, sizeof(path), "%s/%s", dir, file);
  if (read_file(path, &text, NULL, 1 << 20, &err) < 0)
    return strdup("<missing>");
  text[strcspn(text, "\n")] = '\0';
  return text;
}

static bool file_is(const char *dir, const char *file, const char *want)
{
  char *got = cat(dir, file);
  bool ok = strcmp(got, want) == 0;
  if (!ok)
    printf("# %s/%s: got \"%s\", want \"%s\"\n", dir ? dir : "(null)", file, got, want);
  free(got);
  return ok;
}

static bool has_word(const char *path, const char *word)
{
  char *text = NULL;
  struct shim_err err;
  bool found = false;
  if (read_file(path, &text, NULL, 1 << 16, &err) < 0)
    return false;
  for (char *save = NULL, *t = strtok_r(text, " \n", &save); t; t = strtok_r(NULL, " \n", &save))
    found = found || strcmp(t, word) == 0;
  free(text);
  return found;
}

static bool is_dir(const char *path)
{
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* stats.psi and stats.io against what the test reads itself: psi is an object where the
 * cgroup has a cgroup2 dir with pressure files (each total no later than the file's now),
 * else null; io is a device list where the cgroup has io.stat or blkio files, else null. */
static void check_psi_io(struct cgroup *cg, json_t *stats, const char *what)
{
  static const char *const res[] = { "cpu", "memory", "io" };
  const char *v2dir = cgroup_dir(cg, ""), *blkio = cgroup_dir(cg, "blkio");
  char path[PATH_MAX + 32];
  json_t *psi = json_object_get(stats, "psi"), *io = json_object_get(stats, "io");
  bool has_psi;
  snprintf(path, sizeof(path), "%s/cpu.pressure", v2dir ? v2dir : "/nonexistent");
  has_psi = v2dir && access(path, R_OK) == 0;
  check(has_psi ? json_is_object(psi) : json_is_null(psi), "%s: psi %s (the cgroup %s cpu.pressure)", what,
        has_psi ? "reported" : "null", has_psi ? "has" : "has no");
  for (size_t i = 0; has_psi && i < 3; i++) {
    char file[32], *text;
    snprintf(file, sizeof(file), "%s.pressure", res[i]);
    text = cat(v2dir, file); /* its first line: "some ..." */
    json_t *now = cgstat_pressure_json(text), *got = json_object_get(json_object_get(psi, res[i]), "some");
    check(now && got
              && json_integer_value(json_object_get(got, "totalUs")) <= json_integer_value(json_object_get(json_object_get(now, "some"), "totalUs")),
          "%s: psi.%s.some matches %s.pressure read afterwards", what, res[i], res[i]);
    json_decref(now);
    free(text);
  }
  snprintf(path, sizeof(path), "%s/blkio.throttle.io_service_bytes", blkio ? blkio : "/nonexistent");
  if (blkio && access(path, R_OK) != 0)
    snprintf(path, sizeof(path), "%s/io.stat", blkio);
  check(blkio && access(path, R_OK) == 0 ? json_is_array(json_object_get(io, "devices")) : json_is_null(io), "%s: io %s (%s)", what,
        json_is_null(io) ? "null" : "a device list", blkio ? path : "no blkio/io cgroup");
}

/* ---- cgroup roots, as the test sees them independently of cgroup.c ---------- */

static size_t roots(char out[][PATH_MAX], size_t max)
{
  size_t n = 0;
  DIR *d;
  struct dirent *e;
  if (access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0) {
    snprintf(out[0], PATH_MAX, "/sys/fs/cgroup");
    return 1;
  }
  if (!(d = opendir("/sys/fs/cgroup")))
    return 0;
  while ((e = readdir(d)) && n < max) {
    char p[PATH_MAX];
    struct stat st;
    if (e->d_name[0] == '.')
      continue;
    snprintf(p, sizeof(p), "/sys/fs/cgroup/%s", e->d_name);
    if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
      snprintf(out[n++], PATH_MAX, "%s", p);
  }
  closedir(d);
  return n;
}

/* How many hierarchies hold rel (a path like /skiff-test-1/c1). */
static size_t count_dirs(const char *rel, bool report)
{
  char r[16][PATH_MAX], p[PATH_MAX * 2];
  size_t n = roots(r, 16), found = 0;
  for (size_t i = 0; i < n; i++) {
    snprintf(p, sizeof(p), "%s%s", r[i], rel);
    if (is_dir(p)) {
      found++;
      if (report)
        printf("# still there: %s\n", p);
    }
  }
  return found;
}

/* Kill what is in dir's tree, thaw it, rmdir it deepest first. */
static void wipe(const char *dir)
{
  DIR *d = opendir(dir);
  struct dirent *e;
  char p[PATH_MAX];
  char *procs;
  if (!d)
    return;
  while ((e = readdir(d))) {
    if (e->d_type == DT_DIR && strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
      snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
      wipe(p);
    }
  }
  closedir(d);
  procs = cat(dir, "cgroup.procs");
  for (char *save = NULL, *t = strtok_r(procs, "\n", &save); t; t = strtok_r(NULL, "\n", &save))
    if (atoi(t) > 0)
      kill(atoi(t), SIGKILL);
  free(procs);
  snprintf(p, sizeof(p), "%s/freezer.state", dir);
  if (access(p, F_OK) == 0) {
    struct shim_err err;
    write_file(p, "THAWED", 6, 0, &err);
  }
  for (int i = 0; i < 200 && rmdir(dir) < 0 && errno == EBUSY; i++)
    sleep_ms(10);
}

static void cleanup(void)
{
  char r[16][PATH_MAX], p[PATH_MAX * 2];
  size_t n;
  for (size_t i = 0; i < g_nkids; i++)
    if (g_kids[i] > 0) {
      kill(g_kids[i], SIGKILL);
      waitpid(g_kids[i], NULL, 0);
    }
  g_nkids = 0;
  if (g_in_v2_child)
    return; /* the parent wipes the shared hierarchy */
  n = roots(r, 16);
  for (size_t i = 0; i < n; i++) {
    snprintf(p, sizeof(p), "%s%s", r[i], g_top);
    wipe(p);
  }
  if (g_tmp[0]) {
    char q[256];
    const char *nodes[] = { "kmsg", "port", "mem" };
    for (size_t i = 0; i < 3; i++) {
      snprintf(q, sizeof(q), "%s/%s", g_tmp, nodes[i]);
      unlink(q);
    }
    rmdir(g_tmp);
    g_tmp[0] = '\0';
  }
}

static void on_alarm(int sig)
{
  (void) sig;
  printf("not ok - the test timed out\n");
  cleanup();
  _exit(1);
}

/* ---- child processes --------------------------------------------------------- */

struct kid {
  pid_t pid;
  int go;      /* write a byte to let it run */
  int ready;   /* it writes here when its work is done (a pid, or "1") */
  bool joined; /* it joined the cgroup it was spawned into */
};

/* Fork a process that joins cg (NULL: none) as the shim's processes do (born in its
 * cgroup2 group, moving itself into the v1 ones, through files this process opened),
 * then waits until go, runs fn and exits with its result. */
static struct kid spawn_kid_in(struct cgroup *cg, int (*fn)(int ready_fd, void *arg), void *arg)
{
  struct kid k = { -1, -1, -1, false };
  struct cgroup_join join;
  struct shim_err err;
  int go[2], ready[2];
  bool in_v2;
  char joined = 0;
  if (pipe2(go, O_CLOEXEC) < 0 || pipe2(ready, O_CLOEXEC) < 0)
    return k;
  cgroup_join_init(&join);
  if (cg && cgroup_join_open(cg, &join, &err) < 0)
    printf("# open the cgroup to join: %s\n", err.msg);
  fflush(stdout);
  k.pid = clone_child(0, join.v2_dir, &in_v2);
  if (k.pid == 0) {
    char c;
    close(go[1]);
    close(ready[0]);
    if (cg) {
      c = join.cg && cgroup_join_self(&join, in_v2, &err) == 0 ? 1 : 0;
      if (!c)
        printf("# join the cgroup: %s\n", join.cg ? err.msg : "not opened");
      if (write(ready[1], &c, 1) != 1)
        _exit(97);
    }
    if (read(go[0], &c, 1) != 1)
      _exit(99);
    _exit(fn(ready[1], arg));
  }
  cgroup_join_close(&join);
  close(go[0]);
  close(ready[1]);
  k.go = go[1];
  k.ready = ready[0];
  k.joined = !cg || (k.pid > 0 && read(k.ready, &joined, 1) == 1 && joined);
  if (k.pid > 0 && g_nkids < sizeof(g_kids) / sizeof(g_kids[0]))
    g_kids[g_nkids++] = k.pid;
  return k;
}

static void kid_go(struct kid *k)
{
  if (write(k->go, "x", 1) != 1)
    perror("kid go");
  close(k->go);
  k->go = -1;
}

/* What the kid reported (0 if it died first). */
static long kid_ready(struct kid *k)
{
  char buf[32] = "";
  ssize_t n = read(k->ready, buf, sizeof(buf) - 1);
  if (n > 0)
    buf[n] = '\0';
  return n > 0 ? atol(buf) : 0;
}

/* Reap; returns the terminating signal, or 1000 + exit code. */
static int kid_wait(struct kid *k)
{
  int status = 0;
  while (waitpid(k->pid, &status, 0) < 0 && errno == EINTR)
    ;
  for (size_t i = 0; i < g_nkids; i++)
    if (g_kids[i] == k->pid)
      g_kids[i] = -1;
  if (k->ready >= 0)
    close(k->ready);
  if (k->go >= 0)
    close(k->go);
  return WIFSIGNALED(status) ? WTERMSIG(status) : 1000 + WEXITSTATUS(status);
}

static int kid_sleep(int ready, void *arg)
{
  (void) arg;
  if (write(ready, "1", 1) != 1)
    return 1;
  for (;;)
    pause();
}

/* How long stats_after_cpu waits for the CPU a kid used to show in its cgroup. */
#define CPU_SHOWS_WITHIN_S 30

/* The cgroup's stats once they show at least min_ns of CPU use: the kid that spun for it
 * has reported, but a loaded machine may charge its last slices to the cgroup later.
 * Polls up to CPU_SHOWS_WITHIN_S and returns the last stats (NULL if reading failed). */
static json_t *stats_after_cpu(struct cgroup *cg, json_int_t min_ns, struct shim_err *err)
{
  double deadline = mono_s() + CPU_SHOWS_WITHIN_S;
  json_t *stats = NULL;
  for (;;) {
    if (cgroup_stats(cg, &stats, err) < 0)
      return NULL;
    if (json_integer_value(json_object_get(json_object_get(stats, "cpu"), "usageNs")) >= min_ns || mono_s() > deadline)
      return stats;
    json_decref(stats);
    stats = NULL;
    sleep_ms(10);
  }
}

/* Burn some CPU and touch 8 MiB, then wait to be killed. */
static int kid_exit(int ready, void *arg)
{
  (void) ready;
  (void) arg;
  return 0;
}

static int count_hier(void *ctx, const char *name, const char *host_dir);

struct clone3_case {
  struct cgroup *cg;
  const char *rel;
};

/* In a child with clone3 filtered out: spawn a kid into the cgroup, and check that
 * /proc/<kid>/cgroup names it in as many hierarchies as the cgroup has. */
static int join_without_clone3(int fd, void *arg)
{
  const struct clone3_case *c = arg;
  struct seccomp_filter *f = NULL;
  struct shim_err err;
  char procfile[64];
  cleanup_free char *text = NULL;
  size_t lines = 0, dirs = 0;
  struct kid k;
  json_t *p = test_json("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"clone3\"],"
                        "\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":38}]}");
  if (seccomp_parse(p, &f, &err) < 0 || seccomp_apply(f, &err) < 0) {
    dprintf(fd, "filter: %s", err.msg);
    return 1;
  }
  k = spawn_kid_in(c->cg, kid_exit, NULL);
  snprintf(procfile, sizeof(procfile), "/proc/%d/cgroup", (int) k.pid);
  if (k.pid > 0 && read_file(procfile, &text, NULL, 1 << 16, &err) == 0)
    for (char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
      lines += strncmp(strchr(l, ':') ? strchr(strchr(l, ':') + 1, ':') + 1 : l, c->rel, strlen(c->rel)) == 0;
  cgroup_foreach_hierarchy(c->cg, count_hier, &dirs, &err);
  kid_go(&k);
  kid_wait(&k);
  if (!k.joined || dirs == 0 || lines != dirs) {
    dprintf(fd, "joined %d, named in %zu of %zu hierarchies: %s", k.joined, lines, dirs, text ? text : "");
    return 1;
  }
  return 0;
}

static int kid_work(int ready, void *arg)
{
  volatile unsigned long x = 0;
  char *mem = malloc(8 * MiB);
  struct timespec cpu = { 0, 0 };
  (void) arg;
  /* 100 ms of its own CPU time, however busy the machine (a wall-clock spin got less
   * than the 50 ms the stats checks expect on a loaded host). */
  while (cpu.tv_sec == 0 && cpu.tv_nsec < 100000000L) {
    x++;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu);
  }
  if (!mem)
    return 1;
  memset(mem, 1, 8 * MiB);
  if (write(ready, "1", 1) != 1)
    return 1;
  for (;;)
    pause();
}

/* Fork a grandchild (same cgroup), report its pid, wait to be killed. */
static int kid_forker(int ready, void *arg)
{
  char buf[32];
  pid_t g = fork();
  (void) arg;
  if (g == 0) {
    for (;;)
      pause();
  }
  snprintf(buf, sizeof(buf), "%d", (int) g);
  if (write(ready, buf, strlen(buf)) < 0)
    return 1;
  for (;;)
    pause();
}

/* Allocate and touch 64 MiB. */
static int kid_hog(int ready, void *arg)
{
  (void) ready;
  (void) arg;
  for (int i = 0; i < 64; i++) {
    char *p = malloc(MiB);
    if (!p)
      return 2;
    memset(p, i + 1, MiB);
  }
  return 0;
}

/* Device access inside a device-filtered cgroup; returns a bitmask of the
 * outcomes that differ from what the rules in arg ("strict" or "loose")
 * should give. strict: deny all, allow c 1:11 r, allow c 1:4 m.
 * loose: allow all, deny c 1:11 w. */
static int kid_devices(int ready, void *arg)
{
  bool strict = strcmp((const char *) arg, "strict") == 0;
  char kmsg[256], port[256], mem[256];
  int bad = 0, fd;
  (void) ready;
  snprintf(kmsg, sizeof(kmsg), "%s/kmsg", g_tmp);
  snprintf(port, sizeof(port), "%s/port", g_tmp);
  snprintf(mem, sizeof(mem), "%s/mem", g_tmp);
  unlink(port);
  unlink(mem);
  fd = open(kmsg, O_RDONLY | O_NONBLOCK);
  if (fd < 0)
    bad |= 1; /* read allowed in both */
  else
    close(fd);
  fd = open(kmsg, O_WRONLY);
  if (fd >= 0 || errno != EPERM)
    bad |= 2; /* write denied in both */
  if (fd >= 0)
    close(fd);
  fd = open(kmsg, O_RDWR);
  if (fd >= 0 || errno != EPERM)
    bad |= 4; /* read+write: the write bit is denied */
  if (fd >= 0)
    close(fd);
  fd = open("/dev/null", O_RDWR);
  if (fd < 0)
    bad |= 8; /* a default device */
  else
    close(fd);
  if (mknod(port, S_IFCHR | 0600, makedev(1, 4)) < 0)
    bad |= 16; /* mknod of 1:4 allowed in both */
  if (strict) {
    if (mknod(mem, S_IFCHR | 0600, makedev(1, 1)) == 0 || errno != EPERM)
      bad |= 32;
  } else if (mknod(mem, S_IFCHR | 0600, makedev(1, 1)) < 0) {
    bad |= 32;
  }
  return bad;
}

static int run_devices(struct cgroup *cg, const char *mode)
{
  struct kid k = spawn_kid_in(cg, kid_devices, (void *) mode);
  int r;
  if (!k.joined) {
    kid_go(&k);
    kid_wait(&k);
    return -1;
  }
  kid_go(&k);
  r = kid_wait(&k);
  return r >= 1000 ? r - 1000 : -r;
}

/* ---- linux.resources JSON, parsed as the shim takes it from a spec or a request ---- */

static int validate(json_t *res, struct shim_err *err)
{
  cleanup_resources struct resources r = { 0 };
  return resources_parse(res, &r, err);
}

static int create(const char *path, json_t *res, struct cgroup **out, struct shim_err *err)
{
  cleanup_resources struct resources r = { 0 };
  if (resources_parse(res, &r, err) < 0)
    return -1;
  return cgroup_create(path, &r, out, err);
}

static int update(struct cgroup *cg, json_t *res, struct shim_err *err)
{
  cleanup_resources struct resources r = { 0 };
  if (resources_parse(res, &r, err) < 0)
    return -1;
  return cgroup_update(cg, &r, err);
}

/* ---- validation ------------------------------------------------------------- */

static void expect_invalid(const char *resources, const char *field)
{
  json_t *r = test_json(resources);
  struct shim_err err = { 0 };
  int rc = validate(r, &err);
  check(rc < 0 && err.code == SHIM_INVALID_ARGUMENT && strstr(err.msg, field), "validate refuses %s (%s)", resources,
        rc < 0 ? err.msg : "accepted");
  json_decref(r);
}

static void test_validation(void)
{
  struct shim_err err;
  json_t *ok = test_json("{\"cpu\": {\"shares\": 1024, \"quota\": 50000, \"period\": 100000, \"cpus\": \"0-3,5\", \"mems\": \"0\","
                 " \"realtimeRuntime\": 0, \"realtimePeriod\": 0, \"idle\": 0},"
                 " \"memory\": {\"limit\": 67108864, \"reservation\": 33554432, \"swap\": 67108864, \"kernel\": -1,"
                 " \"swappiness\": 1.8446744073709552e19, \"disableOOMKiller\": false},"
                 " \"pids\": {\"limit\": -1}, \"hugepageLimits\": [{\"pageSize\": \"2MB\", \"limit\": 0}],"
                 " \"blockIO\": {\"weight\": 500},"
                 " \"devices\": [{\"allow\": false, \"access\": \"rwm\"}, {\"allow\": true, \"type\": \"c\", \"major\": 1, \"minor\": -1, \"access\": \"rw\"}],"
                 " \"unified\": {\"memory.high\": \"max\"}}");
  check(validate(ok, &err) == 0, "validate accepts a full, well-formed resources object");
  json_decref(ok);
  check(validate(NULL, &err) == 0, "validate accepts absent resources");
  ok = test_json("{\"cpu\": {\"quota\": -1, \"shares\": 0, \"period\": 0}, \"memory\": {\"limit\": -1}}");
  check(validate(ok, &err) == 0, "validate accepts quota -1 and 0 for unset values");
  json_decref(ok);
  expect_invalid("[]", "linux.resources: must be an object");
  expect_invalid("{\"cpu\": {\"shares\": 1}}", "linux.resources.cpu.shares");
  expect_invalid("{\"cpu\": {\"shares\": 300000}}", "linux.resources.cpu.shares");
  expect_invalid("{\"cpu\": {\"shares\": \"512\"}}", "linux.resources.cpu.shares");
  expect_invalid("{\"cpu\": {\"period\": 5}}", "linux.resources.cpu.period");
  expect_invalid("{\"cpu\": {\"period\": 2000000}}", "linux.resources.cpu.period");
  expect_invalid("{\"cpu\": {\"quota\": 500}}", "linux.resources.cpu.quota");
  expect_invalid("{\"cpu\": {\"quota\": -2}}", "linux.resources.cpu.quota");
  expect_invalid("{\"cpu\": {\"cpus\": \"3-1\"}}", "linux.resources.cpu.cpus");
  expect_invalid("{\"cpu\": {\"cpus\": \"0,,1\"}}", "linux.resources.cpu.cpus");
  expect_invalid("{\"cpu\": {\"cpus\": \"a\"}}", "linux.resources.cpu.cpus");
  expect_invalid("{\"cpu\": {\"mems\": \"0-\"}}", "linux.resources.cpu.mems");
  expect_invalid("{\"cpu\": {\"idle\": 2}}", "linux.resources.cpu.idle");
  expect_invalid("{\"cpu\": {\"realtimeRuntime\": 2000, \"realtimePeriod\": 1000}}", "linux.resources.cpu.realtimeRuntime");
  expect_invalid("{\"memory\": {\"limit\": -2}}", "linux.resources.memory.limit");
  expect_invalid("{\"memory\": {\"limit\": \"1G\"}}", "linux.resources.memory.limit: must be an integer");
  expect_invalid("{\"memory\": {\"limit\": 67108864, \"swap\": 33554432}}", "linux.resources.memory.swap");
  expect_invalid("{\"memory\": {\"swappiness\": 101}}", "linux.resources.memory.swappiness");
  expect_invalid("{\"memory\": {\"disableOOMKiller\": 1}}", "linux.resources.memory.disableOOMKiller");
  expect_invalid("{\"pids\": {\"limit\": -5}}", "linux.resources.pids.limit");
  expect_invalid("{\"hugepageLimits\": [{\"pageSize\": \"2XB\", \"limit\": 1}]}", "linux.resources.hugepageLimits[0].pageSize");
  expect_invalid("{\"hugepageLimits\": [{\"pageSize\": \"2MB\"}]}", "linux.resources.hugepageLimits[0].limit");
  expect_invalid("{\"devices\": [{\"allow\": true}, {\"allow\": true, \"type\": \"x\"}]}", "linux.resources.devices[1].type");
  expect_invalid("{\"devices\": [{\"allow\": true, \"access\": \"rwx\"}]}", "linux.resources.devices[0].access");
  expect_invalid("{\"devices\": [{\"allow\": true, \"access\": \"\"}]}", "linux.resources.devices[0].access");
  expect_invalid("{\"devices\": [{\"type\": \"c\"}]}", "linux.resources.devices[0].allow");
  expect_invalid("{\"devices\": [{\"allow\": true, \"type\": \"c\", \"major\": -3}]}", "linux.resources.devices[0].major");
  expect_invalid("{\"devices\": [{\"allow\": true, \"type\": \"c\", \"minor\": 4294967296}]}", "linux.resources.devices[0].minor");
  expect_invalid("{\"devices\": {}}", "linux.resources.devices");
  expect_invalid("{\"blockIO\": {\"weight\": 5}}", "linux.resources.blockIO.weight");
  expect_invalid("{\"unified\": {\"../memory.max\": \"1\"}}", "linux.resources.unified");
  expect_invalid("{\"unified\": {\"a/memory.max\": \"1\"}}", "linux.resources.unified");
  expect_invalid("{\"unified\": {\"memory.max\": 1}}", "linux.resources.unified[\"memory.max\"]");
}

/* ---- the host's own cgroups ---------------------------------------------------- */

static int count_hier(void *ctx, const char *name, const char *host_dir)
{
  size_t *n = ctx;
  (*n)++;
  if (!is_dir(host_dir) || !strstr(host_dir, g_top))
    printf("# odd hierarchy %s at %s\n", name, host_dir);
  return is_dir(host_dir) ? 0 : -1;
}

static int make_sub(void *ctx, const char *name, const char *host_dir)
{
  char p[PATH_MAX];
  (void) ctx;
  (void) name;
  snprintf(p, sizeof(p), "%s/sub", host_dir);
  mkdir(p, 0755);
  /* A v1 cpuset child needs cpus/mems before it can hold tasks. */
  if (access("/sys/fs/cgroup/cpuset", F_OK) == 0 && strstr(host_dir, "cpuset")) {
    char *cpus = cat(host_dir, "cpuset.cpus"), *mems = cat(host_dir, "cpuset.mems"), f[PATH_MAX];
    struct shim_err err;
    snprintf(f, sizeof(f), "%s/cpuset.cpus", p);
    write_file(f, cpus, strlen(cpus), 0, &err);
    snprintf(f, sizeof(f), "%s/cpuset.mems", p);
    write_file(f, mems, strlen(mems), 0, &err);
    free(cpus);
    free(mems);
  }
  return 0;
}

static pid_t g_move_pid;
static int move_to_sub(void *ctx, const char *name, const char *host_dir)
{
  char p[PATH_MAX], buf[32];
  struct shim_err err;
  size_t *moved = ctx;
  (void) name;
  snprintf(p, sizeof(p), "%s/sub/cgroup.procs", host_dir);
  snprintf(buf, sizeof(buf), "%d", (int) g_move_pid);
  if (write_file(p, buf, strlen(buf), 0, &err) == 0)
    (*moved)++;
  return 0;
}

static bool hugetlb_2mb_available(void)
{
  if (access("/sys/kernel/mm/hugepages/hugepages-2048kB", F_OK) < 0)
    return false;
  return has_word("/sys/fs/cgroup/unified/cgroup.controllers", "hugetlb") || has_word("/sys/fs/cgroup/cgroup.controllers", "hugetlb")
         || access("/sys/fs/cgroup/hugetlb", F_OK) == 0;
}

static void test_host(void)
{
  char path[256], rel[256], buf[4096];
  struct shim_err err;
  struct cgroup *c1 = NULL, *c2 = NULL, *c3 = NULL, *c4 = NULL, *opened = NULL;
  json_t *res, *stats = NULL;
  bool v2 = cgroup_is_v2_only(), hybrid = !v2 && has_word("/sys/fs/cgroup/unified/cgroup.controllers", "hugetlb");
  bool huge = hugetlb_2mb_available();
  struct kid k;
  int sig;

  printf("# host: %s%s\n", v2 ? "cgroup v2" : hybrid ? "hybrid" : "cgroup v1", huge ? ", hugetlb 2MB" : "");

  /* Paths. */
  check(create("/a/../b", NULL, &c1, &err) < 0 && strstr(err.msg, "linux.cgroupsPath"), "a cgroupsPath with .. is refused");
  check(create("system.slice:skiff:x", NULL, &c1, &err) < 0 && strstr(err.msg, "systemd"), "a systemd cgroupsPath is refused");
  check(create("//", NULL, &c1, &err) < 0 && strstr(err.msg, "root cgroup"), "the root cgroup is refused");
  snprintf(path, sizeof(path), "%s/nosuch", g_top);
  check(cgroup_open(path, &opened, &err) < 0 && err.code == SHIM_NOT_FOUND, "open of a missing cgroup is NOT_FOUND");

  /* Create with limits. */
  snprintf(buf, sizeof(buf),
           "{\"cpu\": {\"shares\": 512, \"quota\": 50000, \"period\": 100000, \"cpus\": \"0\", \"mems\": \"0\"},"
           " \"memory\": {\"limit\": %d, \"swap\": %d}, \"pids\": {\"limit\": 32}, \"blockIO\": {\"weight\": 500}%s}",
           64 * MiB, 64 * MiB, huge ? ", \"hugepageLimits\": [{\"pageSize\": \"2MB\", \"limit\": 4194304}]" : "");
  res = test_json(buf);
  snprintf(rel, sizeof(rel), "%s/c1", g_top);
  check_rc(create(rel + 1 /* relative: under the root too */, res, &c1, &err), &err, "create %s with limits", rel);
  json_decref(res);
  if (!c1)
    return;
  {
    const char *mem = cgroup_dir(c1, "memory"), *cpu = cgroup_dir(c1, "cpu"), *pids = cgroup_dir(c1, "pids");
    const char *cpuset = cgroup_dir(c1, "cpuset");
    size_t nh = 0;
    check(mem && strstr(mem, rel) && is_dir(mem), "cgroup_dir(memory) is the cgroup's directory (%s)", mem ? mem : "null");
    if (v2) {
      char w[32];
      snprintf(w, sizeof(w), "%d", 64 * MiB);
      check(file_is(mem, "memory.max", w), "memory.max is the limit");
      check(file_is(mem, "memory.swap.max", "0") || access("/sys/fs/cgroup/memory.swap.max", F_OK) < 0,
            "memory.swap.max is swap - limit");
      check(file_is(cpu, "cpu.weight", "20"), "cpu.weight is converted from shares 512");
      check(file_is(cpu, "cpu.max", "50000 100000"), "cpu.max is quota and period");
      check(file_is(cgroup_dir(c1, ""), "cgroup.procs", ""), "cgroup_dir(\"\") is the v2 dir");
    } else {
      char w[32], top[PATH_MAX];
      char *root_cpus = cat("/sys/fs/cgroup/cpuset", "cpuset.cpus");
      snprintf(w, sizeof(w), "%d", 64 * MiB);
      check(file_is(mem, "memory.limit_in_bytes", w), "memory.limit_in_bytes is the limit");
      if (access("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes", F_OK) == 0)
        check(file_is(mem, "memory.memsw.limit_in_bytes", w), "memory.memsw.limit_in_bytes is the memory+swap total");
      check(file_is(cpu, "cpu.shares", "512"), "cpu.shares");
      check(file_is(cpu, "cpu.cfs_quota_us", "50000") && file_is(cpu, "cpu.cfs_period_us", "100000"), "cpu.cfs_quota_us and period");
      snprintf(top, sizeof(top), "/sys/fs/cgroup/cpuset%s", g_top);
      check(file_is(top, "cpuset.cpus", root_cpus), "a new v1 cpuset level gets its parent's cpus");
      if (file_is("/sys/fs/cgroup/cpuset", "cpuset.sched_load_balance", "1"))
        check(file_is(top, "cpuset.sched_load_balance", "0") && file_is(cpuset, "cpuset.sched_load_balance", "0"),
              "new cpuset levels under a balancing root do not balance themselves (no domain rebuild)");
      free(root_cpus);
      snprintf(top, sizeof(top), "/sys/fs/cgroup/systemd%s", rel);
      if (is_dir("/sys/fs/cgroup/systemd"))
        check(is_dir(top), "the name=systemd hierarchy gets the cgroup too");
    }
    check(file_is(cpuset, "cpuset.cpus", "0") && file_is(cpuset, "cpuset.mems", "0"), "cpuset.cpus and cpuset.mems");
    check(file_is(pids, "pids.max", "32"), "pids.max");
    if (huge)
      check(file_is(cgroup_dir(c1, "hugetlb"), "hugetlb.2MB.max", "4194304")
                || file_is(cgroup_dir(c1, "hugetlb"), "hugetlb.2MB.limit_in_bytes", "4194304"),
            "hugetlb 2MB limit written (%s)", cgroup_dir(c1, "hugetlb"));
    if (hybrid)
      check(cgroup_dir(c1, "hugetlb") && strncmp(cgroup_dir(c1, "hugetlb"), "/sys/fs/cgroup/unified/", 23) == 0,
            "on a hybrid host hugetlb lives on the unified mount");
    int rc = cgroup_foreach_hierarchy(c1, count_hier, &nh, &err);
    check(rc == 0 && nh == count_dirs(rel, false), "foreach_hierarchy visits every hierarchy holding the cgroup (%zu)", nh);
  }

  /* cgroup_open finds the same directories. */
  check(cgroup_open(rel, &opened, &err) == 0 && strcmp(cgroup_dir(opened, "memory"), cgroup_dir(c1, "memory")) == 0,
        "cgroup_open finds an existing cgroup");

  /* A process in it, and stats. */
  k = spawn_kid_in(opened ? opened : c1, kid_work, NULL);
  check(k.joined, "a process joins it by itself (through the opened cgroup)");
  cgroup_free(opened);
  opened = NULL;
  kid_go(&k);
  kid_ready(&k);
  {
    pid_t *pids = NULL;
    size_t n = 0;
    char procfile[64], *text = NULL;
    check(cgroup_pids(c1, &pids, &n, &err) == 0 && n == 1 && pids[0] == k.pid, "cgroup_pids lists the process");
    free(pids);
    snprintf(procfile, sizeof(procfile), "/proc/%d/cgroup", (int) k.pid);
    if (read_file(procfile, &text, NULL, 1 << 16, &err) == 0) {
      check(strstr(text, rel) != NULL, "/proc/<pid>/cgroup names the cgroup");
      free(text);
    }
  }
  stats = stats_after_cpu(c1, 50 * 1000000LL, &err);
  check(stats != NULL, "stats%s%s", stats ? "" : ": ", stats ? "" : err.msg);
  if (stats) {
    json_int_t usage = json_integer_value(json_object_get(json_object_get(stats, "cpu"), "usageNs"));
    json_int_t user = json_integer_value(json_object_get(json_object_get(stats, "cpu"), "userNs"));
    json_int_t sys = json_integer_value(json_object_get(json_object_get(stats, "cpu"), "systemNs"));
    json_t *mem = json_object_get(stats, "memory"), *pids = json_object_get(stats, "pids");
    char *dump = json_dumps(stats, JSON_COMPACT);
    printf("# %s\n", dump);
    free(dump);
    check(json_integer_value(json_object_get(stats, "timestamp")) > 0, "stats: timestamp");
    check(usage >= 50 * 1000000LL && user >= 0 && sys >= 0 && user + sys <= usage + 200 * 1000000LL, "stats: cpu times are sane");
    check(json_integer_value(json_object_get(mem, "usageBytes")) >= 8 * MiB
              && json_integer_value(json_object_get(mem, "workingSetBytes")) <= json_integer_value(json_object_get(mem, "usageBytes")),
          "stats: memory usage and working set");
    check(json_integer_value(json_object_get(mem, "rssBytes")) >= 8 * MiB && json_integer_value(json_object_get(mem, "pageFaults")) > 0,
          "stats: rss and page faults");
    check(json_integer_value(json_object_get(mem, "limitBytes")) == 64 * MiB, "stats: memory limit");
    check(json_integer_value(json_object_get(pids, "current")) == 1 && json_integer_value(json_object_get(pids, "limit")) == 32,
          "stats: pids");
    check_psi_io(c1, stats, "stats");
    {
      /* podStats reads the infra cgroup's parent: the pod's, never the root. */
      struct cgroup *parent = NULL, *top = NULL, *root = NULL;
      const char *mine = cgroup_dir(c1, "memory");
      const char *theirs = cgroup_open_parent(c1, &parent, &err) == 0 ? cgroup_dir(parent, "memory") : NULL;
      check(theirs && strncmp(theirs, mine, strlen(theirs)) == 0 && strcmp(mine + strlen(theirs), strrchr(mine, '/')) == 0,
            "cgroup_open_parent opens the parent (%s)", theirs ? theirs : err.msg);
      check(cgroup_open(g_top, &top, &err) == 0 && cgroup_open_parent(top, &root, &err) < 0 && err.code == SHIM_FAILED_PRECONDITION,
            "cgroup_open_parent refuses the root cgroup (%s)", err.msg);
      cgroup_free(parent);
      cgroup_free(top);
      cgroup_free(root);
    }
    json_decref(stats);
    stats = NULL;
  }

  /* Updates. */
  {
    const char *mem = cgroup_dir(c1, "memory"), *cpu = cgroup_dir(c1, "cpu");
    char w[32];
    res = test_json("{\"memory\": {\"limit\": 134217728, \"swap\": 134217728}, \"pids\": {\"limit\": 16}, \"cpu\": {\"quota\": -1}}");
    check(update(c1, res, &err) == 0 && file_is(cgroup_dir(c1, "pids"), "pids.max", "16")
              && file_is(mem, v2 ? "memory.max" : "memory.limit_in_bytes", "134217728"),
          "update raises the memory limit (memory+swap first) and changes pids");
    json_decref(res);
    check(v2 ? file_is(cpu, "cpu.max", "max 100000") : file_is(cpu, "cpu.cfs_quota_us", "-1"), "update quota -1 removes the cpu limit");
    snprintf(w, sizeof(w), "%d", 48 * MiB);
    snprintf(buf, sizeof(buf), "{\"memory\": {\"limit\": %d, \"swap\": %d}, \"cpu\": {\"period\": 200000}}", 48 * MiB, 48 * MiB);
    res = test_json(buf);
    if (check_rc(update(c1, res, &err), &err, "update lowers the memory limit (limit first)"))
      check(file_is(mem, v2 ? "memory.max" : "memory.limit_in_bytes", w), "the lowered limit is on disk");
    json_decref(res);
    check(v2 ? file_is(cpu, "cpu.max", "max 200000") : file_is(cpu, "cpu.cfs_period_us", "200000"), "update of the period alone");
    if (!v2 && access("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes", F_OK) == 0) {
      snprintf(buf, sizeof(buf), "{\"memory\": {\"limit\": %d}}", 96 * MiB);
      res = test_json(buf);
      check(update(c1, res, &err) < 0 && strstr(err.msg, "linux.resources.memory.limit") && strstr(err.msg, "swap"),
            "a limit above the current memory+swap limit is refused, naming swap");
      json_decref(res);
    }
    res = test_json("{\"cpu\": {\"shares\": 1}}");
    check(validate(res, &err) < 0 && strstr(err.msg, "cpu.shares"), "an update with bad shares is refused");
    json_decref(res);
    check(cgroup_stats(c1, &stats, &err) == 0
              && json_integer_value(json_object_get(json_object_get(stats, "memory"), "limitBytes")) == 48 * MiB
              && json_integer_value(json_object_get(json_object_get(stats, "pids"), "limit")) == 16,
          "stats show the updated limits");
    json_decref(stats);
    stats = NULL;

    /* All or nothing: cpu files are written before the hugepage limit the host
     * lacks is found; they get their old values back. */
    {
      cleanup_free char *shares = cat(cpu, v2 ? "cpu.weight" : "cpu.shares");
      cleanup_free char *quota = cat(cpu, v2 ? "cpu.max" : "cpu.cfs_quota_us");
      res = test_json("{\"cpu\": {\"shares\": 3000, \"quota\": 30000, \"period\": 100000}, \"hugepageLimits\": [{\"pageSize\": \"64KB\", \"limit\": 1}]}");
      check(update(c1, res, &err) < 0 && strstr(err.msg, "hugepageLimits[0]"), "an update that fails half-way fails (%s)", err.msg);
      json_decref(res);
      check(shares && quota && file_is(cpu, v2 ? "cpu.weight" : "cpu.shares", shares) && file_is(cpu, v2 ? "cpu.max" : "cpu.cfs_quota_us", quota),
            "... and leaves the cpu files as they were (%s, %s)", shares ? shares : "?", quota ? quota : "?");
    }
    /* v1 refuses a limit below the memory in use it cannot reclaim (8 MiB of
     * anonymous memory, no swap); v2 would OOM-kill instead. */
    if (!v2 && !has_word("/proc/swaps", "partition") && !has_word("/proc/swaps", "file")) {
      cleanup_free char *shares = cat(cpu, "cpu.shares");
      res = test_json("{\"cpu\": {\"shares\": 3000}, \"memory\": {\"limit\": 1048576, \"swap\": 1048576}}");
      check(update(c1, res, &err) < 0 && err.code == SHIM_INVALID_ARGUMENT && strstr(err.msg, "linux.resources.memory"),
            "a memory limit below the memory in use is refused as invalid (%s)", err.msg);
      json_decref(res);
      check(shares && file_is(cpu, "cpu.shares", shares) && file_is(mem, "memory.limit_in_bytes", w),
            "... and the cpu shares and memory limit are as they were");
    }
  }

  /* Unified files. */
  if (hybrid || v2) {
    if (huge) {
      res = test_json("{\"unified\": {\"hugetlb.2MB.max\": \"8388608\"}}");
      check(update(c1, res, &err) == 0 && file_is(cgroup_dir(c1, "hugetlb"), "hugetlb.2MB.max", "8388608"),
            "unified writes a cgroup2 file verbatim");
      json_decref(res);
      res = test_json("{\"hugepageLimits\": [{\"pageSize\": \"64KB\", \"limit\": 1}]}");
      check(update(c1, res, &err) < 0 && strstr(err.msg, "linux.resources.hugepageLimits[0].pageSize"),
            "a page size the host lacks is refused (%s)", err.msg);
      json_decref(res);
    }
    if (hybrid) {
      res = test_json("{\"unified\": {\"memory.high\": \"1\"}}");
      check(update(c1, res, &err) < 0 && strstr(err.msg, "unified[\"memory.high\"]") && strstr(err.msg, "v1"),
            "unified for a v1 controller is refused (%s)", err.msg);
      json_decref(res);
    }
  } else {
    res = test_json("{\"unified\": {\"memory.high\": \"1\"}}");
    check(update(c1, res, &err) < 0 && strstr(err.msg, "unified"), "unified on a v1-only host is refused");
    json_decref(res);
  }
  res = test_json("{\"unified\": {\"nosuch.file\": \"1\"}}");
  check(update(c1, res, &err) < 0 && strstr(err.msg, "unified[\"nosuch.file\"]"), "unified refuses a file that does not exist");
  json_decref(res);

  /* signal_all. */
  check(cgroup_signal_all(c1, SIGKILL, &err) == 0, "signal_all");
  sig = kid_wait(&k);
  check(sig == SIGKILL, "signal_all's SIGKILL reached the process (%d)", sig);
  {
    pid_t *pids = NULL;
    size_t n = 1;
    for (int i = 0; i < 100 && n; i++) {
      free(pids);
      pids = NULL;
      if (cgroup_pids(c1, &pids, &n, &err) < 0)
        break;
      if (n)
        sleep_ms(10);
    }
    free(pids);
    check(n == 0, "the cgroup is empty afterwards");
  }

  /* Without clone3 (a seccomp profile around the shim answering ENOSYS, as Docker's
   * default does), a process is forked and joins every hierarchy by itself. */
  {
    struct clone3_case cc = { c1, rel };
    char out[1024] = "";
    struct child_result cr;
    run_child(join_without_clone3, &cc, out, sizeof(out), &cr);
    check(cr.exit_code == 0, "without clone3 a process still joins every hierarchy (%s)", out);
  }

  /* Destroy with live processes, a grandchild and a child cgroup. */
  {
    struct kid a = spawn_kid_in(c1, kid_forker, NULL), b = spawn_kid_in(c1, kid_sleep, NULL);
    pid_t grandchild;
    size_t moved = 0;
    double t0;
    char top[PATH_MAX];
    kid_go(&a);
    kid_go(&b);
    grandchild = (pid_t) kid_ready(&a);
    kid_ready(&b);
    if (grandchild > 0 && g_nkids < sizeof(g_kids) / sizeof(g_kids[0]))
      g_kids[g_nkids++] = grandchild;
    cgroup_foreach_hierarchy(c1, make_sub, NULL, &err);
    g_move_pid = b.pid;
    cgroup_foreach_hierarchy(c1, move_to_sub, &moved, &err);
    check(moved > 0, "a process moved into a child cgroup (%zu hierarchies)", moved);
    {
      pid_t *pids = NULL;
      size_t n = 0;
      bool has_b = false;
      if (cgroup_pids(c1, &pids, &n, &err) == 0)
        for (size_t i = 0; i < n; i++)
          has_b = has_b || pids[i] == b.pid;
      free(pids);
      check(n == 3 && has_b, "cgroup_pids counts processes of child cgroups too (%zu)", n);
    }
    t0 = mono_s();
    int rc = cgroup_destroy(c1, &err);
    /* Its own deadline bounds the wait for the processes to die (rc says whether they
     * did); how long that took depends on the machine's load, so it is only reported. */
    check(rc == 0, "destroy with live processes and a child cgroup%s%s", rc ? ": " : "", rc ? err.msg : "");
    printf("# destroy took %.3f s\n", mono_s() - t0);
    check(count_dirs(rel, true) == 0, "destroy removed the cgroup from every hierarchy");
    snprintf(top, sizeof(top), "%s", g_top);
    check(count_dirs(top, false) > 0, "destroy left the parent");
    check(kid_wait(&a) == SIGKILL && kid_wait(&b) == SIGKILL, "destroy killed the processes");
    if (grandchild > 0) {
      int status = 0;
      check(waitpid(grandchild, &status, 0) == grandchild && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
            "destroy killed the grandchild");
      for (size_t i = 0; i < g_nkids; i++)
        if (g_kids[i] == grandchild)
          g_kids[i] = -1;
    }
    check(cgroup_destroy(c1, &err) == 0, "destroy again is a no-op");
    cgroup_free(c1);
    c1 = NULL;
  }

  /* Device rules. */
  if (!v2) {
    snprintf(rel, sizeof(rel), "%s/dev", g_top);
    res = test_json("{\"devices\": [{\"allow\": false, \"access\": \"rwm\"}, {\"allow\": true, \"type\": \"c\", \"major\": 1, \"minor\": 11, \"access\": \"r\"},"
            " {\"allow\": true, \"type\": \"c\", \"major\": 1, \"minor\": 4, \"access\": \"m\"}]}");
    check_rc(create(rel, res, &c2, &err), &err, "create with device rules");
    json_decref(res);
    if (c2) {
      int bad = run_devices(c2, "strict");
      check(bad == 0, "v1 device rules: deny all, allow c 1:11 r, c 1:4 m, default devices (mismatch mask %d)", bad);
      check(cgroup_destroy(c2, &err) == 0, "destroy the device cgroup");
      cgroup_free(c2);
      c2 = NULL;
    }
  }

  /* OOM. */
  snprintf(rel, sizeof(rel), "%s/oom", g_top);
  snprintf(buf, sizeof(buf), "{\"memory\": {\"limit\": %d, \"swap\": %d}}", 16 * MiB, 16 * MiB);
  res = test_json(buf);
  check_rc(create(rel, res, &c3, &err), &err, "create a 16 MiB cgroup");
  json_decref(res);
  if (c3) {
    check(cgroup_oom_kills(c3) == 0, "no OOM kill yet");
    k = spawn_kid_in(c3, kid_hog, NULL);
    kid_go(&k);
    sig = kid_wait(&k);
    check(sig == SIGKILL, "a process allocating 64 MiB is killed (%d)", sig);
    check(cgroup_oom_kills(c3) >= 1, "cgroup_oom_kills counts it (%ld)", cgroup_oom_kills(c3));
    check(cgroup_destroy(c3, &err) == 0, "destroy the OOM cgroup");
    cgroup_free(c3);
    c3 = NULL;
  }

  /* A failed create leaves nothing it made, and keeps what was there. */
  snprintf(rel, sizeof(rel), "%s/np/c5", g_top);
  res = test_json("{\"pids\": {\"limit\": 10}, \"cpu\": {\"shares\": 256}, \"unified\": {\"nosuch.file\": \"1\"}}");
  check(create(rel, res, &c4, &err) < 0 && strstr(err.msg, "nosuch.file"), "create fails on a bad unified file");
  json_decref(res);
  snprintf(path, sizeof(path), "%s/np", g_top);
  check(count_dirs(path, true) == 0, "the failed create removed the levels it made");
  check(count_dirs(g_top, false) > 0, "the failed create kept the existing parent");

  /* cpu.idle and real-time period where the host has them (v1). */
  if (!v2 && access("/sys/fs/cgroup/cpu/cpu.idle", F_OK) == 0) {
    snprintf(rel, sizeof(rel), "%s/idle", g_top);
    res = test_json("{\"cpu\": {\"idle\": 1, \"realtimePeriod\": 500000}}");
    check_rc(create(rel, res, &c4, &err), &err, "create with cpu.idle");
    json_decref(res);
    if (c4) {
      check(file_is(cgroup_dir(c4, "cpu"), "cpu.idle", "1"), "cpu.idle");
      if (access("/sys/fs/cgroup/cpu/cpu.rt_period_us", F_OK) == 0)
        check(file_is(cgroup_dir(c4, "cpu"), "cpu.rt_period_us", "500000"), "cpu.rt_period_us");
      check(cgroup_destroy(c4, &err) == 0, "destroy an empty cgroup");
      cgroup_free(c4);
      c4 = NULL;
    }
  }
}

/* ---- pure cgroup v2, in a private mount namespace -------------------------------- */

static int prog_count(const char *dir)
{
  union bpf_attr attr;
  uint32_t ids[16];
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r;
  memset(&attr, 0, sizeof(attr));
  attr.query.target_fd = (uint32_t) fd;
  attr.query.attach_type = BPF_CGROUP_DEVICE;
  attr.query.prog_ids = (uint64_t) (uintptr_t) ids;
  attr.query.prog_cnt = 16;
  r = (int) syscall(SYS_bpf, BPF_PROG_QUERY, &attr, sizeof(attr));
  close(fd);
  return r < 0 ? -1 : (int) attr.query.prog_cnt;
}

static void test_v2(void)
{
  char rel[256];
  struct shim_err err;
  struct cgroup *cg = NULL, *bad = NULL;
  json_t *res, *stats = NULL;
  bool huge = access("/sys/kernel/mm/hugepages/hugepages-2048kB", F_OK) == 0 && has_word("/sys/fs/cgroup/cgroup.controllers", "hugetlb");
  struct kid k;
  int mask, rc;

  check(cgroup_is_v2_only(), "v2: detected as a pure cgroup v2 host");
  snprintf(rel, sizeof(rel), "%s/v2dev", g_top);
  res = test_json(huge ? "{\"devices\": [{\"allow\": false, \"access\": \"rwm\"}, {\"allow\": true, \"type\": \"c\", \"major\": 1, \"minor\": 11, \"access\": \"r\"},"
                 " {\"allow\": true, \"type\": \"c\", \"major\": 1, \"minor\": 4, \"access\": \"m\"}],"
                 " \"hugepageLimits\": [{\"pageSize\": \"2MB\", \"limit\": 2097152}]}"
               : "{\"devices\": [{\"allow\": false, \"access\": \"rwm\"}, {\"allow\": true, \"type\": \"c\", \"major\": 1, \"minor\": 11, \"access\": \"r\"},"
                 " {\"allow\": true, \"type\": \"c\", \"major\": 1, \"minor\": 4, \"access\": \"m\"}]}");
  check_rc(create(rel, res, &cg, &err), &err, "v2: create with device rules");
  json_decref(res);
  if (!cg)
    return;
  check(cgroup_dir(cg, "") && strstr(cgroup_dir(cg, ""), rel) && is_dir(cgroup_dir(cg, "")), "v2: the cgroup directory (%s)",
        cgroup_dir(cg, ""));
  if (huge)
    check(file_is(cgroup_dir(cg, ""), "hugetlb.2MB.max", "2097152"), "v2: hugetlb.2MB.max");
  check(prog_count(cgroup_dir(cg, "")) == 1, "v2: one device program attached");
  mask = run_devices(cg, "strict");
  check(mask == 0, "v2 BPF device filter: deny all, allow c 1:11 r, c 1:4 m, default devices (mismatch mask %d)", mask);

  res = test_json("{\"devices\": [{\"allow\": true, \"access\": \"rwm\"}, {\"allow\": false, \"type\": \"c\", \"major\": 1, \"minor\": 11, \"access\": \"w\"}]}");
  rc = update(cg, res, &err);
  check(rc == 0, "v2: update the device rules%s%s", rc ? ": " : "", rc ? err.msg : "");
  json_decref(res);
  check(prog_count(cgroup_dir(cg, "")) == 1, "v2: the update replaced the program (one attached)");
  mask = run_devices(cg, "loose");
  check(mask == 0, "v2 BPF device filter after update: allow all, deny c 1:11 w (mismatch mask %d)", mask);

  k = spawn_kid_in(cg, kid_work, NULL);
  check(k.joined, "v2: a process joins it, born there");
  kid_go(&k);
  kid_ready(&k);
  stats = stats_after_cpu(cg, 50 * 1000000LL, &err);
  check(stats != NULL, "v2: stats%s%s", stats ? "" : ": ", stats ? "" : err.msg);
  if (stats) {
    char *dump = json_dumps(stats, JSON_COMPACT);
    printf("# %s\n", dump);
    free(dump);
    check(json_integer_value(json_object_get(json_object_get(stats, "cpu"), "usageNs")) >= 50 * 1000000LL, "v2: cpu usage from cpu.stat");
    check(json_integer_value(json_object_get(json_object_get(stats, "pids"), "current")) == 1, "v2: pids current");
    check_psi_io(cg, stats, "v2: stats");
    json_decref(stats);
  }
  rc = cgroup_destroy(cg, &err);
  check(rc == 0, "v2: destroy with a live process%s%s", rc ? ": " : "", rc ? err.msg : "");
  check(kid_wait(&k) == SIGKILL, "v2: destroy killed the process");
  check(!is_dir(cgroup_dir(cg, "")), "v2: destroy removed the directory");
  cgroup_free(cg);

  if (!has_word("/sys/fs/cgroup/cgroup.controllers", "memory")) {
    snprintf(rel, sizeof(rel), "%s/v2mem", g_top);
    res = test_json("{\"memory\": {\"limit\": 16777216}}");
    check(create(rel, res, &bad, &err) < 0 && strstr(err.msg, "memory"), "v2: a controller the hierarchy lacks is refused (%s)", err.msg);
    json_decref(res);
    snprintf(rel, sizeof(rel), "/sys/fs/cgroup%s/v2mem", g_top);
    check(!is_dir(rel), "v2: and nothing is left behind");
  }
}

/* The child of run_v2_child: its own mount namespace with cgroup2 on /sys/fs/cgroup,
 * then this program again, reporting its counts on fd. */
static int v2_child(int fd, void *arg)
{
  char fdarg[16];
  snprintf(fdarg, sizeof(fdarg), "%d", fd);
  if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0
      || mount("cgroup2", "/sys/fs/cgroup", "cgroup2", 0, NULL) < 0) {
    perror("v2 namespace");
    return 3;
  }
  execl((const char *) arg, (const char *) arg, "--v2", g_top, g_tmp, fdarg, (char *) NULL);
  perror("exec");
  return 3;
}

/* Run test_v2 in a child with its own mount namespace and cgroup2 on
 * /sys/fs/cgroup (the host's cgroup2 hierarchy, so the parent sees its
 * cgroups under /sys/fs/cgroup/unified and cleans them up). */
static void run_v2_child(const char *self)
{
  char counts[64];
  struct child_result res;
  int p = 0, f = 0;
  run_child(v2_child, (void *) self, counts, sizeof(counts), &res);
  if (sscanf(counts, "%d %d", &p, &f) == 2)
    tap_add(p, f);
  else
    check(false, "the cgroup v2 run reported nothing (exit %d, signal %d)", res.exit_code, res.signal);
}

int main(int argc, char **argv)
{
  bool v2_child = argc == 5 && strcmp(argv[1], "--v2") == 0;
  if (geteuid() != 0) {
    printf("# needs root\n0 passed, 0 failed\n");
    return 0;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (v2_child) {
    char out[64];
    int p, f;
    g_in_v2_child = true;
    snprintf(g_top, sizeof(g_top), "%s", argv[2]);
    snprintf(g_tmp, sizeof(g_tmp), "%s", argv[3]);
    alarm(60);
    test_v2();
    cleanup();
    tap_counts(&p, &f);
    snprintf(out, sizeof(out), "%d %d", p, f);
    if (write(atoi(argv[4]), out, strlen(out)) < 0)
      return 1;
    return 0;
  }

  snprintf(g_top, sizeof(g_top), "/skiff-test-%d", (int) getpid());
  snprintf(g_tmp, sizeof(g_tmp), "/tmp/skiff-test-cgroup-XXXXXX");
  if (!mkdtemp(g_tmp)) {
    perror("mkdtemp");
    return 1;
  }
  {
    char p[256];
    snprintf(p, sizeof(p), "%s/kmsg", g_tmp);
    if (mknod(p, S_IFCHR | 0600, makedev(1, 11)) < 0)
      perror("mknod kmsg");
  }
  /* Orphaned grandchildren come back to us, so that we can reap them. */
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  atexit(cleanup);
  signal(SIGALRM, on_alarm);
  alarm(120);

  test_validation();
  test_host();
  if (!cgroup_is_v2_only() && access("/sys/fs/cgroup/unified/cgroup.controllers", F_OK) == 0)
    run_v2_child("/proc/self/exe");
  else
    printf("# (the pure-v2 run needs a hybrid host's /sys/fs/cgroup/unified)\n");

  cleanup();
  check(count_dirs(g_top, true) == 0, "the test's parent cgroups are gone");
  return tap_done();
}
