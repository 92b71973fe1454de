/* log.c: container output in the CRI log format kubelet reads:
 * "<RFC3339Nano> <stdout|stderr> <P|F> <text>\n". A full line is tagged F; a
 * piece without its newline (the end of a read, or a 16 KiB cut) is tagged P. */
#include "shim.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define CRI_LINE_MAX (16 * 1024)

struct cri_log {
  char *path;
  int fd;
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
  struct cri_log *log;
  int fd;
  if (!path || path[0] != '/')
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "log path must be absolute, got \"%s\"", path ? path : "");
  fd = open_log(path, err);
  if (fd < 0)
    return -1;
  log = calloc(1, sizeof(*log));
  if (!log || !(log->path = strdup(path))) {
    free(log);
    close(fd);
    return shim_fail_errno(err, ENOMEM, "log %s", path);
  }
  log->fd = fd;
  *out = log;
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

void cri_log_write(struct cri_log *log, int stream, const char *buf, size_t len)
{
  char prefix[80];
  size_t prefix_len;
  if (!log || log->fd < 0 || len == 0)
    return;
  format_rfc3339nano(now_ns(), prefix, sizeof(prefix));
  prefix_len = strlen(prefix);
  prefix_len += (size_t) snprintf(prefix + prefix_len, sizeof(prefix) - prefix_len, " %s ",
                                  stream == STREAM_STDERR ? "stderr" : "stdout");
  while (len > 0) {
    const char *nl = memchr(buf, '\n', len < CRI_LINE_MAX ? len : CRI_LINE_MAX);
    if (nl) {
      size_t n = (size_t) (nl - buf);
      write_record(log, prefix, prefix_len, 'F', buf, n);
      buf += n + 1;
      len -= n + 1;
    } else {
      size_t n = len < CRI_LINE_MAX ? len : CRI_LINE_MAX;
      write_record(log, prefix, prefix_len, 'P', buf, n);
      buf += n;
      len -= n;
    }
  }
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
  if (log->fd >= 0)
    close(log->fd);
  free(log->path);
  free(log);
}
