/* harness.h: what every C unit test of the shim uses (harness.c): a TAP-style report
 * ("ok - name" or "not ok - name" per check, then "N passed, N failed"), JSON from the
 * test's own text, and a case run in a forked child that reports through a pipe. */
#ifndef SKIFF_TEST_HARNESS_H
#define SKIFF_TEST_HARNESS_H

#include "shim.h"

#include <stdbool.h>
#include <stddef.h>

void check(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Check that a call returned 0, naming its error when it did not; returns whether it did. */
bool check_rc(int rc, const struct shim_err *err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The counts so far, and counts to add (from a child test program's report). */
void tap_counts(int *passed, int *failed);
void tap_add(int passed, int failed);
/* Print the totals; the program's exit status. */
int tap_done(void);
/* The program cannot run here: one failed check saying why, the totals; exit status 1. */
int tap_bail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The JSON of a test's text; a mistake in it ends the program (exit 2). */
json_t *test_json(const char *text);

struct child_result {
  int exit_code; /* -1 when a signal ended the child */
  int signal;    /* that signal, or 0 */
};
/* Run fn(fd, arg) in a forked child and wait for it: what it writes to fd is in out
 * (NUL-terminated), and what fn returns is its exit code. */
void run_child(int (*fn)(int fd, void *arg), void *arg, char *out, size_t out_len, struct child_result *res);

#endif
