/* conn.c: client connections: the socket, output queued until the client reads it,
 * and input cut into request lines (handed to the connection's handler) or, once the
 * connection carries a stream, into frames (handed to its stream session). */
#include "core.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct conn *g_conns;

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
  if (c->sess && c->sess->ops->drained && conn_pending(c) < CONN_HIGH_WATER / 2)
    c->sess->ops->drained(c->sess);
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
  cleanup_free char *text = json_dumps(msg, JSON_COMPACT);
  size_t n;
  if (!text) {
    shim_log("encode response: out of memory");
    return -1;
  }
  n = strlen(text);
  text[n] = '\n'; /* replace NUL; we send n + 1 bytes */
  return conn_queue(c, text, n + 1);
}

int conn_send_result(struct conn *c, json_t *id, json_t *result)
{
  cleanup_json json_t *msg = json_pack("{s:O?,s:o}", "id", id, "result", result ? result : json_object());
  return msg ? conn_send_json(c, msg) : -1;
}

void conn_send_error(struct conn *c, json_t *id, const struct shim_err *err)
{
  cleanup_json json_t *msg = json_pack("{s:O?,s:{s:s,s:s,s:i}}", "id", id, "error", "code", shim_code_name(err->code),
                                       "message", err->msg, "errno", err->errnum);
  if (msg)
    conn_send_json(c, msg);
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

void conn_send_json_frame(struct conn *c, enum frame_type type, json_t *msg)
{
  cleanup_free char *text = json_dumps(msg, JSON_COMPACT);
  if (text)
    conn_send_frame(c, type, text, strlen(text));
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
  cleanup_json json_t *msg = json_pack("{s:s,s:O}", "event", event, "params", params);
  if (!msg)
    return;
  for (struct conn *c = g_conns; c; c = c->next)
    if (c->subscribed && !c->streaming && c->w.fd >= 0)
      conn_send_json(c, msg);
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
    c->sess->ops->detach(c->sess);
  if (c->handler && c->handler->closed)
    c->handler->closed(c);
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

void conn_accept(int listen_fd, const struct conn_handler *handler)
{
  for (;;) {
    struct ucred cred;
    socklen_t len = sizeof(cred);
    cleanup_free struct conn *c = NULL;
    cleanup_close int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0)
      return;
    /* Only our own uid may drive the shim (the socket dir is 0700 as well). */
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.uid != getuid()) {
      shim_log("refused connection from uid %d", (int) cred.uid);
      continue;
    }
    c = calloc(1, sizeof(*c));
    if (!c)
      continue;
    c->w.kind = W_CONN;
    c->w.fd = fd;
    c->w.obj = c;
    c->handler = handler;
    if (loop_add(&c->w, EPOLLIN) < 0)
      continue;
    c->next = g_conns;
    g_conns = c;
    c = NULL; /* in g_conns, with its fd */
    fd = -1;
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

/* ---- input --------------------------------------------------------------- */

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
      c->sess->ops->input(c->sess, (enum frame_type) p[0], (const char *) p + 5, len);
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
    if (len > 0 && c->handler)
      c->handler->line(c, start, len);
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
