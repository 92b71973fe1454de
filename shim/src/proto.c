/* proto.c: the requests of the shim protocol (api/shim/PROTOCOL.md): a JSON line
 * in, its method looked up in one table, the result or error line out. */
#include "core.h"

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* A request being served. ctr: for a method that names a container (params.id). */
struct request {
  struct conn *conn;
  json_t *id;
  json_t *params;
  struct container *ctr;
};

/* A method fills *result and returns 0; returns 1 when it answers later (wait, a
 * sync exec) or answered itself before switching the connection to frames; -1 with
 * err filled when it fails. */
typedef int (*method_fn)(struct request *r, json_t **result, struct shim_err *err);

static int need_container(json_t *params, struct container **out, struct shim_err *err)
{
  const char *id;
  if (field_string(params, "id", "params", &id, err) < 0)
    return -1;
  if (!id || !*id)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "params.id: container id required");
  *out = container_find(id);
  if (!*out)
    return shim_fail(err, SHIM_NOT_FOUND, "container \"%s\" not found", id);
  return 0;
}

static int int_param(json_t *params, const char *key, int64_t def, int64_t min, int64_t max, int64_t *out,
                     struct shim_err *err)
{
  bool present;
  if (field_int64(params, key, "params", &present, out, err) < 0)
    return -1;
  if (!present)
    *out = def;
  if (*out < min || *out > max)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "params.%s: %lld not in %lld..%lld", key, (long long) *out,
                     (long long) min, (long long) max);
  return 0;
}

bool shim_shutdown(void)
{
  char path[PATH_MAX];
  bool containers_clean;
  if (g_shim.shut_down)
    return g_shim.shut_down_clean;
  g_shim.shut_down = true;
  g_shim.shutting_down = true;
  containers_clean = containers_shutdown();
  g_shim.shut_down_clean = pod_shutdown() && containers_clean;
  unlink(g_shim.socket_path);
  snprintf(path, sizeof(path), "%s/shim.pid", g_shim.state_dir);
  unlink(path);
  return g_shim.shut_down_clean;
}

/* ---- the shim and its pod ------------------------------------------------------ */

static int m_version(struct request *r, json_t **result, struct shim_err *err)
{
  *result = json_pack("{s:i,s:s,s:i}", "protocol", SHIM_PROTOCOL_VERSION, "version", SHIM_VERSION, "pid", (int) getpid());
  return 0;
}

static int m_pod(struct request *r, json_t **result, struct shim_err *err)
{
  return pod_create(r->params, result, err);
}

static int m_update_pod(struct request *r, json_t **result, struct shim_err *err)
{
  return pod_update(r->params, err);
}

static int m_create(struct request *r, json_t **result, struct shim_err *err)
{
  return container_create(r->params, result, err);
}

static int m_list(struct request *r, json_t **result, struct shim_err *err)
{
  json_t *arr = json_array();
  for (struct container *k = g_containers; k; k = k->next)
    json_array_append_new(arr, container_state_json(k));
  *result = json_pack("{s:o,s:o}", "pod", pod_json(), "containers", arr);
  return 0;
}

static int m_subscribe(struct request *r, json_t **result, struct shim_err *err)
{
  r->conn->subscribed = true;
  return 0;
}

static int m_pod_stats(struct request *r, json_t **result, struct shim_err *err)
{
  return pod_stats(result, err);
}

static int m_port_forward(struct request *r, json_t **result, struct shim_err *err)
{
  return forward_start(r->params, r->conn, r->id, err);
}

static int m_shutdown(struct request *r, json_t **result, struct shim_err *err)
{
  /* Done before the answer, so a client that got it finds nothing left; cgroupsRemoved
   * tells it whether it must look for cgroups the shim could not remove. */
  *result = json_pack("{s:b}", "cgroupsRemoved", shim_shutdown());
  return 0;
}

/* ---- containers ---------------------------------------------------------------- */

static int m_start(struct request *r, json_t **result, struct shim_err *err)
{
  return container_start(r->ctr, result, err);
}

static int m_state(struct request *r, json_t **result, struct shim_err *err)
{
  *result = container_state_json(r->ctr);
  return 0;
}

static int m_wait(struct request *r, json_t **result, struct shim_err *err)
{
  if (r->ctr->status == CTR_STOPPED) {
    *result = exit_json(r->ctr->id, &r->ctr->exit);
    return 0;
  }
  container_add_waiter(r->ctr, r->conn, r->id);
  return 1;
}

static int m_kill(struct request *r, json_t **result, struct shim_err *err)
{
  int64_t sig;
  bool all;
  if (int_param(r->params, "signal", SIGTERM, 1, 64, &sig, err) < 0 || field_bool(r->params, "all", "params", &all, err) < 0)
    return -1;
  return container_kill(r->ctr, (int) sig, all, err);
}

static int m_delete(struct request *r, json_t **result, struct shim_err *err)
{
  bool force;
  if (field_bool(r->params, "force", "params", &force, err) < 0)
    return -1;
  return container_delete(r->ctr, force, err);
}

static int m_exec(struct request *r, json_t **result, struct shim_err *err)
{
  return exec_start(r->ctr, r->params, r->conn, r->id, err) < 0 ? -1 : 1;
}

static int m_attach(struct request *r, json_t **result, struct shim_err *err)
{
  return attach_start(r->ctr, r->params, r->conn, r->id, err) < 0 ? -1 : 1;
}

static int m_resize(struct request *r, json_t **result, struct shim_err *err)
{
  int64_t w, h;
  if (int_param(r->params, "width", 0, 0, 65535, &w, err) < 0 || int_param(r->params, "height", 0, 0, 65535, &h, err) < 0)
    return -1;
  return proc_io_resize(&r->ctr->io, (unsigned) w, (unsigned) h, err);
}

static int m_close_stdin(struct request *r, json_t **result, struct shim_err *err)
{
  proc_io_close_stdin(&r->ctr->io);
  return 0;
}

static int m_reopen_log(struct request *r, json_t **result, struct shim_err *err)
{
  return container_reopen_log(r->ctr, err);
}

static int m_update(struct request *r, json_t **result, struct shim_err *err)
{
  json_t *res;
  if (field_object(r->params, "resources", "params", &res, err) < 0)
    return -1;
  if (!res)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "params.resources: required");
  return container_update(r->ctr, res, err);
}

static int m_stats(struct request *r, json_t **result, struct shim_err *err)
{
  return container_stats(r->ctr, result, err);
}

static int m_checkpoint(struct request *r, json_t **result, struct shim_err *err)
{
  return criu_checkpoint(r->ctr, r->params, result, err);
}

/* ---- dispatch ------------------------------------------------------------------- */

static const struct method {
  const char *name;
  method_fn fn;
  bool container; /* params.id names the container it acts on */
} methods[] = {
  { "version", m_version, false },        { "pod", m_pod, false },
  { "updatePod", m_update_pod, false },   { "create", m_create, false },
  { "list", m_list, false },              { "subscribe", m_subscribe, false },
  { "podStats", m_pod_stats, false },     { "portForward", m_port_forward, false },
  { "shutdown", m_shutdown, false },      { "start", m_start, true },
  { "state", m_state, true },             { "wait", m_wait, true },
  { "kill", m_kill, true },               { "delete", m_delete, true },
  { "exec", m_exec, true },               { "attach", m_attach, true },
  { "resize", m_resize, true },           { "closeStdin", m_close_stdin, true },
  { "reopenLog", m_reopen_log, true },    { "update", m_update, true },
  { "stats", m_stats, true },             { "checkpoint", m_checkpoint, true },
};

static int dispatch(struct request *r, const char *name, json_t **result, struct shim_err *err)
{
  const struct method *m = NULL;
  for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]) && !m; i++)
    if (strcmp(methods[i].name, name) == 0)
      m = &methods[i];
  /* An unknown method is taken for a container's, as it always was: a missing id is
   * reported first (skiffd recognises a shim without a method by either answer). */
  if ((!m || m->container) && need_container(r->params, &r->ctr, err) < 0)
    return -1;
  if (!m)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "unknown method \"%s\"", name);
  return m->fn(r, result, err);
}

static void handle_line(struct conn *c, const char *line, size_t len)
{
  struct shim_err err = { 0 };
  json_error_t jerr;
  cleanup_json json_t *req = json_loadb(line, len, 0, &jerr);
  cleanup_json json_t *result = NULL;
  struct request r = { .conn = c };
  const char *method = NULL;
  int rc;

  if (!req || !json_is_object(req)) {
    shim_fail(&err, SHIM_INVALID_ARGUMENT, "request is not a JSON object: %s", req ? "wrong type" : jerr.text);
    conn_send_error(c, NULL, &err);
    return;
  }
  r.id = json_object_get(req, "id");
  r.params = json_object_get(req, "params");
  if (r.params && !json_is_object(r.params)) {
    shim_fail(&err, SHIM_INVALID_ARGUMENT, "params: must be an object");
    goto error;
  }
  if (field_string(req, "method", "request", &method, &err) < 0)
    goto error;
  if (!method) {
    shim_fail(&err, SHIM_INVALID_ARGUMENT, "request.method: required");
    goto error;
  }
  rc = dispatch(&r, method, &result, &err);
  if (rc < 0)
    goto error;
  if (rc == 0) {
    conn_send_result(c, r.id, result);
    result = NULL; /* conn_send_result took it */
  }
  return;
error:
  conn_send_error(c, r.id, &err);
}

/* The connection is gone: nothing waits to answer it any more. */
static void conn_closed(struct conn *c)
{
  containers_forget_conn(c);
  exec_forget_conn(c);
}

const struct conn_handler proto_conn_handler = { .line = handle_line, .closed = conn_closed };
