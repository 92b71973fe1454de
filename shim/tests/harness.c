/* harness.c: the C unit tests' shared report, JSON and child-process helpers. */
#include "harness.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int g_passed, g_failed;

static void vreport(bool ok, const char *fmt, va_list ap, const char *suffix)
{
  printf("%s - ", ok ? "ok" : "not ok");
  vprintf(fmt, ap);
  printf("%s\n", suffix);
  fflush(stdout);
  if (ok)
    g_passed++;
  else
    g_failed++;
}

void check(bool ok, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vreport(ok, fmt, ap, "");
  va_end(ap);
}

bool check_rc(int rc, const struct shim_err *err, const char *fmt, ...)
{
  char suffix[sizeof(err->msg) + 2] = "";
  va_list ap;
  if (rc != 0)
    snprintf(suffix, sizeof(suffix), ": %s", err->msg);
  va_start(ap, fmt);
  vreport(rc == 0, fmt, ap, suffix);
  va_end(ap);
  return rc == 0;
}

void tap_counts(int *passed, int *failed)
{
  *passed = g_passed;
  *failed = g_failed;
}

void tap_add(int passed, int failed)
{
  g_passed += passed;
  g_failed += failed;
}

int tap_done(void)
{
  printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed ? 1 : 0;
}

int tap_bail(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vreport(false, fmt, ap, "");
  va_end(ap);
  return tap_done();
}

json_t *test_json(const char *text)
{
  json_error_t jerr;
  json_t *j = json_loads(text, 0, &jerr);
  if (!j) {
    fprintf(stderr, "bad test JSON: %s: %s\n", jerr.text, text);
    exit(2);
  }
  return j;
}

void run_child(int (*fn)(int fd, void *arg), void *arg, char *out, size_t out_len, struct child_result *res)
{
  int fds[2], status;
  size_t n = 0;
  ssize_t r;
  pid_t pid;

  res->exit_code = -1;
  res->signal = 0;
  out[0] = '\0';
  if (pipe(fds) < 0)
    return;
  fflush(stdout);
  pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return;
  }
  if (pid == 0) {
    close(fds[0]);
    _exit(fn(fds[1], arg));
  }
  close(fds[1]);
  while (n + 1 < out_len && (r = read(fds[0], out + n, out_len - 1 - n)) != 0) {
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      break;
    n += (size_t) r;
  }
  out[n] = '\0';
  close(fds[0]);
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  if (WIFEXITED(status))
    res->exit_code = WEXITSTATUS(status);
  else if (WIFSIGNALED(status))
    res->signal = WTERMSIG(status);
}
