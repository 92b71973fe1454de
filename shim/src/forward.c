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

/* End the session: an exit frame saying why, then the connection closes. */
static void forward_end(struct forward *f, const char *why)
{
  json_t *j;
  char *text;
  if (f->done)
    return;
  f->done = true;
  if (f->w.fd >= 0) {
    loop_del(&f->w);
    close(f->w.fd);
    f->w.fd = -1;
  }
  j = why ? json_pack("{s:s}", "error", why) : json_pack("{s:b}", "eof", 1);
  text = j ? json_dumps(j, JSON_COMPACT) : NULL;
  if (text)
    conn_send_frame(f->conn, FRAME_EXIT, text, strlen(text));
  free(text);
  json_decref(j);
  conn_finish(f->conn);
}

/* The pod's network namespace, or -1 when the pod has none of its own (host network). */
static int pod_netns_fd(struct shim_err *err)
{
  json_t *pod = pod_json();
  const char *path = json_string_value(json_object_get(json_object_get(pod, "namespaces"), "net"));
  int fd = -1;
  if (path) {
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      shim_fail_errno(err, errno, "open the pod's network namespace %s", path);
  }
  json_decref(pod);
  return path ? (fd < 0 ? -2 : fd) : -1;
}

/* A nonblocking TCP socket made in the pod's network namespace. */
static int socket_in_pod(struct shim_err *err)
{
  int podns = pod_netns_fd(err), own = -1, s = -1, e = 0;
  if (podns == -2)
    return -1;
  if (podns >= 0) {
    own = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (own < 0) {
      e = errno;
      close(podns);
      return shim_fail_errno(err, e, "open the shim's network namespace");
    }
    if (setns(podns, CLONE_NEWNET) < 0) {
      e = errno;
      close(podns);
      close(own);
      return shim_fail_errno(err, e, "enter the pod's network namespace");
    }
  }
  s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  e = errno;
  if (podns >= 0) {
    /* Back home: failing that would leave the shim in the pod's namespace. */
    if (setns(own, CLONE_NEWNET) < 0) {
      shim_log("cannot return to the shim's network namespace: %s", strerror(errno));
      _exit(1);
    }
    close(own);
    close(podns);
  }
  if (s < 0)
    return shim_fail_errno(err, e, "socket");
  return s;
}

int forward_start(json_t *params, struct conn *conn, json_t *req_id, struct shim_err *err)
{
  json_t *pj = json_object_get(params, "port");
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  struct forward *f;
  struct stream_sess *s;
  int fd, r;
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
  if (r < 0 && errno != EINPROGRESS) {
    int e = errno;
    close(fd);
    return shim_fail_errno(err, e, "connect to port %d in the pod's network namespace", (int) json_integer_value(pj));
  }
  f = calloc(1, sizeof(*f));
  s = calloc(1, sizeof(*s));
  if (!f || !s) {
    free(f);
    free(s);
    close(fd);
    return shim_fail_errno(err, ENOMEM, "port forward");
  }
  f->w.kind = W_FORWARD;
  f->w.fd = fd;
  f->w.obj = f;
  f->conn = conn;
  f->sess = s;
  f->port = (int) json_integer_value(pj);
  f->connecting = r < 0;
  f->reading = true;
  s->conn = conn;
  s->fwd = f;
  conn->sess = s;
  /* No more request lines on this connection: it carries the stream's frames. */
  conn->streaming = true;
  if (loop_add(&f->w, f->connecting ? EPOLLOUT : EPOLLIN) < 0) {
    sess_detach(s);
    return shim_fail_errno(err, errno, "watch the forwarded socket");
  }
  if (f->connecting)
    f->req_id = json_incref(req_id);
  else
    conn_send_result(conn, req_id, json_object());
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

void forward_input(struct forward *f, enum frame_type type, const char *data, size_t len)
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

void forward_drained(struct forward *f)
{
  if (f->done || f->reading)
    return;
  f->reading = true;
  forward_update(f);
}

void forward_close(struct forward *f)
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
