/* proc_io.c: the stdio of one process, owned by the shim: pipes or a pty master,
 * pumped through the event loop. Output is read as it comes and handed to the owner
 * (a container's log and attached clients, an exec's capture or stream); stdin bytes
 * are queued and written as the process reads them. */
#include "core.h"

#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

static void watch_close(struct watch *w)
{
  if (w->fd < 0)
    return;
  if (w->events)
    loop_del(w);
  close(w->fd);
  w->fd = -1;
  w->events = 0;
}

void proc_io_init(struct proc_io *io, const struct proc_io_ops *ops, void *owner)
{
  memset(io, 0, sizeof(*io));
  io->out = (struct watch) { .kind = W_OUTPUT, .fd = -1, .obj = io, .stream = STREAM_STDOUT };
  io->err = (struct watch) { .kind = W_OUTPUT, .fd = -1, .obj = io, .stream = STREAM_STDERR };
  io->in = (struct watch) { .kind = W_STDIN, .fd = -1, .obj = io };
  io->ops = ops;
  io->owner = owner;
}

void proc_io_close(struct proc_io *io)
{
  watch_close(&io->out);
  watch_close(&io->err);
  watch_close(&io->in);
  buf_free(&io->in_buf);
}

/* Pipes for a process: stdio[] gets the child's ends; with a tty there are
 * none (the process opens its pty and passes the master back). */
int proc_io_pipes(struct proc_io *io, bool tty, bool want_stdin, int stdio[3], struct shim_err *err)
{
  int p[2];
  stdio[0] = stdio[1] = stdio[2] = -1;
  io->tty = tty;
  if (tty)
    return 0;
  if (want_stdin) {
    if (pipe2(p, O_CLOEXEC) < 0)
      goto fail;
    stdio[0] = p[0];
    io->in.fd = p[1];
    fcntl(p[1], F_SETFL, O_NONBLOCK);
  }
  if (pipe2(p, O_CLOEXEC) < 0)
    goto fail;
  stdio[1] = p[1];
  io->out.fd = p[0];
  if (pipe2(p, O_CLOEXEC) < 0)
    goto fail;
  stdio[2] = p[1];
  io->err.fd = p[0];
  fcntl(io->out.fd, F_SETFL, O_NONBLOCK);
  fcntl(io->err.fd, F_SETFL, O_NONBLOCK);
  return 0;
fail:
  shim_fail_errno(err, errno, "create stdio pipes");
  proc_io_close_child_ends(stdio);
  proc_io_close(io);
  return -1;
}

void proc_io_close_child_ends(int stdio[3])
{
  for (int i = 0; i < 3; i++)
    if (stdio[i] >= 0) {
      close(stdio[i]);
      stdio[i] = -1;
    }
}

void cleanup_child_endsp(int (*stdio)[3])
{
  proc_io_close_child_ends(*stdio);
}

/* Start pumping: register outputs; with a tty, master serves both ways. */
int proc_io_start(struct proc_io *io, int master, bool want_stdin, struct shim_err *err)
{
  if (master >= 0) {
    fcntl(master, F_SETFL, O_NONBLOCK);
    io->out.fd = master;
    if (want_stdin) {
      /* A second fd on the same pty, so stdin can wait for EPOLLOUT on its own. */
      io->in.fd = fcntl(master, F_DUPFD_CLOEXEC, 3);
      if (io->in.fd < 0)
        return shim_fail_errno(err, errno, "dup pty master");
    }
  }
  if (io->out.fd >= 0 && loop_add(&io->out, EPOLLIN) < 0)
    return shim_fail_errno(err, errno, "watch stdout");
  if (io->err.fd >= 0 && loop_add(&io->err, EPOLLIN) < 0)
    return shim_fail_errno(err, errno, "watch stderr");
  return 0;
}

/* Read what is there now; returns false at EOF (the watch is closed). */
static bool drain_output(struct watch *w, int max_reads)
{
  struct proc_io *io = proc_io_of(w);
  char buf[16384];
  for (int i = 0; i < max_reads; i++) {
    ssize_t r = read(w->fd, buf, sizeof(buf));
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return true;
    if (r <= 0) { /* EOF, or EIO from a pty whose last slave closed */
      if (io->ops && io->ops->end)
        io->ops->end(io->owner, w->stream);
      watch_close(w);
      return false;
    }
    if (io->ops)
      io->ops->output(io->owner, w->stream, buf, (size_t) r);
    if (w->fd < 0)
      return false;
  }
  return true;
}

void proc_output_event(struct watch *w, uint32_t events)
{
  /* Bounded per event so one chatty container cannot starve the others. */
  drain_output(w, 4);
}

void proc_io_drain(struct proc_io *io)
{
  /* A pty passes output to its master asynchronously: after the process
   * exited, wait for what is in flight until EIO says every slave fd is
   * closed (bounded: a background child may still hold the terminal). Pipes
   * hold everything already. */
  int64_t deadline = now_ns() + 500 * 1000000LL;
  while (io->tty && io->out.fd >= 0) {
    struct pollfd p = { .fd = io->out.fd, .events = POLLIN };
    int64_t left_ms = (deadline - now_ns()) / 1000000;
    if (left_ms <= 0 || poll(&p, 1, (int) left_ms) <= 0)
      break;
    drain_output(&io->out, 1);
  }
  if (io->out.fd >= 0)
    drain_output(&io->out, 1024);
  if (io->err.fd >= 0)
    drain_output(&io->err, 1024);
}

static void flush_stdin(struct proc_io *io)
{
  while (buf_pending(&io->in_buf) > 0) {
    ssize_t w = write(io->in.fd, io->in_buf.data + io->in_buf.off, buf_pending(&io->in_buf));
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0 && errno == EAGAIN)
      break;
    if (w < 0) { /* the reader is gone: drop what is queued */
      buf_free(&io->in_buf);
      watch_close(&io->in);
      break;
    }
    buf_consume(&io->in_buf, (size_t) w);
  }
  if (io->in.fd < 0)
    return;
  if (buf_pending(&io->in_buf) == 0) {
    if (io->in.events) {
      loop_del(&io->in);
      io->in.events = 0;
    }
    if (io->in_close_pending)
      proc_io_close_stdin(io);
  } else if (!io->in.events) {
    loop_add(&io->in, EPOLLOUT);
  }
  if (buf_pending(&io->in_buf) < CONN_HIGH_WATER && io->paused_conn) {
    struct conn *c = io->paused_conn;
    io->paused_conn = NULL;
    conn_resume(c);
  }
}

void proc_stdin_event(struct watch *w, uint32_t events)
{
  flush_stdin(proc_io_of(w));
}

bool proc_io_write_stdin(struct proc_io *io, const void *data, size_t len)
{
  if (io->in.fd < 0 || io->in_close_pending)
    return true; /* no stdin: the data is dropped, as a closed pipe would */
  if (buf_append(&io->in_buf, data, len) < 0)
    return false;
  flush_stdin(io);
  return buf_pending(&io->in_buf) < CONN_HIGH_WATER;
}

void proc_io_close_stdin(struct proc_io *io)
{
  if (io->in.fd < 0)
    return;
  if (buf_pending(&io->in_buf) > 0) {
    io->in_close_pending = true;
    return;
  }
  if (io->tty) {
    /* A terminal has no half-close: send the EOF character instead. */
    char eof = 4;
    if (write(io->in.fd, &eof, 1) < 0)
      shim_log("send EOF to tty: %s", strerror(errno));
  }
  watch_close(&io->in);
}

int proc_io_resize(struct proc_io *io, unsigned width, unsigned height, struct shim_err *err)
{
  struct winsize ws = { .ws_row = (unsigned short) height, .ws_col = (unsigned short) width };
  if (!io->tty || io->out.fd < 0)
    return shim_fail(err, SHIM_FAILED_PRECONDITION, "resize: the process has no terminal");
  if (ioctl(io->out.fd, TIOCSWINSZ, &ws) < 0)
    return shim_fail_errno(err, errno, "resize terminal");
  return 0;
}
