/* spawn.c: start a container's init or an exec'd process. The shim forks an
 * intermediate that joins the target namespaces and unshares new ones, which
 * clones the process proper as the shim's own child (CLONE_PARENT), tells the
 * shim its pid and exits. The process joins its cgroup itself (born in the
 * cgroup2 one where it can be), sets itself up step by step, reporting over a
 * SOCK_SEQPACKET channel of its own, and waits for "start" before execve. */
#include "core.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define SPAWN_TIMEOUT_MS 60000

/* The intermediate's channel carries PID, MAP_REQ, MAPPED and its ERROR; the
 * process's the rest. */
enum sync_type {
  SYNC_PID = 1,   /* intermediate -> shim: pid of the process */
  SYNC_MAP_REQ,   /* intermediate -> shim: write my uid/gid maps */
  SYNC_MAPPED,    /* shim -> intermediate */
  SYNC_READY,     /* process -> shim: set up (+ pty master fd) */
  SYNC_START,     /* shim -> process: execve */
  SYNC_ERROR,     /* any -> shim: failed, with message */
  SYNC_HOOKS,     /* process -> shim: mounts made, run the createRuntime hooks */
  SYNC_HOOKS_DONE, /* shim -> process: they ran */
};

struct sync_msg {
  int type;
  int code;
  int errnum;
  int pid;
  char msg[1024];
};

/* ---- channel -------------------------------------------------------------- */

static int sync_send(int fd, int type, int pid, int pass_fd)
{
  struct sync_msg m = { .type = type, .pid = pid };
  struct iovec iov = { &m, sizeof(m) };
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } u;
  struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
  if (pass_fd >= 0) {
    struct cmsghdr *cm;
    mh.msg_control = u.buf;
    mh.msg_controllen = sizeof(u.buf);
    cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &pass_fd, sizeof(int));
  }
  while (sendmsg(fd, &mh, MSG_NOSIGNAL) < 0) {
    if (errno != EINTR)
      return -1;
  }
  return 0;
}

static void sync_send_error(int fd, const struct shim_err *err)
{
  struct sync_msg m = { .type = SYNC_ERROR, .code = err->code, .errnum = err->errnum };
  snprintf(m.msg, sizeof(m.msg), "%s", err->msg);
  while (send(fd, &m, sizeof(m), MSG_NOSIGNAL) < 0 && errno == EINTR)
    ;
}

/* Receive one message; returns 1 on a message, 0 on EOF, -1 on error or
 * timeout (timeout_ms < 0: wait forever). *recv_fd gets a passed fd or -1. */
static int sync_recv(int fd, struct sync_msg *m, int *recv_fd, int timeout_ms)
{
  struct iovec iov = { m, sizeof(*m) };
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } u;
  struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
  ssize_t n;
  if (recv_fd)
    *recv_fd = -1;
  if (timeout_ms >= 0) {
    struct pollfd p = { .fd = fd, .events = POLLIN };
    int r;
    do
      r = poll(&p, 1, timeout_ms);
    while (r < 0 && errno == EINTR);
    if (r <= 0) {
      errno = r == 0 ? ETIMEDOUT : errno;
      return -1;
    }
  }
  do
    n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return -1;
  if (n == 0)
    return 0;
  if (n != sizeof(*m)) {
    errno = EPROTO;
    return -1;
  }
  m->msg[sizeof(m->msg) - 1] = '\0';
  for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
    if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
      int got;
      memcpy(&got, CMSG_DATA(cm), sizeof(int));
      if (recv_fd)
        *recv_fd = got;
      else
        close(got);
    }
  }
  return 1;
}

/* ---- fds ------------------------------------------------------------------ */

static int cmp_int(const void *a, const void *b)
{
  return *(const int *) a - *(const int *) b;
}

/* Close every fd >= 3 except those in keep: the shim's sockets, other
 * containers' pipes and sync channels must not reach this process. */
static void close_fds_except(int *keep, size_t n)
{
  unsigned int from = 3;
  qsort(keep, n, sizeof(int), cmp_int);
  for (size_t i = 0; i < n; i++) {
    if (keep[i] < (int) from)
      continue;
    if ((unsigned int) keep[i] > from)
      syscall(SYS_close_range, from, (unsigned int) keep[i] - 1, 0);
    from = (unsigned int) keep[i] + 1;
  }
  syscall(SYS_close_range, from, ~0U, 0);
}

/* Right before pivot_root, in the container's namespaces with its mounts made: the
 * shim runs the prestart and createRuntime hooks (in the runtime namespace) while we
 * wait, then we run the createContainer hooks here (in the container's namespaces, the
 * host's paths still reachable). A hook that fails ends the create. */
struct pivot_hooks {
  const struct spawn_req *req;
  int sync_fd;
};

static int run_create_hooks(void *arg, struct shim_err *err)
{
  const struct pivot_hooks *ph = arg;
  const struct spawn_req *req = ph->req;
  if (hooks_any(req->hooks, HOOK_PRESTART) || hooks_any(req->hooks, HOOK_CREATE_RUNTIME)) {
    struct sync_msg m;
    if (sync_send(ph->sync_fd, SYNC_HOOKS, 0, -1) < 0)
      _exit(1);
    /* The shim bounds the hooks; it kills us when one fails. */
    if (sync_recv(ph->sync_fd, &m, NULL, -1) <= 0 || m.type != SYNC_HOOKS_DONE)
      _exit(1);
  }
  if (hooks_any(req->hooks, HOOK_CREATE_CONTAINER)) {
    cleanup_free char *state = hooks_state(req->spec->doc, req->id, "creating", getpid(), req->bundle);
    if (hooks_run(req->hooks, HOOK_CREATE_CONTAINER, state, err) < 0)
      return -1;
  }
  return 0;
}

/* Runs in the process proper, after GO. Never returns on success. */
static int process_main(const struct spawn_req *req, int sync_fd, const int *idmapped, struct mount_clones *clones,
                        struct shim_err *err)
{
  const struct spec_process *process = req->process;
  const struct spec *spec = req->spec;
  bool nnp = process->no_new_privileges;
  char exe[PATH_MAX];
  int master = -1, r;
  struct sync_msg m;

  if (setsid() < 0)
    return shim_fail_errno(err, errno, "setsid");
  if (req->create && ns_write_sysctls(spec->sysctls, spec->n_sysctls, "linux.sysctl", err) < 0)
    return -1;
  if (apply_rlimits(process, err) < 0)
    return -1;
  if (req->create) {
    struct pivot_hooks ph = { .req = req, .sync_fd = sync_fd };
    struct mount_ctx ctx = {
      .rootfs = req->rootfs,
      .clones = clones,
      .idmapped = idmapped,
      .userns = ns_listed(&spec->ns, CLONE_NEWUSER),
      .cg = req->cg,
      .new_cgroupns = ns_clone_flags(&spec->ns) & CLONE_NEWCGROUP,
      .before_pivot = run_create_hooks,
      .before_pivot_arg = &ph,
    };
    if (mount_setup_rootfs(&spec->rootfs, &ctx, err) < 0)
      return -1;
    if (spec->hostname && *spec->hostname) {
      if (!ns_listed(&spec->ns, CLONE_NEWUTS))
        return shim_fail(err, SHIM_INVALID_ARGUMENT, "hostname: needs a uts namespace in linux.namespaces");
      if (sethostname(spec->hostname, strlen(spec->hostname)) < 0)
        return shim_fail_errno(err, errno, "sethostname %s", spec->hostname);
    }
  } else if (chdir("/") < 0) {
    return shim_fail_errno(err, errno, "chdir /");
  }
  if (process->terminal && setup_tty((uid_t) process->uid, &master, err) < 0)
    return -1;
  {
    int keep[2] = { sync_fd, master };
    close_fds_except(keep, master >= 0 ? 2 : 1);
  }
  if (ensure_cwd(process->cwd ? process->cwd : "/", err) < 0)
    return -1;
  /* The labels take effect at execve. Written as crun and runc do: after the
   * mounts (so through the container's own /proc), while still root, and before
   * no_new_privs and any seccomp filter, which could refuse the writes. A failure
   * fails create (or exec), and the process is torn down with nothing started. */
  if (lsm_set_exec_labels(&lsm_real_ops, process->selinux_label, process->apparmor_profile, err) < 0)
    return -1;
  /* Without no_new_privs a filter can only be loaded with CAP_SYS_ADMIN, which
   * the user switch may drop: load it first then, as other runtimes do. */
  if (!nnp && req->seccomp && seccomp_apply(req->seccomp, err) < 0)
    return -1;
  if (switch_user(process, err) < 0)
    return -1;
  if (find_executable(process->args[0], process->env, exe, sizeof(exe), err) < 0)
    return -1;
  if (sync_send(sync_fd, SYNC_READY, 0, master) < 0)
    _exit(1);
  if (master >= 0)
    close(master);
  r = sync_recv(sync_fd, &m, NULL, -1);
  if (r <= 0 || m.type != SYNC_START)
    _exit(1); /* the shim deleted us before start */
  /* startContainer hooks: in the container, as its user, right before its command. */
  if (req->create && hooks_any(req->hooks, HOOK_START_CONTAINER)) {
    cleanup_free char *state = hooks_state(spec->doc, req->id, "created", getpid(), req->bundle);
    if (hooks_run(req->hooks, HOOK_START_CONTAINER, state, err) < 0)
      return -1;
  }
  if (nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    return shim_fail_errno(err, errno, "prctl(PR_SET_NO_NEW_PRIVS)");
  if (nnp && req->seccomp && seccomp_apply(req->seccomp, err) < 0)
    return -1;
  execve(exe, process->args, process->env);
  return shim_fail_errno(err, errno, "exec %s", exe);
}

/* ---- the intermediate --------------------------------------------------- */

struct spawn_child {
  const struct spawn_req *req;
  struct cgroup_join *cg; /* what the process joins its cgroup through */
  int flags;              /* CLONE_NEW* to create */
  int mid_fd;             /* the intermediate's channel */
  int sync_fd;            /* the process's channel */
  const int *idmapped;
  int template_fd;        /* the pod's mount template (mount_template.c), or -1 */
  struct mount_clones clones; /* with the template: the host paths the mounts need */
};

/* The process proper, right after its clone; never returns. */
static _Noreturn void process_begin(struct spawn_child *sc, bool in_v2)
{
  const struct spawn_req *req = sc->req;
  struct shim_err err = { 0 };
  close(sc->mid_fd);
  /* Our parent is the shim (CLONE_PARENT): die with it. */
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  for (int i = 0; i < 3; i++) {
    int fd = req->stdio[i] >= 0 ? req->stdio[i] : open("/dev/null", O_RDWR);
    if (fd < 0 || dup2(fd, i) < 0) {
      shim_fail_errno(&err, errno, "set up stdio");
      goto fail;
    }
  }
  /* Into the cgroup before anything is set up, so that the devices rules and the
   * limits apply to all of it; only then a new cgroup namespace, rooted there. */
  if (cgroup_join_self(sc->cg, in_v2, &err) < 0)
    goto fail;
  if ((sc->flags & CLONE_NEWCGROUP) && unshare(CLONE_NEWCGROUP) < 0) {
    shim_fail_errno(&err, errno, "unshare cgroup namespace");
    goto fail;
  }
  reset_signals();
  process_main(req, sc->sync_fd, sc->idmapped, sc->template_fd >= 0 ? &sc->clones : NULL, &err);
fail:
  sync_send_error(sc->sync_fd, &err);
  _exit(127);
}

/* May the process be cloned straight into its cgroup2 group? clone3 checks the
 * caller's credentials and cgroup namespace: not once we are in the container's user
 * namespace, or in a cgroup namespace given by path. */
static bool clone_into_cgroup(const struct spawn_req *req, const struct ns_set *ns)
{
  for (size_t i = 0; i < ns->n; i++)
    if (ns->types[i] == CLONE_NEWUSER || ns->types[i] == CLONE_NEWCGROUP)
      return false;
  /* An exec'd process joins as a pid written to cgroup.procs would: a container at
   * its pids limit still takes one (the limit holds for forks only). */
  return req->create && !ns_listed(&req->spec->ns, CLONE_NEWUSER);
}

static _Noreturn void intermediate_main(struct spawn_child *sc, const struct ns_set *ns)
{
  const struct spawn_req *req = sc->req;
  struct shim_err err = { 0 };
  int *idmapped = NULL; /* freed by our exit */
  bool in_v2;
  pid_t pid;

  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  /* Until execve, /proc/<pid>/exe is the shim binary: keep other container
   * processes from opening it (CVE-2019-5736). The process inherits this. */
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  {
    size_t nkeep = 0;
    int keep[6 + sizeof(ns->fds) / sizeof(ns->fds[0]) + CGROUP_JOIN_MAX + 2];
    keep[nkeep++] = sc->mid_fd;
    keep[nkeep++] = sc->sync_fd;
    if (sc->template_fd >= 0)
      keep[nkeep++] = sc->template_fd;
    for (int i = 0; i < 3; i++)
      if (req->stdio[i] >= 0)
        keep[nkeep++] = req->stdio[i];
    for (size_t i = 0; i < ns->n; i++)
      keep[nkeep++] = ns->fds[i];
    nkeep += cgroup_join_fds(sc->cg, keep + nkeep, sizeof(keep) / sizeof(keep[0]) - nkeep);
    close_fds_except(keep, nkeep);
  }
  /* Id-mapped mounts are cloned while we are still the host's root in its mount
   * namespace; the container's process attaches them. */
  if (req->create && req->spec->rootfs.n_mounts) {
    idmapped = calloc(req->spec->rootfs.n_mounts, sizeof(*idmapped));
    if (!idmapped) {
      shim_fail_errno(&err, ENOMEM, "id-mapped mounts");
      goto fail;
    }
    if (mount_idmap_prepare(req->spec, idmapped, &err) < 0)
      goto fail;
  }
  sc->idmapped = idmapped;
  if (sc->template_fd >= 0) {
    /* The host paths the mounts need, cloned while we are in the host's namespace; then
     * into the template, which the unshare below copies instead of the host's table. */
    if (mount_clones_prepare(req->spec, req->rootfs, req->cg, &sc->clones, &err) < 0)
      goto fail;
    if (setns(sc->template_fd, CLONE_NEWNS) < 0) {
      shim_fail_errno(&err, errno, "join the pod's mount template");
      goto fail;
    }
    close(sc->template_fd);
  }
  /* oom_score_adj is set here, as the host's root, and inherited by the process: in a
   * user namespace its /proc/self files belong to the host's root (it is not dumpable),
   * which the namespace does not map, so it could not open them. */
  if (set_oom_score_adj(req->process, &err) < 0)
    goto fail;
  if (ns_join(ns, &err) < 0)
    goto fail;
  /* Our host ids mean nothing in a joined user namespace (files would be
   * created with overflow ids): become its root, as after creating one. */
  for (size_t i = 0; i < ns->n; i++) {
    if (ns->types[i] == CLONE_NEWUSER && (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)) {
      shim_fail_errno(&err, errno, "become root in the joined user namespace");
      goto fail;
    }
  }
  if (sc->flags & CLONE_NEWUSER) {
    struct sync_msg m;
    if (unshare(CLONE_NEWUSER) < 0) {
      shim_fail_errno(&err, errno, "unshare user namespace");
      goto fail;
    }
    sync_send(sc->mid_fd, SYNC_MAP_REQ, getpid(), -1);
    if (sync_recv(sc->mid_fd, &m, NULL, SPAWN_TIMEOUT_MS) <= 0 || m.type != SYNC_MAPPED)
      _exit(1);
    if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0) {
      shim_fail_errno(&err, errno, "become root in the new user namespace");
      goto fail;
    }
  }
  /* The cgroup namespace is the process's to make, once it is in its cgroup. */
  if (unshare(sc->flags & ~(CLONE_NEWUSER | CLONE_NEWCGROUP)) < 0) {
    shim_fail_errno(&err, errno, "unshare namespaces 0x%x", (unsigned) (sc->flags & ~(CLONE_NEWUSER | CLONE_NEWCGROUP)));
    goto fail;
  }
  pid = clone_child(CLONE_PARENT, clone_into_cgroup(req, ns) ? sc->cg->v2_dir : -1, &in_v2);
  if (pid < 0) {
    shim_fail_errno(&err, errno, "fork container process");
    goto fail;
  }
  if (pid == 0)
    process_begin(sc, in_v2);
  sync_send(sc->mid_fd, SYNC_PID, pid, -1);
  _exit(0);
fail:
  sync_send_error(sc->mid_fd, &err);
  _exit(127);
}

/* ---- shim side -------------------------------------------------------------- */

static int sync_error_to(const struct sync_msg *m, struct shim_err *err)
{
  err->code = (enum shim_code) m->code;
  err->errnum = m->errnum;
  snprintf(err->msg, sizeof(err->msg), "%s", m->msg);
  return -1;
}

/* Receive the next message within timeout_ms, which must be `want` (0: any) or an error. */
static int recv_error_or(int fd, struct sync_msg *m, int *passed, int want, const char *step, int64_t timeout_ms,
                         struct shim_err *err)
{
  int r = sync_recv(fd, m, passed, (int) timeout_ms);
  if (r < 0)
    return shim_fail_errno(err, errno, "%s: waiting for the container process", step);
  if (r == 0)
    return shim_fail(err, SHIM_INTERNAL, "%s: container process exited unexpectedly", step);
  if (m->type == SYNC_ERROR)
    return sync_error_to(m, err);
  if (want && m->type != want)
    return shim_fail(err, SHIM_INTERNAL, "%s: unexpected message %d from the container process", step, m->type);
  return 0;
}

int spawn_process(const struct spawn_req *req, pid_t *pid_out, int *sync_out, int *master_out, struct shim_err *err)
{
  cleanup_ns_set struct ns_set ns = { 0 };
  cleanup_close int chan = -1;   /* our end of the process's channel */
  cleanup_close int mchan = -1;  /* ... and of the intermediate's */
  cleanup_close int passed = -1; /* the pty master the process passed */
  cleanup_reap pid_t pid = -1;   /* the process, unless handed out */
  cleanup_reap pid_t mid = -1;   /* the intermediate, until reaped */
  struct cgroup_join join;
  int flags = 0, sv[2], mv[2], status, template_fd = -1;
  struct sync_msg m = { 0 };

  *master_out = -1;
  if (req->create) {
    if (ns_open_paths(&req->spec->ns, &ns, err) < 0)
      return -1;
    flags = ns_clone_flags(&req->spec->ns) | CLONE_NEWNS;
    if (mount_template_fits(req->spec, hooks_any(req->hooks, HOOK_PRESTART) || hooks_any(req->hooks, HOOK_CREATE_RUNTIME)
                                           || hooks_any(req->hooks, HOOK_CREATE_CONTAINER))) {
      struct shim_err terr = { 0 };
      template_fd = mount_template_fd(&terr);
      if (template_fd < 0)
        shim_log("container %s: its mount namespace is a copy of the host's: %s", req->id, terr.msg);
    }
  } else if (ns_open_process(req->join_pid, &ns, err) < 0) {
    return -1;
  }
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
    return shim_fail_errno(err, errno, "socketpair");
  chan = sv[0];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, mv) < 0) {
    int e = errno;
    close(sv[1]);
    return shim_fail_errno(err, e, "socketpair");
  }
  mchan = mv[0];
  cgroup_join_init(&join);
  if (req->cg && cgroup_join_open(req->cg, &join, err) < 0) {
    close(sv[1]);
    close(mv[1]);
    return -1;
  }
  mid = fork();
  if (mid == 0) {
    struct spawn_child sc = { .req = req, .cg = &join, .flags = flags, .mid_fd = mv[1], .sync_fd = sv[1], .template_fd = template_fd };
    mount_clones_init(&sc.clones);
    close(sv[0]);
    close(mv[0]);
    intermediate_main(&sc, &ns);
  }
  {
    int e = errno;
    close(sv[1]);
    close(mv[1]);
    cgroup_join_close(&join);
    ns_set_free(&ns);
    if (mid < 0)
      return shim_fail_errno(err, e, "fork");
  }

  if (recv_error_or(mchan, &m, NULL, 0, "spawn", SPAWN_TIMEOUT_MS, err) < 0)
    return -1;
  if (m.type == SYNC_MAP_REQ) {
    if (ns_write_id_mappings(m.pid, &req->spec->ns, err) < 0)
      return -1;
    sync_send(mchan, SYNC_MAPPED, 0, -1);
    if (recv_error_or(mchan, &m, NULL, SYNC_PID, "spawn", SPAWN_TIMEOUT_MS, err) < 0)
      return -1;
  }
  if (m.type != SYNC_PID)
    return shim_fail(err, SHIM_INTERNAL, "spawn: unexpected message %d", m.type);
  pid = m.pid;
  while (waitpid(mid, &status, 0) < 0 && errno == EINTR)
    ;
  mid = -1;
  for (;;) {
    /* The set-up, and the createContainer hooks it runs, within their timeouts. */
    int64_t wait_ms = SPAWN_TIMEOUT_MS + (req->create ? hooks_budget_ms(req->hooks, HOOK_CREATE_CONTAINER) : 0);
    if (recv_error_or(chan, &m, &passed, 0, req->create ? "create" : "exec", wait_ms, err) < 0)
      return -1;
    if (m.type == SYNC_READY)
      break;
    if (m.type != SYNC_HOOKS || !req->create)
      return shim_fail(err, SHIM_INTERNAL, "spawn: unexpected message %d from the container process", m.type);
    {
      cleanup_free char *state = hooks_state(req->spec->doc, req->id, "creating", pid, req->bundle);
      if (hooks_run(req->hooks, HOOK_PRESTART, state, err) < 0 || hooks_run(req->hooks, HOOK_CREATE_RUNTIME, state, err) < 0)
        return -1; /* the process is killed and reaped on the way out */
    }
    sync_send(chan, SYNC_HOOKS_DONE, 0, -1);
  }
  *pid_out = pid;
  *sync_out = chan;
  *master_out = passed;
  pid = -1;
  chan = passed = -1;
  return 0;
}

int spawn_release(int sync_fd, int64_t extra_ms, struct shim_err *err)
{
  struct sync_msg m;
  int r;
  if (sync_send(sync_fd, SYNC_START, 0, -1) < 0)
    return shim_fail_errno(err, errno, "start: the container process is gone");
  r = sync_recv(sync_fd, &m, NULL, (int) (SPAWN_TIMEOUT_MS + extra_ms));
  if (r == 0)
    return 0; /* channel closed by execve (O_CLOEXEC): running */
  if (r < 0)
    return shim_fail_errno(err, errno, "start: waiting for execve");
  if (m.type == SYNC_ERROR)
    return sync_error_to(&m, err);
  return shim_fail(err, SHIM_INTERNAL, "start: unexpected message %d", m.type);
}
