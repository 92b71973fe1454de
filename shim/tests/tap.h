/* tap.h: the C unit tests' TAP-style report: "ok - name" or "not ok - name" per
 * check, and a closing "N passed, N failed" line. Included once per test program. */
#ifndef SKIFF_TEST_TAP_H
#define SKIFF_TEST_TAP_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

static int passed, failed;

static void check(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check(bool ok, const char *fmt, ...)
{
  va_list ap;
  printf("%s - ", ok ? "ok" : "not ok");
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  printf("\n");
  fflush(stdout);
  if (ok)
    passed++;
  else
    failed++;
}

/* Print the totals; the program's exit status. */
static int tap_done(void)
{
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}

#endif
