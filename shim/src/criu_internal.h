/* criu_internal.h: what the dump (criu.c) and the restore (criu_restore.c) share: CRIU's
 * command line, built up, and one run of it under a deadline. */
#ifndef SKIFF_SHIM_CRIU_INTERNAL_H
#define SKIFF_SHIM_CRIU_INTERNAL_H

#include "core.h"

/* The names CRIU's images give the namespaces a container joins (dump: --external
 * net[ino]:KEY; restore: --inherit-fd fd[N]:KEY), as runc and crun name them. */
#define CRIU_NET_KEY "extRootNetNS"
#define CRIU_PID_KEY "extRootPidNS"
/* The stdio of the container's init as CRIU names each (runc's file name and format). */
#define CRIU_DESCRIPTORS "descriptors.json"

/* A NULL-terminated argument list that owns its strings; a failed push marks it
 * failed (argv_failed) and the run refuses it. */
struct argv_list {
  char **v;
  size_t n, cap;
  bool failed;
};
void argv_push(struct argv_list *a, const char *s);
void argv_pushf(struct argv_list *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void argv_free(struct argv_list *a);

struct criu_run {
  const char *what;     /* "dump" or "restore": for messages */
  const char *work_dir; /* CRIU's --work-dir: its log and our capture of its output */
  const char *log_name; /* the log file in work_dir that failures are quoted from */
  int64_t timeout_ms;
  const int *fds;       /* handed to CRIU as fds 3, 4, ... in this order */
  size_t n_fds;
  struct cgroup *cg;    /* NULL, or the cgroup CRIU runs in (what it restores lands there) */
};
/* Run argv (argv[0] the CRIU binary) to its end: 0 when it exited 0; else an error
 * quoting the errors of its log (DEADLINE_EXCEEDED when it was killed at the deadline). */
int criu_exec(struct argv_list *argv, const struct criu_run *run, struct shim_err *err);

/* Mount points of the container's bind mounts: external to CRIU (kubelet's volumes and
 * the pod's files); key and mount point are both the destination. */
bool criu_is_bind(const struct spec_mount *m);

#endif
