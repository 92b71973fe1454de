/* test_err.c: the error object: the code a failed call's errno gives, the code's name on
 * the wire, and the message with its context and strerror. */
#include "shim.h"
#include "harness.h"

#include <string.h>

int main(void)
{
  static const struct {
    int errnum;
    enum shim_code code;
    const char *name;
  } cases[] = {
    { ENOENT, SHIM_NOT_FOUND, "NOT_FOUND" },
    { EEXIST, SHIM_ALREADY_EXISTS, "ALREADY_EXISTS" },
    { EINVAL, SHIM_INVALID_ARGUMENT, "INVALID_ARGUMENT" },
    { EBUSY, SHIM_FAILED_PRECONDITION, "FAILED_PRECONDITION" },
    { ETIMEDOUT, SHIM_DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED" },
    { ENOMEM, SHIM_RESOURCE_EXHAUSTED, "RESOURCE_EXHAUSTED" },
    { ENOSPC, SHIM_RESOURCE_EXHAUSTED, "RESOURCE_EXHAUSTED" },
    { EDQUOT, SHIM_RESOURCE_EXHAUSTED, "RESOURCE_EXHAUSTED" },
    { EAGAIN, SHIM_RESOURCE_EXHAUSTED, "RESOURCE_EXHAUSTED" },
    { EMFILE, SHIM_RESOURCE_EXHAUSTED, "RESOURCE_EXHAUSTED" },
    { ENFILE, SHIM_RESOURCE_EXHAUSTED, "RESOURCE_EXHAUSTED" },
    /* The shim runs as root: a refusal is the host's, not the caller's. */
    { EPERM, SHIM_INTERNAL, "INTERNAL" },
    { EACCES, SHIM_INTERNAL, "INTERNAL" },
    { EIO, SHIM_INTERNAL, "INTERNAL" },
  };
  struct shim_err err;

  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char want[512];
    memset(&err, 0, sizeof(err));
    check(shim_fail_errno(&err, cases[i].errnum, "write %s", "/x/y") == -1 && err.code == cases[i].code
              && err.errnum == cases[i].errnum && strcmp(shim_code_name(err.code), cases[i].name) == 0,
          "errno %d (%s) is %s", cases[i].errnum, strerror(cases[i].errnum), cases[i].name);
    snprintf(want, sizeof(want), "write /x/y: %s", strerror(cases[i].errnum));
    check(strcmp(err.msg, want) == 0, "errno %d: the message names the call and the errno (\"%s\")", cases[i].errnum, err.msg);
  }

  check(shim_fail_errno(&err, ENOENT, "open %s", "/a") == -1 && shim_fail(&err, SHIM_FAILED_PRECONDITION, "busy") == -1
            && err.code == SHIM_FAILED_PRECONDITION && err.errnum == 0 && strcmp(err.msg, "busy") == 0,
        "shim_fail sets its code and clears the errno of an earlier failure");
  shim_fail_errno(&err, EBUSY, "rmdir %s", "/sys/fs/cgroup/x");
  shim_err_prefix(&err, "delete %s", "c1");
  check(err.code == SHIM_FAILED_PRECONDITION && strncmp(err.msg, "delete c1: rmdir /sys/fs/cgroup/x: ", 35) == 0,
        "a prefix adds context and keeps the code (\"%s\")", err.msg);
  check(strcmp(shim_code_name((enum shim_code) 99), "INTERNAL") == 0, "an unknown code is named INTERNAL");
  check(shim_fail_errno(NULL, ENOENT, "nowhere") == -1, "a NULL error object is allowed");
  return tap_done();
}
