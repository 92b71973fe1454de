/* log.c: container output in the CRI log format kubelet reads:
 * "<RFC3339Nano> <stdout|stderr> <P|F> <text>\n". A full line is tagged F. A
 * line is held until its newline; one that reaches 16 KiB first is cut and
 * the piece tagged P, and so is what is left when the stream ends. */
#include "shim.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <stdio.h>
#include <unistd.h>

#define CRI_LINE_MAX (16 * 1024)

struct cri_log {
  char *path;
  int fd;
  /* The unfinished line of stdout and stderr (allocated while one exists). */
  char *partial[2];
  size_t partial_len[2];
};

static int open_log(const char *path, struct shim_err *err)
{
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0640);
  if (fd < 0)
    return shim_fail_errno(err, errno, "open log file %s", path);
  return fd;
}

int cri_log_open(const char *path, struct cri_log **out, struct shim_err *err)
{
  cleanup_free struct cri_log *log = NULL;
  cleanup_close int fd = -1;
  if (!path || path[0] != '/')
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "log path must be absolute, got \"%s\"", path ? path : "");
  fd = open_log(path, err);
  if (fd < 0)
    return -1;
  log = calloc(1, sizeof(*log));
  if (!log || !(log->path = strdup(path)))
    return shim_fail_errno(err, ENOMEM, "log %s", path);
  log->fd = fd;
  fd = -1;
  *out = log;
  log = NULL;
  return 0;
}

static void write_record(struct cri_log *log, const char *prefix, size_t prefix_len, char tag, const char *text,
                         size_t len)
{
  char tagbuf[3] = { tag, ' ', 0 };
  struct iovec iov[4] = {
    { (void *) prefix, prefix_len },
    { tagbuf, 2 },
    { (void *) text, len },
    { "\n", 1 },
  };
  /* One writev per record so concurrent readers never see half a line. A
   * failing log (disk full) must not stop the container: the record is lost. */
  if (writev(log->fd, iov, 4) < 0)
    shim_log("write log %s: %s", log->path, strerror(errno));
}

static size_t make_prefix(int stream, char *prefix, size_t size)
{
  size_t n;
  format_rfc3339nano(now_ns(), prefix, size);
  n = strlen(prefix);
  return n + (size_t) snprintf(prefix + n, size - n, " %s ", stream == STREAM_STDERR ? "stderr" : "stdout");
}

void cri_log_write(struct cri_log *log, int stream, const char *buf, size_t len)
{
  char prefix[80];
  size_t prefix_len;
  int s = stream == STREAM_STDERR ? 1 : 0;
  if (!log || log->fd < 0 || len == 0)
    return;
  prefix_len = make_prefix(stream, prefix, sizeof(prefix));
  while (len > 0) {
    size_t held = log->partial_len[s];
    size_t room = CRI_LINE_MAX - held;
    const char *nl = memchr(buf, '\n', len < room ? len : room);
    size_t take = nl ? (size_t) (nl - buf) : (len < room ? len : room);
    bool full = nl || held + take == CRI_LINE_MAX;
    if (!full) {
      /* Keep the unfinished line for the next read. */
      if (!log->partial[s] && !(log->partial[s] = malloc(CRI_LINE_MAX))) {
        write_record(log, prefix, prefix_len, 'P', buf, take); /* no memory: write it as it is */
        return;
      }
      memcpy(log->partial[s] + held, buf, take);
      log->partial_len[s] += take;
      return;
    }
    if (held) {
      memcpy(log->partial[s] + held, buf, take);
      write_record(log, prefix, prefix_len, nl ? 'F' : 'P', log->partial[s], held + take);
      free(log->partial[s]);
      log->partial[s] = NULL;
      log->partial_len[s] = 0;
    } else {
      write_record(log, prefix, prefix_len, nl ? 'F' : 'P', buf, take);
    }
    buf += take + (nl ? 1 : 0);
    len -= take + (nl ? 1 : 0);
  }
}

void cri_log_flush(struct cri_log *log, int stream)
{
  char prefix[80];
  int s = stream == STREAM_STDERR ? 1 : 0;
  if (!log || !log->partial_len[s])
    return;
  write_record(log, prefix, make_prefix(stream, prefix, sizeof(prefix)), 'P', log->partial[s], log->partial_len[s]);
  free(log->partial[s]);
  log->partial[s] = NULL;
  log->partial_len[s] = 0;
}

int cri_log_reopen(struct cri_log *log, struct shim_err *err)
{
  int fd = open_log(log->path, err);
  if (fd < 0)
    return -1;
  if (log->fd >= 0)
    close(log->fd);
  log->fd = fd;
  return 0;
}

void cri_log_close(struct cri_log *log)
{
  if (!log)
    return;
  cri_log_flush(log, STREAM_STDOUT);
  cri_log_flush(log, STREAM_STDERR);
  if (log->fd >= 0)
    close(log->fd);
  free(log->path);
  free(log);
}
