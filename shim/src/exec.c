/* exec.c: extra processes in a running container, synchronous (output
 * captured, capped, with a timeout) or streaming (frames on the connection). */
#include "core.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

struct exec_proc *g_execs;

static char *base64(const char *data, size_t len)
{
  static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char *out = malloc(((len + 2) / 3) * 4 + 1), *p = out;
  size_t i;
  if (!out)
    return NULL;
  for (i = 0; i + 2 < len; i += 3) {
    uint32_t v = ((uint32_t) (unsigned char) data[i] << 16) | ((uint32_t) (unsigned char) data[i + 1] << 8)
                 | (unsigned char) data[i + 2];
    *p++ = tbl[(v >> 18) & 63];
    *p++ = tbl[(v >> 12) & 63];
    *p++ = tbl[(v >> 6) & 63];
    *p++ = tbl[v & 63];
  }
  if (i < len) {
    uint32_t v = (uint32_t) (unsigned char) data[i] << 16;
    if (i + 1 < len)
      v |= (uint32_t) (unsigned char) data[i + 1] << 8;
    *p++ = tbl[(v >> 18) & 63];
    *p++ = tbl[(v >> 12) & 63];
    *p++ = i + 1 < len ? tbl[(v >> 6) & 63] : '=';
    *p++ = '=';
  }
  *p = '\0';
  return out;
}

static void exec_io_output(void *owner, int stream, const char *data, size_t len)
{
  exec_output(owner, stream, data, len);
}

static const struct proc_io_ops exec_io_ops = { .output = exec_io_output };

static void exec_free(void *p)
{
  struct exec_proc *e = p;
  json_decref(e->req_id);
  buf_free(&e->out_acc);
  buf_free(&e->err_acc);
  free(e);
}

static void exec_unlink(struct exec_proc *e)
{
  for (struct exec_proc **pp = &g_execs; *pp; pp = &(*pp)->next)
    if (*pp == e) {
      *pp = e->next;
      break;
    }
  proc_io_close(&e->io);
  if (e->timer.fd >= 0) {
    loop_del(&e->timer);
    close(e->timer.fd);
    e->timer.fd = -1;
  }
  defer_free(e, exec_free);
}

/* An exec that did not start: its process is killed (the loop reaps it; no exec
 * record claims it) and its stdio closed. */
static void cleanup_unstarted(struct exec_proc **ep)
{
  struct exec_proc *e = *ep;
  if (!e)
    return;
  if (e->pid > 0)
    kill(e->pid, SIGKILL);
  proc_io_close(&e->io);
  free(e);
}

int exec_start(struct container *c, json_t *params, struct conn *conn, json_t *req_id, struct shim_err *err)
{
  json_t *process_json;
  cleanup_spec_process struct spec_process process = { 0 };
  bool sync, want_stdin, tty, raw_output;
  bool has_timeout;
  int64_t timeout_ms;
  cleanup_child_ends int stdio[3] = { -1, -1, -1 };
  cleanup_close int master = -1;
  cleanup_close int sync_fd = -1;
  __attribute__((cleanup(cleanup_unstarted))) struct exec_proc *e = NULL;

  if (c->status != CTR_RUNNING)
    return shim_fail(err, SHIM_FAILED_PRECONDITION, "container \"%s\" is not running", c->id);
  if (field_object(params, "process", "params", &process_json, err) < 0
      || spec_parse_process(process_json, "params.process", &process, err) < 0 || field_bool(params, "sync", "params", &sync, err) < 0
      || field_bool(params, "stdin", "params", &want_stdin, err) < 0
      || field_bool(params, "rawOutput", "params", &raw_output, err) < 0
      || field_int64(params, "timeoutMs", "params", &has_timeout, &timeout_ms, err) < 0)
    return -1;
  if (has_timeout && timeout_ms < 0)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "params.timeoutMs: must not be negative");
  tty = process.terminal;
  if (sync && (tty || want_stdin))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "params: a sync exec has no terminal and no stdin");
  e = calloc(1, sizeof(*e));
  if (!e)
    return shim_fail_errno(err, ENOMEM, "exec");
  e->ctr = c;
  snprintf(e->ctr_id, sizeof(e->ctr_id), "%s", c->id);
  e->sync = sync;
  e->raw_output = raw_output;
  e->timer = (struct watch) { .kind = W_TIMER, .fd = -1, .obj = e };
  proc_io_init(&e->io, &exec_io_ops, e);
  if (proc_io_pipes(&e->io, tty, want_stdin, stdio, err) < 0)
    return -1;
  {
    struct spawn_req req = {
      .seccomp = c->seccomp,
      .process = &process,
      .cg = c->cg,
      .join_pid = c->pid,
      .stdio = { stdio[0], stdio[1], stdio[2] },
    };
    int r = spawn_process(&req, &e->pid, &sync_fd, &master, err);
    shim_failpoint("exec.spawned");
    proc_io_close_child_ends(stdio);
    if (r == 0)
      r = spawn_release(sync_fd, 0, err);
    if (r == 0) {
      r = proc_io_start(&e->io, master, want_stdin, err);
      master = -1; /* the io holds it */
    }
    if (r < 0) {
      shim_err_prefix(err, "exec in container \"%s\"", c->id);
      return -1;
    }
  }
  e->conn = conn;
  e->req_id = json_incref(req_id);
  e->next = g_execs;
  g_execs = e;
  if (sync && has_timeout && timeout_ms > 0) {
    struct itimerspec its = { .it_value = { .tv_sec = timeout_ms / 1000, .tv_nsec = (timeout_ms % 1000) * 1000000 } };
    e->timer.fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (e->timer.fd >= 0) {
      timerfd_settime(e->timer.fd, 0, &its, NULL);
      loop_add(&e->timer, EPOLLIN);
    }
  }
  if (!sync) {
    struct stream_sess *s = calloc(1, sizeof(*s));
    json_t *res = json_pack("{s:i}", "pid", (int) e->pid);
    conn_send_result(conn, req_id, res);
    if (s) {
      s->ops = &stdio_stream_ops;
      s->conn = conn;
      s->exec = e;
      s->want_stdin = want_stdin;
      s->want_stdout = s->want_stderr = true;
      conn->sess = s;
      conn->streaming = true;
    }
  }
  e = NULL; /* started: g_execs holds it */
  return 0;
}

void exec_output(struct exec_proc *e, int stream, const char *data, size_t len)
{
  if (e->sync) {
    /* Past the cap output is still read, so the process never blocks on a full
     * pipe, but dropped. */
    struct buf *b = stream == STREAM_STDERR ? &e->err_acc : &e->out_acc;
    size_t held = e->out_acc.len + e->err_acc.len;
    size_t room = EXEC_SYNC_MAX_OUTPUT > held ? EXEC_SYNC_MAX_OUTPUT - held : 0;
    if (len > room) {
      e->truncated = true;
      len = room;
    }
    if (len > 0 && buf_append(b, data, len) < 0)
      e->truncated = true;
    return;
  }
  if (e->conn)
    conn_send_frame(e->conn, stream == STREAM_STDERR ? FRAME_STDERR : FRAME_STDOUT, data, len);
}

/* The answer to a sync exec. Raw: the output follows the result line as it was
 * captured, handed to the connection rather than copied; else base64 in the line
 * (clients from before rawOutput). */
static void exec_reply(struct exec_proc *e)
{
  struct exit_info *x = &e->exit;
  struct conn *c = e->conn;
  json_t *res;
  if (e->raw_output) {
    res = json_pack("{s:i,s:i,s:b,s:b,s:I,s:I}", "exitCode", x->exit_code, "signal", x->signal, "timedOut", e->timed_out,
                    "truncated", e->truncated, "stdoutBytes", (json_int_t) e->out_acc.len, "stderrBytes",
                    (json_int_t) e->err_acc.len);
    /* No bytes without the line that announces them. */
    if (!res || conn_send_result(c, e->req_id, res) < 0)
      return;
    conn_give(c, &e->out_acc);
    conn_give(c, &e->err_acc);
    return;
  }
  {
    cleanup_free char *out = base64(e->out_acc.data, e->out_acc.len);
    cleanup_free char *errb = base64(e->err_acc.data, e->err_acc.len);
    res = json_pack("{s:i,s:i,s:b,s:s,s:s,s:b}", "exitCode", x->exit_code, "signal", x->signal, "timedOut",
                    e->timed_out, "stdout", out ? out : "", "stderr", errb ? errb : "", "truncated", e->truncated);
    conn_send_result(c, e->req_id, res);
  }
}

void exec_exited(struct exec_proc *e, int status)
{
  struct exit_info *x = &e->exit;
  exit_from_status(x, e->pid, status);
  e->exited = true;
  proc_io_drain(&e->io);
  if (e->conn && e->sync) {
    exec_reply(e);
  } else if (e->conn) {
    cleanup_json json_t *ej = exit_json(e->ctr_id, x);
    conn_send_json_frame(e->conn, FRAME_EXIT, ej);
    if (e->conn->sess)
      e->conn->sess->exec = NULL;
    conn_finish(e->conn);
  }
  exec_unlink(e);
}

bool exec_reaped(pid_t pid, int status)
{
  for (struct exec_proc *e = g_execs; e; e = e->next) {
    if (e->pid == pid && !e->exited) {
      exec_exited(e, status);
      return true;
    }
  }
  return false;
}

void exec_timer_event(struct exec_proc *e)
{
  uint64_t ticks;
  if (read(e->timer.fd, &ticks, sizeof(ticks)) < 0 && errno == EAGAIN)
    return;
  e->timed_out = true;
  kill(e->pid, SIGKILL);
}

static void end_exec(struct exec_proc *e)
{
  if (!e->exited)
    kill(e->pid, SIGKILL);
}

void exec_forget_conn(struct conn *conn)
{
  /* Nobody reads their results any more: a client that went away ends them. */
  for (struct exec_proc *e = g_execs; e; e = e->next)
    if (e->conn == conn) {
      e->conn = NULL;
      end_exec(e);
    }
}

void exec_container_deleted(struct container *c)
{
  for (struct exec_proc *e = g_execs; e; e = e->next)
    if (e->ctr == c) {
      e->ctr = NULL;
      end_exec(e);
    }
}
