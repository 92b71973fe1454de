/* main.c: start-up (detach, subreaper, socket, pid file) and the single epoll
 * event loop that serves clients, pumps container stdio and reaps children. */
#include "core.h"

#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static void usage(void)
{
  fprintf(stderr, "usage: skiff-shim --state-dir DIR [--socket PATH] [--log PATH] [--cgroups JSON] [--mount-template-fd N]\n"
                  "       skiff-shim --mount-template DIR   (make a mount template; see api/shim/PROTOCOL.md)\n"
                  "       skiff-shim --features   (what this kernel supports, as JSON)\n");
  exit(2);
}

static int listen_socket(const char *path, struct shim_err *err)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  cleanup_close int fd = -1;
  int listening;
  if (strlen(path) >= sizeof(addr.sun_path))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "socket path too long: %s", path);
  strcpy(addr.sun_path, path);
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return shim_fail_errno(err, errno, "socket");
  unlink(path);
  if (bind(fd, (struct sockaddr *) &addr, sizeof(addr)) < 0 || chmod(path, 0600) < 0 || listen(fd, 64) < 0)
    return shim_fail_errno(err, errno, "listen on %s", path);
  listening = fd;
  fd = -1;
  return listening;
}

/* SIGCHLD: reap every child that ended: a container's init, an exec'd process, the
 * pod's infra process, or an orphan the shim inherited as subreaper. */
static void reap_children(void)
{
  for (;;) {
    int status;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0)
      return;
    if (!container_reaped(pid, status) && !exec_reaped(pid, status))
      pod_reaped(pid, status);
  }
}

/* Everything after the fork: the shim proper. ready_fd gets one status byte
 * (0 ok) and, on failure, the message. */
static int serve(int ready_fd, const char *log_path)
{
  struct shim_err err = { 0 };
  char path[PATH_MAX], pid[32];
  sigset_t mask;
  int sfd, lfd, logfd;
  struct watch sig_w = { .kind = W_SIGNAL }, listen_w = { .kind = W_LISTEN };

  setsid();
  umask(0022);
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
    shim_fail_errno(&err, errno, "become child subreaper");
    goto fail;
  }
  /* Our own diagnostics go to a file; stdio must not hold the spawner's pipes. */
  logfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (logfd < 0) {
    shim_fail_errno(&err, errno, "open %s", log_path);
    goto fail;
  }
  {
    int devnull = open("/dev/null", O_RDWR);
    dup2(devnull, 0);
    dup2(devnull, 1);
    dup2(logfd, 2);
    if (devnull > 2)
      close(devnull);
    close(logfd);
  }
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  signal(SIGPIPE, SIG_IGN);
  sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0 || loop_init() < 0) {
    shim_fail_errno(&err, errno, "signalfd/epoll");
    goto fail;
  }
  lfd = listen_socket(g_shim.socket_path, &err);
  if (lfd < 0)
    goto fail;
  sig_w.fd = sfd;
  listen_w.fd = lfd;
  loop_add(&sig_w, EPOLLIN);
  loop_add(&listen_w, EPOLLIN);
  snprintf(path, sizeof(path), "%s/shim.pid", g_shim.state_dir);
  snprintf(pid, sizeof(pid), "%d", (int) getpid());
  if (write_file_atomic(path, pid, strlen(pid), &err) < 0)
    goto fail;
  shim_log("skiff-shim %s serving %s", SHIM_VERSION, g_shim.socket_path);
  {
    char ok = 0;
    write_all(ready_fd, &ok, 1);
    close(ready_fd);
  }

  for (;;) {
    struct epoll_event evs[64];
    int n = loop_wait(evs, 64);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      shim_log("epoll_wait: %s", strerror(errno));
      return 1;
    }
    for (int i = 0; i < n; i++) {
      struct watch *w = evs[i].data.ptr;
      if (w->fd < 0) /* closed earlier in this batch */
        continue;
      switch (w->kind) {
      case W_LISTEN:
        conn_accept(w->fd, &proto_conn_handler);
        break;
      case W_SIGNAL: {
        struct signalfd_siginfo si;
        while (read(w->fd, &si, sizeof(si)) == sizeof(si)) {
          if (si.ssi_signo == SIGCHLD)
            reap_children();
          else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
            g_shim.shutting_down = true;
        }
        break;
      }
      case W_CONN:
        conn_event(w->obj, evs[i].events);
        break;
      case W_OUTPUT:
        proc_output_event(w, evs[i].events);
        break;
      case W_STDIN:
        proc_stdin_event(w, evs[i].events);
        break;
      case W_TIMER:
        exec_timer_event(w->obj);
        break;
      case W_FORWARD:
        forward_event(w->obj, evs[i].events);
        break;
      }
    }
    loop_run_deferred();
    if (g_shim.shutting_down) {
      loop_del(&listen_w);
      close(lfd);
      shim_shutdown();
      conn_close_all();
      loop_run_deferred();
      shim_log("shut down");
      return 0;
    }
  }

fail:
  {
    char bad = 1;
    write_all(ready_fd, &bad, 1);
    write_all(ready_fd, err.msg, strlen(err.msg));
  }
  return 1;
}

int main(int argc, char **argv)
{
  static const struct option opts[] = {
    { "state-dir", required_argument, NULL, 's' },
    { "socket", required_argument, NULL, 'S' },
    { "log", required_argument, NULL, 'l' },
    { "cgroups", required_argument, NULL, 'c' },
    { "mount-template-fd", required_argument, NULL, 'm' },
    { "mount-template", required_argument, NULL, 'M' },
    { "version", no_argument, NULL, 'v' },
    { "features", no_argument, NULL, 'f' },
    { NULL, 0, NULL, 0 },
  };
  static char sock_buf[PATH_MAX], log_buf[PATH_MAX], exits[PATH_MAX];
  const char *log_path = NULL;
  struct shim_err err = { 0 };
  int pipefd[2], c;
  pid_t pid;

  /* A fixed threshold (glibc's own rises, up to 32 MiB, each time a large block is
   * freed): every block of 128 KiB or more, such as a sync exec's output, is a mapping
   * of its own that goes back to the kernel when freed and grows by mremap. */
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case 's': g_shim.state_dir = optarg; break;
    case 'S': g_shim.socket_path = optarg; break;
    case 'l': log_path = optarg; break;
    case 'c': cgroup_use_hierarchies(optarg); break;
    case 'm': mount_template_adopt(atoi(optarg)); break;
    case 'M': return mount_template_serve(optarg);
    case 'v': printf("skiff-shim %s protocol %d\n", SHIM_VERSION, SHIM_PROTOCOL_VERSION); return 0;
    case 'f': return features_print();
    default: usage();
    }
  }
  if (!g_shim.state_dir || g_shim.state_dir[0] != '/')
    usage();
  if (mkdir_p(g_shim.state_dir, 0700, &err) < 0 || chmod(g_shim.state_dir, 0700) < 0) {
    fprintf(stderr, "skiff-shim: state dir: %s\n", err.msg[0] ? err.msg : strerror(errno));
    return 1;
  }
  snprintf(exits, sizeof(exits), "%s/exits", g_shim.state_dir);
  if (mkdir_p(exits, 0700, &err) < 0) {
    fprintf(stderr, "skiff-shim: %s\n", err.msg);
    return 1;
  }
  snprintf(g_shim.exits_dir, sizeof(g_shim.exits_dir), "%s", exits);
  if (!g_shim.socket_path) {
    snprintf(sock_buf, sizeof(sock_buf), "%s/shim.sock", g_shim.state_dir);
    g_shim.socket_path = sock_buf;
  }
  if (!log_path) {
    snprintf(log_buf, sizeof(log_buf), "%s/shim.log", g_shim.state_dir);
    log_path = log_buf;
  }
  if (pipe2(pipefd, O_CLOEXEC) < 0) {
    perror("skiff-shim: pipe");
    return 1;
  }
  pid = fork();
  if (pid < 0) {
    perror("skiff-shim: fork");
    return 1;
  }
  if (pid == 0) {
    close(pipefd[0]);
    return serve(pipefd[1], log_path);
  }
  close(pipefd[1]);
  {
    char status = 1, msg[1100] = { 0 };
    ssize_t n = read_all(pipefd[0], &status, 1);
    if (n == 1 && status == 0)
      return 0;
    read_all(pipefd[0], msg, sizeof(msg) - 1);
    fprintf(stderr, "skiff-shim: %s\n", n == 1 ? msg : "exited during start-up");
    waitpid(pid, NULL, WNOHANG);
    return 1;
  }
}
