/* test_exec_output.c: a sync exec keeps at most EXEC_SYNC_MAX_OUTPUT of stdout and
 * stderr together, and its raw answer (the result line, then the bytes) goes out in
 * order with other answers on the connection, handed over without a copy and freed
 * once sent. */
#include "core.h"
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MiB (1024 * 1024)

/* Read what the connection sends, flushing its queue as the socket drains, until
 * nothing is queued any more (or cap bytes came). */
static size_t pump(struct conn *c, int peer, char *into, size_t cap)
{
  size_t got = 0;
  for (;;) {
    ssize_t r = recv(peer, into + got, cap - got, MSG_DONTWAIT);
    if (r > 0) {
      got += (size_t) r;
      continue;
    }
    if (conn_pending(c) == 0 || got == cap)
      return got;
    conn_event(c, EPOLLOUT);
  }
}

static struct exec_proc *sync_exec(struct conn *c, int id, bool raw)
{
  struct exec_proc *e = calloc(1, sizeof(*e));
  e->sync = true;
  e->raw_output = raw;
  e->conn = c;
  e->req_id = json_integer(id);
  e->pid = 4242;
  e->timer = (struct watch) { .kind = W_TIMER, .fd = -1, .obj = e };
  proc_io_init(&e->io, NULL, e);
  return e;
}

static void feed(struct exec_proc *e, int stream, char byte, size_t total)
{
  char chunk[16384];
  memset(chunk, byte, sizeof(chunk));
  for (size_t off = 0; off < total; off += sizeof(chunk))
    exec_output(e, stream, chunk, total - off < sizeof(chunk) ? total - off : sizeof(chunk));
}

static bool all(const char *p, size_t n, char byte)
{
  for (size_t i = 0; i < n; i++)
    if (p[i] != byte)
      return false;
  return true;
}

int main(void)
{
  int sv[2], small = 64 * 1024;
  struct conn *c = calloc(1, sizeof(*c));
  struct exec_proc *e;
  size_t size = 20 * MiB, got, line_len;
  char *wire = malloc(size), *nl;
  json_t *res;

  if (loop_init() < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
    return 1;
  /* A small socket buffer: most of the answer has to wait in the shim's queue. */
  setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
  c->w = (struct watch) { .kind = W_CONN, .fd = sv[0], .obj = c };
  loop_add(&c->w, EPOLLIN);

  /* 1 MiB of stderr, then 20 MiB of stdout: the rest of stdout is read and dropped. */
  e = sync_exec(c, 7, true);
  feed(e, STREAM_STDERR, 'e', 1 * MiB);
  feed(e, STREAM_STDOUT, 'o', 20 * MiB);
  check(e->out_acc.len + e->err_acc.len == EXEC_SYNC_MAX_OUTPUT, "stdout and stderr together are cut at the cap (%zu + %zu)",
        e->out_acc.len, e->err_acc.len);
  check(e->err_acc.len == 1 * MiB && e->truncated, "what came first is kept, and the cut is reported");
  check(e->out_acc.cap + e->err_acc.cap <= 16 * MiB + 2 * MiB, "no more memory than the cap rounded up (%zu + %zu)",
        e->out_acc.cap, e->err_acc.cap);
  feed(e, STREAM_STDOUT, 'o', 1 * MiB);
  check(e->out_acc.len + e->err_acc.len == EXEC_SYNC_MAX_OUTPUT, "output past the cap is still taken, and dropped");

  /* Answer it while the socket is full, then answer another call behind it. */
  exec_exited(e, 3 << 8);
  check(conn_pending(c) > EXEC_SYNC_MAX_OUTPUT - 1 * MiB, "the output waits in the connection's queue (%zu bytes)", conn_pending(c));
  check(c->more != NULL, "handed over as a queued buffer, not copied into the output buffer");
  conn_send_result(c, json_integer(8), json_pack("{s:s}", "state", "running"));
  loop_run_deferred();

  got = pump(c, sv[1], wire, size);
  nl = memchr(wire, '\n', got);
  line_len = nl ? (size_t) (nl - wire) : 0;
  res = nl ? json_loadb(wire, line_len, 0, NULL) : NULL;
  check(res && json_integer_value(json_object_get(res, "id")) == 7, "the answer's line comes first");
  {
    json_t *r = json_object_get(res, "result");
    size_t out = (size_t) json_integer_value(json_object_get(r, "stdoutBytes"));
    size_t err = (size_t) json_integer_value(json_object_get(r, "stderrBytes"));
    const char *bytes = wire + line_len + 1, *after = bytes + out + err;
    check(json_integer_value(json_object_get(r, "exitCode")) == 3 && json_is_true(json_object_get(r, "truncated")),
          "with the exit code and the cut");
    check(out == EXEC_SYNC_MAX_OUTPUT - 1 * MiB && err == 1 * MiB, "and the sizes of stdout and stderr");
    check(got > line_len + 1 + out + err && all(bytes, out, 'o') && all(bytes + out, err, 'e'),
          "the bytes follow: stdout, then stderr");
    check(got > (size_t) (after - wire) && strncmp(after, "{\"id\":8,", 8) == 0, "the next answer comes after them, whole");
  }
  json_decref(res);
  check(conn_pending(c) == 0 && c->more == NULL && c->out.cap <= CONN_KEEP_BYTES,
        "once sent, the buffers are freed (the connection keeps %zu bytes)", c->out.cap);

  /* A client from before rawOutput: base64 in the line, nothing after it. */
  e = sync_exec(c, 9, false);
  feed(e, STREAM_STDOUT, 'x', 3);
  exec_exited(e, 0);
  loop_run_deferred();
  got = pump(c, sv[1], wire, size);
  check(got > 0 && wire[got - 1] == '\n' && memmem(wire, got, "\"stdout\":\"eHh4\"", 15) != NULL,
        "without rawOutput the output is base64 in the one line");

  conn_close(c);
  loop_run_deferred();
  close(sv[1]);
  free(wire);
  return tap_done();
}
