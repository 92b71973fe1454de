/* proto.c: client connections: JSON-line requests and responses, events, and
 * the frame mode of attach/exec streams (api/shim/PROTOCOL.md). */
#include "core.h"

#include <arpa/inet.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct conn *g_conns;

/* ---- buffers ------------------------------------------------------------- */

int buf_append(struct buf *b, const void *data, size_t len)
{
  if (b->off > 0 && b->off == b->len) {
    b->off = b->len = 0;
  }
  if (b->len + len > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    char *nd;
    /* Compact before growing. */
    if (b->off > 0) {
      memmove(b->data, b->data + b->off, b->len - b->off);
      b->len -= b->off;
      b->off = 0;
    }
    while (cap < b->len + len)
      cap *= 2;
    if (cap != b->cap) {
      nd = realloc(b->data, cap);
      if (!nd)
        return -1;
      b->data = nd;
      b->cap = cap;
    }
  }
  memcpy(b->data + b->len, data, len);
  b->len += len;
  return 0;
}

void buf_consume(struct buf *b, size_t n)
{
  b->off += n;
  if (b->off >= b->len)
    b->off = b->len = 0;
}

size_t buf_pending(const struct buf *b)
{
  return b->len - b->off;
}

void buf_free(struct buf *b)
{
  free(b->data);
  memset(b, 0, sizeof(*b));
}

/* ---- output --------------------------------------------------------------- */

size_t conn_pending(const struct conn *c)
{
  size_t n = buf_pending(&c->out);
  for (const struct out_seg *s = c->more; s; s = s->next)
    n += buf_pending(&s->b);
  return n;
}

/* out is sent: the next queued buffer takes its place. */
static void conn_next_seg(struct conn *c)
{
  struct out_seg *s = c->more;
  buf_free(&c->out);
  c->out = s->b;
  c->more = s->next;
  if (!c->more)
    c->more_last = NULL;
  free(s);
}

static void conn_flush(struct conn *c)
{
  for (;;) {
    while (buf_pending(&c->out) > 0) {
      ssize_t w = send(c->w.fd, c->out.data + c->out.off, buf_pending(&c->out), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        break;
      if (w < 0) {
        conn_close(c);
        return;
      }
      buf_consume(&c->out, (size_t) w);
    }
    if (buf_pending(&c->out) > 0 || !c->more)
      break;
    conn_next_seg(c);
  }
  /* What a large reply or a slow reader took is given back, not kept for the
   * connection's life (skiffd keeps one per pod). */
  if (buf_pending(&c->out) == 0 && c->out.cap > CONN_KEEP_BYTES)
    buf_free(&c->out);
  if (buf_pending(&c->out) == 0 && c->closing) {
    /* Half-close and wait for the client to close: closing at once would make a frame the
     * client is still sending (a resize, stdin) fail with EPIPE, and its socket would be
     * torn down before it reads what was sent last (output, the exit). */
    if (!c->write_shut && shutdown(c->w.fd, SHUT_WR) < 0) {
      conn_close(c);
      return;
    }
    c->write_shut = true;
    c->paused = false;
    loop_mod(&c->w, EPOLLIN);
    return;
  }
  loop_mod(&c->w, (c->paused ? 0 : EPOLLIN) | (buf_pending(&c->out) ? EPOLLOUT : 0));
  if (c->sess && conn_pending(c) < CONN_HIGH_WATER / 2)
    sess_output_drained(c->sess);
}

/* Where queued output goes: behind whatever is queued already. */
static struct buf *conn_tail(struct conn *c)
{
  return c->more_last ? &c->more_last->b : &c->out;
}

static int conn_queue(struct conn *c, const void *data, size_t len)
{
  if (c->w.fd < 0)
    return -1;
  if (buf_append(conn_tail(c), data, len) < 0) {
    shim_log("connection output: out of memory; closing it");
    conn_close(c);
    return -1;
  }
  conn_flush(c);
  return 0;
}

int conn_send_json(struct conn *c, json_t *msg)
{
  char *text = json_dumps(msg, JSON_COMPACT);
  int r;
  if (!text) {
    shim_log("encode response: out of memory");
    return -1;
  }
  size_t n = strlen(text);
  text[n] = '\n'; /* replace NUL; we send n + 1 bytes */
  r = conn_queue(c, text, n + 1);
  free(text);
  return r;
}

int conn_send_result(struct conn *c, json_t *id, json_t *result)
{
  json_t *msg = json_pack("{s:O?,s:o}", "id", id, "result", result ? result : json_object());
  int r = -1;
  if (msg) {
    r = conn_send_json(c, msg);
    json_decref(msg);
  }
  return r;
}

void conn_send_error(struct conn *c, json_t *id, const struct shim_err *err)
{
  json_t *msg = json_pack("{s:O?,s:{s:s,s:s,s:i}}", "id", id, "error", "code", shim_code_name(err->code), "message",
                          err->msg, "errno", err->errnum);
  if (msg) {
    conn_send_json(c, msg);
    json_decref(msg);
  }
}

void conn_send_frame(struct conn *c, enum frame_type type, const void *data, size_t len)
{
  unsigned char hdr[5];
  uint32_t be = htonl((uint32_t) len);
  hdr[0] = (unsigned char) type;
  memcpy(hdr + 1, &be, 4);
  if (c->w.fd < 0)
    return;
  if (buf_append(conn_tail(c), hdr, 5) < 0 || buf_append(conn_tail(c), data, len) < 0) {
    conn_close(c);
    return;
  }
  conn_flush(c);
}

void conn_give(struct conn *c, struct buf *b)
{
  struct out_seg *s;
  if (c->w.fd < 0 || buf_pending(b) == 0) {
    buf_free(b);
    return;
  }
  if (!c->more && buf_pending(&c->out) == 0) {
    buf_free(&c->out);
    c->out = *b;
  } else {
    s = calloc(1, sizeof(*s));
    if (!s) {
      buf_free(b);
      shim_log("connection output: out of memory; closing it");
      conn_close(c);
      return;
    }
    s->b = *b;
    if (c->more_last)
      c->more_last->next = s;
    else
      c->more = s;
    c->more_last = s;
  }
  memset(b, 0, sizeof(*b));
  conn_flush(c);
}

void conn_broadcast_event(const char *event, json_t *params)
{
  json_t *msg = json_pack("{s:s,s:O}", "event", event, "params", params);
  if (!msg)
    return;
  for (struct conn *c = g_conns; c; c = c->next)
    if (c->subscribed && !c->streaming && c->w.fd >= 0)
      conn_send_json(c, msg);
  json_decref(msg);
}

/* ---- lifecycle ------------------------------------------------------------ */

static void conn_free(void *p)
{
  struct conn *c = p;
  buf_free(&c->in);
  while (c->more)
    conn_next_seg(c);
  buf_free(&c->out);
  free(c);
}

void conn_close(struct conn *c)
{
  struct conn **pp;
  if (c->w.fd < 0)
    return;
  loop_del(&c->w);
  close(c->w.fd);
  c->w.fd = -1;
  for (pp = &g_conns; *pp; pp = &(*pp)->next)
    if (*pp == c) {
      *pp = c->next;
      break;
    }
  if (c->sess)
    sess_detach(c->sess);
  containers_forget_conn(c);
  exec_forget_conn(c);
  defer_free(c, conn_free);
}

void conn_close_all(void)
{
  while (g_conns) {
    struct conn *c = g_conns;
    /* Best effort: push out what is queued (e.g. the shutdown reply). */
    if (buf_pending(&c->out))
      send(c->w.fd, c->out.data + c->out.off, buf_pending(&c->out), MSG_NOSIGNAL | MSG_DONTWAIT);
    conn_close(c);
  }
}

void conn_accept(int listen_fd)
{
  for (;;) {
    struct ucred cred;
    socklen_t len = sizeof(cred);
    struct conn *c;
    int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0)
      return;
    /* Only our own uid may drive the shim (the socket dir is 0700 as well). */
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.uid != getuid()) {
      shim_log("refused connection from uid %d", (int) cred.uid);
      close(fd);
      continue;
    }
    c = calloc(1, sizeof(*c));
    if (!c) {
      close(fd);
      continue;
    }
    c->w.kind = W_CONN;
    c->w.fd = fd;
    c->w.obj = c;
    if (loop_add(&c->w, EPOLLIN) < 0) {
      close(fd);
      free(c);
      continue;
    }
    c->next = g_conns;
    g_conns = c;
  }
}

void conn_finish(struct conn *c)
{
  if (c->w.fd < 0)
    return;
  c->closing = true;
  conn_flush(c);
}

void conn_resume(struct conn *c)
{
  if (c->w.fd < 0 || !c->paused)
    return;
  c->paused = false;
  loop_mod(&c->w, EPOLLIN | (buf_pending(&c->out) ? EPOLLOUT : 0));
}

/* ---- requests ------------------------------------------------------------- */

static int need_container(json_t *params, struct container **out, struct shim_err *err)
{
  const char *id;
  if (spec_get_string(params, "id", "params", &id, err) < 0)
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
  if (spec_get_int64(params, key, "params", &present, out, err) < 0)
    return -1;
  if (!present)
    *out = def;
  if (*out < min || *out > max)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "params.%s: %lld not in %lld..%lld", key, (long long) *out,
                     (long long) min, (long long) max);
  return 0;
}

/* Returns 1 when the method answers later (wait, exec sync) or switched the
 * connection to frame mode after answering itself. */
static int dispatch(struct conn *c, const char *method, json_t *params, json_t *req_id, json_t **result,
                    struct shim_err *err)
{
  struct container *ctr = NULL;

  if (strcmp(method, "version") == 0) {
    *result = json_pack("{s:i,s:s,s:i}", "protocol", SHIM_PROTOCOL_VERSION, "version", SHIM_VERSION, "pid",
                        (int) getpid());
    return 0;
  }
  if (strcmp(method, "pod") == 0)
    return pod_create(params, result, err);
  if (strcmp(method, "updatePod") == 0)
    return pod_update(params, err);
  if (strcmp(method, "create") == 0)
    return container_create(params, result, err);
  if (strcmp(method, "list") == 0) {
    json_t *arr = json_array();
    for (struct container *k = g_containers; k; k = k->next)
      json_array_append_new(arr, container_state_json(k));
    *result = json_pack("{s:o,s:o}", "pod", pod_json(), "containers", arr);
    return 0;
  }
  if (strcmp(method, "subscribe") == 0) {
    c->subscribed = true;
    return 0;
  }
  if (strcmp(method, "podStats") == 0)
    return pod_stats(result, err);
  if (strcmp(method, "portForward") == 0)
    return forward_start(params, c, req_id, err);
  if (strcmp(method, "shutdown") == 0) {
    /* Done before the answer, so a client that got it finds nothing left. */
    shim_shutdown();
    return 0;
  }
  if (need_container(params, &ctr, err) < 0)
    return -1;
  if (strcmp(method, "start") == 0)
    return container_start(ctr, result, err);
  if (strcmp(method, "state") == 0) {
    *result = container_state_json(ctr);
    return 0;
  }
  if (strcmp(method, "wait") == 0) {
    if (ctr->status == CTR_STOPPED) {
      *result = exit_json(ctr->id, &ctr->exit);
      return 0;
    }
    container_add_waiter(ctr, c, req_id);
    return 1;
  }
  if (strcmp(method, "kill") == 0) {
    int64_t sig;
    bool all;
    if (int_param(params, "signal", SIGTERM, 1, 64, &sig, err) < 0 || spec_get_bool(params, "all", "params", &all, err) < 0)
      return -1;
    return container_kill(ctr, (int) sig, all, err);
  }
  if (strcmp(method, "delete") == 0) {
    bool force;
    if (spec_get_bool(params, "force", "params", &force, err) < 0)
      return -1;
    return container_delete(ctr, force, err);
  }
  if (strcmp(method, "exec") == 0) {
    if (exec_start(ctr, params, c, req_id, err) < 0)
      return -1;
    return 1;
  }
  if (strcmp(method, "attach") == 0) {
    if (attach_start(ctr, params, c, req_id, err) < 0)
      return -1;
    return 1;
  }
  if (strcmp(method, "resize") == 0) {
    int64_t w, h;
    if (int_param(params, "width", 0, 0, 65535, &w, err) < 0 || int_param(params, "height", 0, 0, 65535, &h, err) < 0)
      return -1;
    return proc_io_resize(&ctr->io, (unsigned) w, (unsigned) h, err);
  }
  if (strcmp(method, "closeStdin") == 0) {
    proc_io_close_stdin(&ctr->io);
    return 0;
  }
  if (strcmp(method, "reopenLog") == 0)
    return container_reopen_log(ctr, err);
  if (strcmp(method, "update") == 0) {
    json_t *res;
    if (spec_get_object(params, "resources", "params", &res, err) < 0)
      return -1;
    if (!res)
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "params.resources: required");
    return container_update(ctr, res, err);
  }
  if (strcmp(method, "stats") == 0)
    return container_stats(ctr, result, err);
  return shim_fail(err, SHIM_INVALID_ARGUMENT, "unknown method \"%s\"", method);
}

static void handle_line(struct conn *c, const char *line, size_t len)
{
  struct shim_err err = { 0 };
  json_error_t jerr;
  json_t *req = json_loadb(line, len, 0, &jerr), *id = NULL, *params, *result = NULL;
  const char *method = NULL;
  int r;

  if (!req || !json_is_object(req)) {
    shim_fail(&err, SHIM_INVALID_ARGUMENT, "request is not a JSON object: %s", req ? "wrong type" : jerr.text);
    conn_send_error(c, NULL, &err);
    json_decref(req);
    return;
  }
  id = json_object_get(req, "id");
  params = json_object_get(req, "params");
  if (params && !json_is_object(params)) {
    shim_fail(&err, SHIM_INVALID_ARGUMENT, "params: must be an object");
    goto error;
  }
  if (spec_get_string(req, "method", "request", &method, &err) < 0)
    goto error;
  if (!method) {
    shim_fail(&err, SHIM_INVALID_ARGUMENT, "request.method: required");
    goto error;
  }
  r = dispatch(c, method, params, id, &result, &err);
  if (r < 0)
    goto error;
  if (r == 0)
    conn_send_result(c, id, result);
  json_decref(req);
  return;
error:
  json_decref(result);
  conn_send_error(c, id, &err);
  json_decref(req);
}

static void handle_frames(struct conn *c)
{
  while (c->w.fd >= 0 && !c->paused && buf_pending(&c->in) >= 5) {
    const unsigned char *p = (const unsigned char *) c->in.data + c->in.off;
    uint32_t be, len;
    memcpy(&be, p + 1, 4);
    len = ntohl(be);
    if (len > FRAME_MAX_BYTES) {
      shim_log("stream frame of %u bytes exceeds the limit; closing", len);
      conn_close(c);
      return;
    }
    if (buf_pending(&c->in) < 5 + (size_t) len)
      return;
    if (c->sess)
      sess_stream_input(c->sess, (enum frame_type) p[0], (const char *) p + 5, len);
    buf_consume(&c->in, 5 + len);
  }
}

static void handle_input(struct conn *c)
{
  while (c->w.fd >= 0 && !c->paused) {
    if (c->streaming) {
      handle_frames(c);
      return;
    }
    char *start = c->in.data + c->in.off;
    char *nl = memchr(start, '\n', buf_pending(&c->in));
    if (!nl) {
      if (buf_pending(&c->in) > LINE_MAX_BYTES) {
        struct shim_err err;
        shim_fail(&err, SHIM_RESOURCE_EXHAUSTED, "request line longer than %d bytes", LINE_MAX_BYTES);
        conn_send_error(c, NULL, &err);
        c->closing = true;
        conn_flush(c);
      }
      return;
    }
    size_t len = (size_t) (nl - start);
    /* Consume first: the handler may switch the connection to frames, and
     * what follows the line is then frame data. */
    buf_consume(&c->in, len + 1);
    if (len > 0)
      handle_line(c, start, len);
  }
}

void conn_event(struct conn *c, uint32_t events)
{
  if (events & EPOLLOUT)
    conn_flush(c);
  if (c->w.fd < 0)
    return;
  if (c->write_shut) {
    char discard[4096];
    ssize_t r;
    while ((r = recv(c->w.fd, discard, sizeof(discard), MSG_DONTWAIT)) > 0 || (r < 0 && errno == EINTR))
      ;
    if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
      conn_close(c);
    return;
  }
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
    char tmp[16384];
    for (;;) {
      ssize_t r = recv(c->w.fd, tmp, sizeof(tmp), MSG_DONTWAIT);
      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        break;
      if (r <= 0) {
        /* Process what arrived before the close (e.g. a final stdin frame). */
        handle_input(c);
        conn_close(c);
        return;
      }
      if (buf_append(&c->in, tmp, (size_t) r) < 0) {
        conn_close(c);
        return;
      }
      if (buf_pending(&c->in) > LINE_MAX_BYTES + 16)
        break;
    }
    handle_input(c);
  }
}
