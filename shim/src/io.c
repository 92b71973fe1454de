/* io.c: stream sessions: clients attached to a container's stdio, and the
 * client side of a streaming exec, both in frame mode. */
#include "core.h"

#include <stdlib.h>
#include <string.h>

static struct stream_sess *g_attaches;

int attach_start(struct container *c, json_t *params, struct conn *conn, json_t *req_id, struct shim_err *err)
{
  bool want_stdin, has_out, has_err;
  json_t *v;
  struct stream_sess *s;

  if (c->status == CTR_STOPPED)
    return shim_fail(err, SHIM_FAILED_PRECONDITION, "container \"%s\" is not running", c->id);
  if (field_bool(params, "stdin", "params", &want_stdin, err) < 0)
    return -1;
  /* stdout and stderr default to true. */
  v = json_object_get(params, "stdout");
  has_out = !v || json_is_true(v);
  v = json_object_get(params, "stderr");
  has_err = !v || json_is_true(v);
  if (want_stdin && c->io.in.fd < 0)
    return shim_fail(err, SHIM_FAILED_PRECONDITION, "container \"%s\" has no open stdin", c->id);
  s = calloc(1, sizeof(*s));
  if (!s)
    return shim_fail_errno(err, ENOMEM, "attach");
  s->ops = &stdio_stream_ops;
  s->conn = conn;
  s->ctr = c;
  s->want_stdin = want_stdin;
  s->want_stdout = has_out;
  s->want_stderr = has_err;
  conn_send_result(conn, req_id, json_object());
  conn->sess = s;
  conn->streaming = true;
  s->next = g_attaches;
  g_attaches = s;
  return 0;
}

static struct proc_io *sess_io(struct stream_sess *s)
{
  if (s->ctr)
    return &s->ctr->io;
  if (s->exec)
    return &s->exec->io;
  return NULL;
}

static void stdio_input(struct stream_sess *s, enum frame_type type, const char *data, size_t len)
{
  struct proc_io *io = sess_io(s);
  if (!io)
    return;
  switch (type) {
  case FRAME_STDIN:
    if (s->want_stdin && !proc_io_write_stdin(io, data, len)) {
      /* The process is not reading: stop reading from the client too. */
      s->conn->paused = true;
      io->paused_conn = s->conn;
      loop_mod(&s->conn->w, conn_pending(s->conn) ? EPOLLOUT : 0);
    }
    break;
  case FRAME_CLOSE_STDIN:
    if (s->want_stdin)
      proc_io_close_stdin(io);
    break;
  case FRAME_RESIZE: {
    json_error_t jerr;
    cleanup_json json_t *j = json_loadb(data, len, 0, &jerr);
    struct shim_err err;
    json_t *w = json_object_get(j, "width"), *h = json_object_get(j, "height");
    if (json_is_integer(w) && json_is_integer(h) && json_integer_value(w) >= 0 && json_integer_value(w) <= 65535
        && json_integer_value(h) >= 0 && json_integer_value(h) <= 65535) {
      if (proc_io_resize(io, (unsigned) json_integer_value(w), (unsigned) json_integer_value(h), &err) < 0)
        shim_log("resize: %s", err.msg);
    }
    break;
  }
  default:
    break; /* frames only the shim sends are ignored */
  }
}

static void stdio_detach(struct stream_sess *s)
{
  struct proc_io *io = sess_io(s);
  if (io && io->paused_conn == s->conn)
    io->paused_conn = NULL;
  if (s->ctr) {
    for (struct stream_sess **pp = &g_attaches; *pp; pp = &(*pp)->next)
      if (*pp == s) {
        *pp = s->next;
        break;
      }
    if (s->want_stdin && s->ctr->stdin_once)
      proc_io_close_stdin(&s->ctr->io);
  }
  s->conn->sess = NULL;
  free(s);
}

const struct stream_ops stdio_stream_ops = { .input = stdio_input, .detach = stdio_detach };

void attach_broadcast(struct container *c, int stream, const char *data, size_t len)
{
  /* Sending may close a connection and free its session: keep next first. */
  for (struct stream_sess *s = g_attaches, *next; s; s = next) {
    next = s->next;
    if (s->ctr != c)
      continue;
    if ((stream == STREAM_STDOUT && !s->want_stdout) || (stream == STREAM_STDERR && !s->want_stderr))
      continue;
    /* A slow reader loses output rather than stall the container. */
    if (conn_pending(s->conn) > CONN_HIGH_WATER)
      continue;
    conn_send_frame(s->conn, stream == STREAM_STDERR ? FRAME_STDERR : FRAME_STDOUT, data, len);
  }
}

void attach_container_exited(struct container *c)
{
  cleanup_json json_t *ej = c->status == CTR_STOPPED ? exit_json(c->id, &c->exit) : NULL;
  cleanup_free char *text = ej ? json_dumps(ej, JSON_COMPACT) : NULL;
  for (struct stream_sess *s = g_attaches, *next; s; s = next) {
    next = s->next;
    if (s->ctr != c || s->conn->closing)
      continue;
    if (text)
      conn_send_frame(s->conn, FRAME_EXIT, text, strlen(text));
    conn_finish(s->conn);
  }
}
