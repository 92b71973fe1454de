/* test_criu.c: one run of CRIU as the shim makes it (criu_exec), with a stand-in script:
 * the fds it is given at 3, 4, ...; a failure quoted from the Error lines of its log (not
 * the RLIMIT_NOFILE one CRIU logs and carries on from); a run past its deadline killed. */
#include "harness.h"
#include "criu_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void write_script(const char *path, const char *body)
{
  FILE *f = fopen(path, "w");
  if (!f)
    exit(tap_bail("write %s: %s", path, strerror(errno)));
  fprintf(f, "#!/bin/sh\n%s\n", body);
  fclose(f);
  chmod(path, 0755);
}

static int run(const char *script, const char *dir, const int *fds, size_t n_fds, int64_t timeout_ms, struct shim_err *err)
{
  struct argv_list argv = { 0 };
  struct criu_run r = { .what = "dump", .work_dir = dir, .log_name = "dump.log", .timeout_ms = timeout_ms, .fds = fds, .n_fds = n_fds };
  int rc;
  argv_push(&argv, script);
  argv_push(&argv, "dump");
  rc = criu_exec(&argv, &r, err);
  argv_free(&argv);
  return rc;
}

int main(void)
{
  char dir[] = "/tmp/skiff-test-criu-XXXXXX", script[256], body[1024], out[256], want[64];
  struct shim_err err = { 0 };
  int p[2];
  cleanup_free char *text = NULL;
  size_t len;
  struct timespec t0, t1;

  if (!mkdtemp(dir))
    return tap_bail("mkdtemp: %s", strerror(errno));
  snprintf(script, sizeof(script), "%s/criu", dir);
  snprintf(out, sizeof(out), "%s/fd3", dir);

  /* The fds: the pipe given is the run's fd 3. */
  if (pipe(p) < 0)
    return tap_bail("pipe: %s", strerror(errno));
  snprintf(body, sizeof(body), "readlink /proc/self/fd/3 > %s", out);
  write_script(script, body);
  check_rc(run(script, dir, &p[1], 1, 10000, &err), &err, "a run that exits 0 succeeds");
  {
    struct stat st;
    fstat(p[1], &st);
    snprintf(want, sizeof(want), "pipe:[%llu]\n", (unsigned long long) st.st_ino);
  }
  if (read_file(out, &text, &len, 4096, &err) < 0)
    check(false, "read %s: %s", out, err.msg);
  else
    check(strcmp(text, want) == 0, "the fd given is its fd 3 (%s)", text);
  close(p[0]), close(p[1]);

  /* A failure: the Error lines of its log, not the RLIMIT one. */
  snprintf(body, sizeof(body),
           "printf '(00.01) Error (criu/util.c:1534): rlimit: Can'\\''t setup RLIMIT_NOFILE for self\\n"
           "(00.02) Info all fine\\n(00.03) Error (criu/mount.c:753): mnt: 94:./sys/fs/cgroup/unified has no proper root mount\\n' > %s/dump.log\n"
           "exit 1",
           dir);
  write_script(script, body);
  check(run(script, dir, NULL, 0, 10000, &err) < 0 && err.code == SHIM_INTERNAL, "a run that exits 1 fails: %s", err.msg);
  check(strstr(err.msg, "criu dump failed (exit status 1)") && strstr(err.msg, "mnt: 94:./sys/fs/cgroup/unified has no proper root mount")
            && !strstr(err.msg, "RLIMIT_NOFILE"),
        "the error quotes the log's Error lines, not the RLIMIT one: %s", err.msg);

  /* Nothing in its log: what it printed. */
  snprintf(body, sizeof(body), "rm -f %s/dump.log; echo 'unknown option --bogus' >&2; exit 1", dir);
  write_script(script, body);
  check(run(script, dir, NULL, 0, 10000, &err) < 0 && strstr(err.msg, "unknown option --bogus"), "without a log, its output: %s", err.msg);

  /* Past its deadline: killed, DEADLINE_EXCEEDED, at once. */
  write_script(script, "sleep 30");
  clock_gettime(CLOCK_MONOTONIC, &t0);
  check(run(script, dir, NULL, 0, 300, &err) < 0 && err.code == SHIM_DEADLINE_EXCEEDED && strstr(err.msg, "not done after 300 ms"),
        "a run past its deadline is killed: %s", err.msg);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  check(t1.tv_sec - t0.tv_sec < 20, "and is not waited for (%ld s)", (long) (t1.tv_sec - t0.tv_sec));

  snprintf(body, sizeof(body), "rm -rf %s", dir);
  if (system(body) != 0)
    check(false, "remove %s", dir);
  return tap_done();
}
