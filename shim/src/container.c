/* container.c: container records and lifecycle (create, start, kill, delete,
 * exit); their stdio goes into CRI logs and to attached clients. */
#include "core.h"

#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct container *g_containers;

static const char *const status_names[] = { "created", "running", "stopped" };

struct container *container_find(const char *id)
{
  for (struct container *c = g_containers; c; c = c->next)
    if (strcmp(c->id, id) == 0)
      return c;
  return NULL;
}

static int valid_id(const char *id)
{
  size_t n = strlen(id);
  if (n == 0 || n > 128)
    return 0;
  for (const char *p = id; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'
          || *p == '.'))
      return 0;
  return strcmp(id, ".") != 0 && strcmp(id, "..") != 0;
}

json_t *container_state_json(struct container *c)
{
  return json_pack("{s:s,s:i,s:s,s:s,s:o,s:o,s:o}", "id", c->id, "pid", (int) c->pid, "status",
                   status_names[c->status], "bundle", c->bundle, "createdAt", time_json(c->created_ns), "startedAt",
                   time_json(c->started_ns), "exit",
                   c->status == CTR_STOPPED ? exit_json(c->id, &c->exit) : json_null());
}

/* ---- create / start ------------------------------------------------------------ */

/* The container's output goes into its log and to the clients attached to it. */
static void container_output(void *owner, int stream, const char *data, size_t len)
{
  struct container *c = owner;
  cri_log_write(c->log, stream, data, len);
  attach_broadcast(c, stream, data, len);
}

static void container_output_end(void *owner, int stream)
{
  struct container *c = owner;
  cri_log_flush(c->log, stream);
}

static const struct proc_io_ops container_io_ops = { .output = container_output, .end = container_output_end };

static void container_free(void *p)
{
  struct container *c = p;
  free(c->id);
  free(c->bundle);
  free(c->log_path);
  seccomp_free(c->seccomp);
  hooks_free(&c->hooks);
  json_decref(c->spec_doc);
  cri_log_close(c->log);
  criu_restore_free(c->restore);
  if (c->cg)
    cgroup_free(c->cg);
  free(c);
}

static int resolve_rootfs(const char *bundle, const struct spec *spec, char *out, size_t len, struct shim_err *err)
{
  const char *root = spec->root_path;
  struct stat st;
  if (root[0] == '/')
    snprintf(out, len, "%s", root);
  else
    snprintf(out, len, "%s/%s", bundle, root);
  if (stat(out, &st) < 0)
    return shim_fail_errno(err, errno, "root.path %s", out);
  if (!S_ISDIR(st.st_mode))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "root.path %s: not a directory", out);
  return 0;
}

/* The container's process was killed by its cgroup's OOM killer before its command ran
 * (`step`: "create" or "start"): say so, with the limit that was too low, instead of the
 * bare "exited unexpectedly" of a process that vanished. */
static int oom_failure(struct container *c, const char *step, struct shim_err *err)
{
  const char *what = "the kernel's OOM killer ended the container process before its command ran";
  uint64_t limit;
  if (cgroup_memory_limit(c->cg, &limit))
    return shim_fail(err, SHIM_RESOURCE_EXHAUSTED, "%s container \"%s\": %s: its memory limit of %llu bytes is too low for it to start",
                     step, c->id, what, (unsigned long long) limit);
  return shim_fail(err, SHIM_RESOURCE_EXHAUSTED,
                   "%s container \"%s\": %s: it has no memory limit of its own; that of a cgroup above it (its pod's) is too low for it to start",
                   step, c->id, what);
}

/* A record with nothing made yet: no process, no cgroup, no stdio. */
static struct container *container_new(void)
{
  struct container *c = calloc(1, sizeof(*c));
  if (!c)
    return NULL;
  c->sync_fd = -1;
  proc_io_init(&c->io, &container_io_ops, c);
  return c;
}

/* The poststop hooks, once the container is gone: a failure is logged, and the
 * remaining hooks and the deletion go on (runtime.md, lifecycle step 13). */
static void run_poststop_hooks(struct container *c)
{
  struct shim_err err;
  cleanup_free char *state = NULL;
  if (!hooks_any(&c->hooks, HOOK_POSTSTOP))
    return;
  state = hooks_state(c->spec_doc, c->id, "stopped", 0, c->bundle);
  for (size_t i = 0; i < c->hooks.n[HOOK_POSTSTOP]; i++) {
    struct spec_hooks one = { 0 };
    one.list[HOOK_POSTSTOP] = &c->hooks.list[HOOK_POSTSTOP][i];
    one.n[HOOK_POSTSTOP] = 1;
    if (hooks_run(&one, HOOK_POSTSTOP, state, &err) < 0)
      shim_log("container %s: warning: %s", c->id, err.msg);
  }
}

/* A create that did not finish: take back what it made, the process first. Once its
 * cgroup was made the container's environment existed in part: its poststop hooks run,
 * as after any create that fails (runtime.md, lifecycle steps 3-5 and 12-13). */
static void cleanup_half_made(struct container **cp)
{
  struct container *c = *cp;
  struct shim_err ignored;
  if (!c)
    return;
  kill_and_reap(c->pid);
  if (c->sync_fd >= 0)
    close(c->sync_fd);
  proc_io_close(&c->io);
  if (c->cg) {
    cgroup_destroy(c->cg, &ignored);
    run_poststop_hooks(c);
  }
  container_free(c);
}

int container_create(json_t *params, json_t **result, struct shim_err *err)
{
  const char *id, *bundle, *log_path;
  bool want_stdin, stdin_once;
  char rootfs[PATH_MAX], bundle_abs[PATH_MAX];
  __attribute__((cleanup(cleanup_half_made))) struct container *c = NULL;
  cleanup_spec struct spec *spec = NULL;
  const char *cg_path;
  char default_cg[256];
  cleanup_child_ends int stdio[3] = { -1, -1, -1 };
  int master = -1;
  long oom_kills;
  json_t *restore;

  if (field_string(params, "id", "params", &id, err) < 0 || field_string(params, "bundle", "params", &bundle, err) < 0
      || field_string(params, "logPath", "params", &log_path, err) < 0
      || field_bool(params, "stdin", "params", &want_stdin, err) < 0
      || field_bool(params, "stdinOnce", "params", &stdin_once, err) < 0
      || field_object(params, "restore", "params", &restore, err) < 0)
    return -1;
  if (!id || !valid_id(id))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "params.id: \"%s\" is not a valid container id", id ? id : "");
  if (!bundle || bundle[0] != '/')
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "params.bundle: absolute path required");
  if (container_find(id))
    return shim_fail(err, SHIM_ALREADY_EXISTS, "container \"%s\" already exists", id);
  if (!realpath(bundle, bundle_abs))
    return shim_fail_errno(err, errno, "params.bundle %s", bundle);
  if (spec_load(bundle_abs, &spec, err) < 0 || resolve_rootfs(bundle_abs, spec, rootfs, sizeof(rootfs), err) < 0)
    return -1;
  c = container_new();
  if (!c || !(c->id = strdup(id)) || !(c->bundle = strdup(bundle_abs)))
    return shim_fail_errno(err, ENOMEM, "create %s", id);
  /* An exec needs the seccomp filter: the container keeps it (and the JSON it points into). */
  c->spec_doc = json_incref(spec->doc);
  c->seccomp = spec->seccomp;
  spec->seccomp = NULL;
  if (c->seccomp && seccomp_compile(c->seccomp, err) < 0)
    return -1;
  c->hooks = spec->hooks;
  memset(&spec->hooks, 0, sizeof(spec->hooks));
  c->stdin_once = stdin_once;
  c->own_pidns = ns_clone_flags(&spec->ns) & CLONE_NEWPID;
  cg_path = spec->cgroups_path;
  if (!cg_path || !*cg_path) {
    snprintf(default_cg, sizeof(default_cg), "/skiff/%s", id);
    cg_path = default_cg;
  }
  if (cgroup_create(cg_path, &spec->resources, &c->cg, err) < 0)
    return -1;
  oom_kills = cgroup_oom_kills(c->cg);
  shim_failpoint("create.cgroup");
  if (log_path && *log_path && (cri_log_open(log_path, &c->log, err) < 0 || !(c->log_path = strdup(log_path))))
    return -1;
  if (restore) {
    /* From a checkpoint: CRIU makes the process at start. */
    if (criu_restore_prepare(c, restore, spec, rootfs, want_stdin, &master, err) < 0)
      return -1;
  } else if (proc_io_pipes(&c->io, spec->process.terminal, want_stdin, stdio, err) < 0) {
    return -1;
  }
  if (!restore) {
    struct spawn_req req = {
      .spec = spec,
      .process = &spec->process,
      .seccomp = c->seccomp,
      .rootfs = rootfs,
      .cg = c->cg,
      .stdio = { stdio[0], stdio[1], stdio[2] },
      .create = true,
      .id = c->id,
      .bundle = c->bundle,
      .hooks = &c->hooks,
    };
    if (spawn_process(&req, &c->pid, &c->sync_fd, &master, err) < 0) {
      if (cgroup_oom_kills(c->cg) > oom_kills)
        oom_failure(c, "create", err);
      else
        pod_infra_gone_failure(c->id, err);
      return -1;
    }
  }
  shim_failpoint("create.spawned");
  proc_io_close_child_ends(stdio);
  if (proc_io_start(&c->io, master, want_stdin, err) < 0)
    return -1;
  c->status = CTR_CREATED;
  c->created_ns = now_ns();
  c->oom_kills_at_start = cgroup_oom_kills(c->cg);
  c->next = g_containers;
  g_containers = c;
  shim_failpoint("create.ready");
  *result = json_pack("{s:i}", "pid", (int) c->pid);
  shim_log("created container %s pid %d", c->id, (int) c->pid);
  c = NULL; /* made: g_containers holds it */
  return 0;
}

static void container_exited(struct container *c, int status);

/* A container created from a checkpoint: CRIU restores its processes, which run on from
 * where they were. A restore that fails leaves the container stopped, as a process that
 * failed to start. */
static int start_restored(struct container *c, json_t **result, struct shim_err *err)
{
  pid_t pid;
  int r = criu_restore_run(c, &pid, err);
  criu_restore_free(c->restore);
  c->restore = NULL;
  if (r < 0) {
    container_exited(c, W_EXITCODE(128, 0));
    shim_err_prefix(err, "start container \"%s\"", c->id);
    return -1;
  }
  c->pid = pid;
  c->status = CTR_RUNNING;
  c->started_ns = now_ns();
  c->oom_kills_at_start = cgroup_oom_kills(c->cg);
  *result = json_pack("{s:i}", "pid", (int) c->pid);
  return 0;
}

int container_start(struct container *c, json_t **result, struct shim_err *err)
{
  int r;
  if (c->status != CTR_CREATED)
    return shim_fail(err, SHIM_FAILED_PRECONDITION, "container \"%s\" is %s, not created", c->id,
                     status_names[c->status]);
  if (c->restore)
    return start_restored(c, result, err);
  shim_failpoint("start.go");
  r = spawn_release(c->sync_fd, hooks_budget_ms(&c->hooks, HOOK_START_CONTAINER), err);
  close(c->sync_fd);
  c->sync_fd = -1;
  /* Until execve the process is alone in its cgroup: an OOM kill there since create is
   * its own, before its command ran or as it began. It did not start; should it live on
   * for a moment, it is ended, so that it is not running while reported failed. */
  if (cgroup_oom_kills(c->cg) > c->oom_kills_at_start) {
    kill(c->pid, SIGKILL);
    return oom_failure(c, "start", err);
  }
  if (r < 0) {
    shim_err_prefix(err, "start container \"%s\"", c->id);
    return -1;
  }
  /* The exit may already have been reaped (a process that ends at once). */
  if (c->status == CTR_CREATED)
    c->status = CTR_RUNNING;
  c->started_ns = now_ns();
  /* poststart hooks, in the shim's namespaces: one that fails fails the start, and the
   * container is stopped (runtime.md, lifecycle step 9, since runtime-spec 1.2.1). */
  if (hooks_any(&c->hooks, HOOK_POSTSTART)) {
    cleanup_free char *state = hooks_state(c->spec_doc, c->id, "running", c->pid, c->bundle);
    if (hooks_run(&c->hooks, HOOK_POSTSTART, state, err) < 0) {
      struct shim_err ignored;
      if (c->status != CTR_STOPPED && cgroup_signal_all(c->cg, SIGKILL, &ignored) < 0)
        kill(c->pid, SIGKILL);
      shim_err_prefix(err, "start container \"%s\"", c->id);
      return -1;
    }
  }
  *result = json_pack("{s:i}", "pid", (int) c->pid);
  return 0;
}

/* ---- exit ------------------------------------------------------------------------ */

static void write_exit_file(struct container *c)
{
  struct shim_err err;
  char path[PATH_MAX];
  cleanup_json json_t *j = exit_json(c->id, &c->exit);
  cleanup_free char *text = json_dumps(j, JSON_COMPACT);
  if (!text)
    return;
  snprintf(path, sizeof(path), "%s/%s.json", g_shim.exits_dir, c->id);
  if (write_file_atomic(path, text, strlen(text), &err) < 0)
    shim_log("exit file for %s: %s", c->id, err.msg);
}

static void container_exited(struct container *c, int status)
{
  struct waiter *w;
  cleanup_json json_t *ej = NULL;

  exit_from_status(&c->exit, c->pid, status);
  c->exit.oom_killed = c->cg && cgroup_oom_kills(c->cg) > c->oom_kills_at_start;
  c->status = CTR_STOPPED;
  if (c->sync_fd >= 0) {
    close(c->sync_fd);
    c->sync_fd = -1;
  }
  /* Without its own PID namespace nothing else ends the container's other
   * processes when its init exits. */
  if (!c->own_pidns && c->cg) {
    struct shim_err ignored;
    cgroup_signal_all(c->cg, SIGKILL, &ignored);
  }
  proc_io_drain(&c->io);
  write_exit_file(c);
  ej = exit_json(c->id, &c->exit);
  conn_broadcast_event("exit", ej);
  while ((w = c->waiters)) {
    c->waiters = w->next;
    conn_send_result(w->conn, w->req_id, json_incref(ej));
    json_decref(w->req_id);
    free(w);
  }
  attach_container_exited(c);
  shim_log("container %s exited: code %d signal %d%s", c->id, c->exit.exit_code, c->exit.signal,
           c->exit.oom_killed ? " (OOMKilled)" : "");
}

void container_add_waiter(struct container *c, struct conn *conn, json_t *req_id)
{
  struct waiter *w = calloc(1, sizeof(*w));
  if (!w)
    return;
  w->conn = conn;
  w->req_id = json_incref(req_id);
  w->next = c->waiters;
  c->waiters = w;
}

void containers_forget_conn(struct conn *conn)
{
  for (struct container *c = g_containers; c; c = c->next) {
    struct waiter **pp = &c->waiters;
    while (*pp) {
      struct waiter *w = *pp;
      if (w->conn == conn) {
        *pp = w->next;
        json_decref(w->req_id);
        free(w);
      } else {
        pp = &w->next;
      }
    }
  }
}

bool container_reaped(pid_t pid, int status)
{
  for (struct container *c = g_containers; c; c = c->next) {
    if (c->pid == pid && c->status != CTR_STOPPED) {
      container_exited(c, status);
      return true;
    }
  }
  return false;
}

/* ---- kill / delete ----------------------------------------------------------------- */

int container_kill(struct container *c, int sig, bool all, struct shim_err *err)
{
  if (c->status == CTR_STOPPED)
    return shim_fail(err, SHIM_FAILED_PRECONDITION, "container \"%s\" is not running", c->id);
  if (c->pid <= 0) { /* a restore not started: no process yet, it ends as if killed */
    container_exited(c, sig);
    return 0;
  }
  /* Without its own PID namespace, killing the init leaves the container's
   * other processes running: a SIGKILL goes to all of them. */
  if ((all || (sig == SIGKILL && !c->own_pidns)) && c->cg)
    return cgroup_signal_all(c->cg, sig, err);
  if (kill(c->pid, sig) < 0)
    return shim_fail_errno(err, errno, "kill container \"%s\" pid %d", c->id, (int) c->pid);
  return 0;
}

int container_delete(struct container *c, bool force, struct shim_err *err)
{
  struct container **pp;
  char path[PATH_MAX];

  if (c->status == CTR_RUNNING && !force)
    return shim_fail(err, SHIM_FAILED_PRECONDITION, "container \"%s\" is running; stop it or delete with force", c->id);
  if (c->status != CTR_STOPPED && c->pid <= 0) {
    container_exited(c, SIGKILL);
  } else if (c->status != CTR_STOPPED) {
    int status;
    kill(c->pid, SIGKILL);
    while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR)
      ;
    container_exited(c, status);
  }
  if (c->cg && cgroup_destroy(c->cg, err) < 0) {
    shim_err_prefix(err, "delete container \"%s\"", c->id);
    return -1;
  }
  exec_container_deleted(c);
  attach_container_exited(c);
  proc_io_close(&c->io);
  run_poststop_hooks(c);
  snprintf(path, sizeof(path), "%s/%s.json", g_shim.exits_dir, c->id);
  unlink(path);
  for (pp = &g_containers; *pp; pp = &(*pp)->next)
    if (*pp == c) {
      *pp = c->next;
      break;
    }
  shim_log("deleted container %s", c->id);
  defer_free(c, container_free);
  return 0;
}

bool containers_shutdown(void)
{
  struct shim_err err;
  bool clean = true;
  while (g_containers) {
    if (container_delete(g_containers, true, &err) < 0) {
      clean = false;
      /* Leave nothing half-known: drop the record even if cleanup failed. */
      struct container *c = g_containers;
      shim_log("shutdown: %s", err.msg);
      g_containers = c->next;
      proc_io_close(&c->io);
      defer_free(c, container_free);
    }
  }
  return clean;
}

/* ---- update / stats / logs ------------------------------------------------------- */

int container_update(struct container *c, json_t *resources, struct shim_err *err)
{
  cleanup_resources struct resources r = { 0 };
  if (resources_parse(resources, &r, err) < 0)
    return -1;
  if (!c->cg)
    return shim_fail(err, SHIM_FAILED_PRECONDITION, "container \"%s\" has no cgroup", c->id);
  return cgroup_update(c->cg, &r, err);
}

int container_stats(struct container *c, json_t **out, struct shim_err *err)
{
  if (!c->cg)
    return shim_fail(err, SHIM_FAILED_PRECONDITION, "container \"%s\" has no cgroup", c->id);
  return cgroup_stats(c->cg, out, err);
}

int container_reopen_log(struct container *c, struct shim_err *err)
{
  if (!c->log)
    return shim_fail(err, SHIM_FAILED_PRECONDITION, "container \"%s\" has no log file", c->id);
  return cri_log_reopen(c->log, err);
}
