/* err.c: the error object every fallible function fills, and cleanup helpers. */
#include "shim.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const code_names[] = {
  [SHIM_INTERNAL] = "INTERNAL",
  [SHIM_INVALID_ARGUMENT] = "INVALID_ARGUMENT",
  [SHIM_NOT_FOUND] = "NOT_FOUND",
  [SHIM_ALREADY_EXISTS] = "ALREADY_EXISTS",
  [SHIM_FAILED_PRECONDITION] = "FAILED_PRECONDITION",
  [SHIM_DEADLINE_EXCEEDED] = "DEADLINE_EXCEEDED",
  [SHIM_RESOURCE_EXHAUSTED] = "RESOURCE_EXHAUSTED",
};

const char *shim_code_name(enum shim_code code)
{
  if ((size_t) code >= sizeof(code_names) / sizeof(code_names[0]) || !code_names[code])
    return "INTERNAL";
  return code_names[code];
}

/* What a failed call's errno says about the request, in gRPC's terms. EPERM and EACCES
 * stay INTERNAL: the shim runs as root, so such a refusal is the host's (an LSM, a kernel
 * limit, a file mode in the image), never the caller's missing permission that
 * PERMISSION_DENIED would tell kubelet of. */
enum shim_code shim_code_for_errno(int errnum)
{
  switch (errnum) {
  case ENOENT:
    return SHIM_NOT_FOUND;
  case EEXIST:
    return SHIM_ALREADY_EXISTS;
  case EINVAL:
    return SHIM_INVALID_ARGUMENT;
  case EBUSY:
    return SHIM_FAILED_PRECONDITION;
  case ETIMEDOUT:
    return SHIM_DEADLINE_EXCEEDED;
  case ENOMEM:
  case ENOSPC:
  case EDQUOT:
  case EAGAIN:
  case EMFILE:
  case ENFILE:
    return SHIM_RESOURCE_EXHAUSTED;
  default:
    return SHIM_INTERNAL;
  }
}

int shim_fail(struct shim_err *err, enum shim_code code, const char *fmt, ...)
{
  va_list ap;
  if (!err)
    return -1;
  err->code = code;
  err->errnum = 0;
  va_start(ap, fmt);
  vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
  va_end(ap);
  return -1;
}

int shim_fail_errno(struct shim_err *err, int errnum, const char *fmt, ...)
{
  va_list ap;
  size_t n;
  if (!err)
    return -1;
  err->errnum = errnum;
  err->code = shim_code_for_errno(errnum);
  va_start(ap, fmt);
  vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
  va_end(ap);
  n = strlen(err->msg);
  if (n < sizeof(err->msg))
    snprintf(err->msg + n, sizeof(err->msg) - n, ": %s", strerror(errnum));
  return -1;
}

void shim_err_prefix(struct shim_err *err, const char *fmt, ...)
{
  char prefix[256], old[sizeof(err->msg)];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof(prefix), fmt, ap);
  va_end(ap);
  memcpy(old, err->msg, sizeof(old));
  snprintf(err->msg, sizeof(err->msg), "%s: %s", prefix, old);
}

void cleanup_freep(void *p)
{
  free(*(void **) p);
}

void cleanup_closep(int *fd)
{
  if (*fd >= 0) {
    int saved = errno;
    close(*fd);
    errno = saved;
  }
}

void cleanup_jsonp(json_t **j)
{
  if (*j)
    json_decref(*j);
}
