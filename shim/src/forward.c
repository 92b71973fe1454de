/* forward.c: port forwarding for CRI PortForward: a TCP connection to 127.0.0.1:port
 * made inside the pod's network namespace (the socket is created there, then the
 * shim returns to its own namespace: a socket stays in the namespace it was made
 * in), relayed over a frame-mode connection: stdin frames to the socket, its bytes
 * back as stdout frames, close-stdin as a half-close, an exit frame at the end. */
#include "core.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct forward {
  struct watch w;
  struct conn *conn;
  struct stream_sess *sess;
  json_t *req_id;     /* answered when the connect completes */
  int port;
  struct buf out;     /* bytes for the socket */
  bool connecting;
  bool reading;       /* EPOLLIN wanted (off while the client is backed up) */
  bool shut_wr;       /* the client closed its side: shutdown once out drains */
  bool done;
};

static void forward_update(struct forward *f)
{
  uint32_t ev = 0;
  if (f->w.fd < 0)
    return;
  if (f->connecting || buf_pending(&f->out))
    ev |= EPOLLOUT;
  if (!f->connecting && f->reading)
    ev |= EPOLLIN;
  loop_mod(&f->w, ev);
}

static void forward_free(void *p)
{
  struct forward *f = p;
  buf_free(&f->out);
  free(f);
}

static const struct stream_ops forward_stream_ops;

/* End the session: an exit frame saying why, then the connection closes. */
static void forward_end(struct forward *f, const char *why)
{
  cleanup_json json_t *j = NULL;
  if (f->done)
    return;
  f->done = true;
  if (f->w.fd >= 0) {
    loop_del(&f->w);
    close(f->w.fd);
    f->w.fd = -1;
  }
  j = why ? json_pack("{s:s}", "error", why) : json_pack("{s:b}", "eof", 1);
  if (j)
    conn_send_json_frame(f->conn, FRAME_EXIT, j);
  conn_finish(f->conn);
}

/* The pod's network namespace, or -1 when the pod has none of its own (host network). */
static int pod_netns_fd(struct shim_err *err)
{
  cleanup_json json_t *pod = pod_json();
  const char *path = json_string_value(json_object_get(json_object_get(pod, "namespaces"), "net"));
  int fd;
  if (!path)
    return -1;
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    shim_fail_errno(err, errno, "open the pod's network namespace %s", path);
    return -2;
  }
  return fd;
}

/* A nonblocking TCP socket made in the pod's network namespace. */
static int socket_in_pod(struct shim_err *err)
{
  cleanup_close int podns = pod_netns_fd(err);
  cleanup_close int own = -1;
  int s, e;
  if (podns == -2)
    return -1;
  if (podns >= 0) {
    own = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (own < 0)
      return shim_fail_errno(err, errno, "open the shim's network namespace");
    if (setns(podns, CLONE_NEWNET) < 0)
      return shim_fail_errno(err, errno, "enter the pod's network namespace");
  }
  s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  e = errno;
  /* Back home: failing that would leave the shim in the pod's namespace. */
  if (podns >= 0 && setns(own, CLONE_NEWNET) < 0) {
    shim_log("cannot return to the shim's network namespace: %s", strerror(errno));
    _exit(1);
  }
  if (s < 0)
    return shim_fail_errno(err, e, "socket");
  return s;
}

int forward_start(json_t *params, struct conn *conn, json_t *req_id, struct shim_err *err)
{
  json_t *pj = json_object_get(params, "port");
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  cleanup_close int fd = -1;
  cleanup_free struct forward *f = NULL;
  cleanup_free struct stream_sess *s = NULL;
  int r;
  if (!json_is_integer(pj) || json_integer_value(pj) < 1 || json_integer_value(pj) > 65535)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "params.port: an integer in 1-65535 is required");
  if (conn->sess)
    return shim_fail(err, SHIM_FAILED_PRECONDITION, "the connection already carries a stream");
  fd = socket_in_pod(err);
  if (fd < 0)
    return -1;
  a.sin_port = htons((uint16_t) json_integer_value(pj));
  do
    r = connect(fd, (struct sockaddr *) &a, sizeof(a));
  while (r < 0 && errno == EINTR);
  if (r < 0 && errno != EINPROGRESS)
    return shim_fail_errno(err, errno, "connect to port %d in the pod's network namespace", (int) json_integer_value(pj));
  f = calloc(1, sizeof(*f));
  s = calloc(1, sizeof(*s));
  if (!f || !s)
    return shim_fail_errno(err, ENOMEM, "port forward");
  f->w.kind = W_FORWARD;
  f->w.fd = fd;
  f->w.obj = f;
  f->connecting = r < 0;
  if (loop_add(&f->w, f->connecting ? EPOLLOUT : EPOLLIN) < 0)
    return shim_fail_errno(err, errno, "watch the forwarded socket");
  f->conn = conn;
  f->sess = s;
  f->port = (int) json_integer_value(pj);
  f->reading = true;
  s->ops = &forward_stream_ops;
  s->conn = conn;
  s->fwd = f;
  conn->sess = s;
  /* No more request lines on this connection: it carries the stream's frames. */
  conn->streaming = true;
  if (f->connecting)
    f->req_id = json_incref(req_id);
  else
    conn_send_result(conn, req_id, json_object());
  fd = -1; /* the session's now */
  f = NULL;
  s = NULL;
  return 1;
}

static void forward_connected(struct forward *f)
{
  int soerr = 0;
  socklen_t len = sizeof(soerr);
  json_t *id = f->req_id;
  f->req_id = NULL;
  f->connecting = false;
  if (getsockopt(f->w.fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
    soerr = errno;
  if (soerr) {
    struct shim_err err;
    shim_fail_errno(&err, soerr, "connect to port %d in the pod's network namespace", f->port);
    f->done = true; /* the error answer is the end; no exit frame */
    conn_send_error(f->conn, id, &err);
    json_decref(id);
    conn_finish(f->conn);
    return;
  }
  conn_send_result(f->conn, id, json_object());
  json_decref(id);
  forward_update(f);
}

static void forward_flush(struct forward *f)
{
  while (buf_pending(&f->out)) {
    ssize_t w = send(f->w.fd, f->out.data + f->out.off, buf_pending(&f->out), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      break;
    if (w < 0) {
      forward_end(f, strerror(errno));
      return;
    }
    buf_consume(&f->out, (size_t) w);
  }
  if (!buf_pending(&f->out)) {
    if (f->shut_wr)
      shutdown(f->w.fd, SHUT_WR);
    if (f->conn->paused)
      conn_resume(f->conn);
  }
  forward_update(f);
}

void forward_event(struct forward *f, uint32_t events)
{
  char tmp[65536];
  if (f->connecting) {
    if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
      forward_connected(f);
    return;
  }
  if (events & EPOLLOUT)
    forward_flush(f);
  if (f->done || f->w.fd < 0)
    return;
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
    for (int i = 0; i < 16 && f->reading; i++) {
      ssize_t r = recv(f->w.fd, tmp, sizeof(tmp), MSG_DONTWAIT);
      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        break;
      if (r <= 0) {
        forward_end(f, r < 0 ? strerror(errno) : NULL);
        return;
      }
      conn_send_frame(f->conn, FRAME_STDOUT, tmp, (size_t) r);
      if (f->conn->w.fd < 0)
        return;
      /* The client reads slower than the socket gives: wait for it to drain. */
      if (conn_pending(f->conn) > CONN_HIGH_WATER)
        f->reading = false;
    }
    forward_update(f);
  }
}

static void forward_input(struct forward *f, enum frame_type type, const char *data, size_t len)
{
  if (f->done || f->connecting)
    return;
  if (type == FRAME_STDIN && len) {
    if (buf_append(&f->out, data, len) < 0) {
      forward_end(f, "out of memory");
      return;
    }
    forward_flush(f);
    /* The socket takes less than the client sends: stop reading the client. */
    if (!f->done && buf_pending(&f->out) > CONN_HIGH_WATER && !f->conn->paused) {
      f->conn->paused = true;
      loop_mod(&f->conn->w, conn_pending(f->conn) ? EPOLLOUT : 0);
    }
  } else if (type == FRAME_CLOSE_STDIN) {
    f->shut_wr = true;
    forward_flush(f);
  }
}

static void forward_drained(struct forward *f)
{
  if (f->done || f->reading)
    return;
  f->reading = true;
  forward_update(f);
}

static void forward_close(struct forward *f)
{
  if (f->w.fd >= 0) {
    loop_del(&f->w);
    close(f->w.fd);
    f->w.fd = -1;
  }
  json_decref(f->req_id);
  f->req_id = NULL;
  f->done = true;
  defer_free(f, forward_free);
}

static void forward_stream_input(struct stream_sess *s, enum frame_type type, const char *data, size_t len)
{
  forward_input(s->fwd, type, data, len);
}

static void forward_stream_drained(struct stream_sess *s)
{
  forward_drained(s->fwd);
}

static void forward_stream_detach(struct stream_sess *s)
{
  forward_close(s->fwd);
  s->conn->sess = NULL;
  free(s);
}

static const struct stream_ops forward_stream_ops = {
  .input = forward_stream_input,
  .drained = forward_stream_drained,
  .detach = forward_stream_detach,
};
