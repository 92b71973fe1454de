/* hooks.c: the OCI runtime spec's POSIX-platform hooks (config.md "hooks"): the
 * lists parsed once from config.json, the state a hook gets on stdin, and the runner:
 * each hook a child process with the state on stdin, its stdout and stderr kept (up to
 * HOOK_OUTPUT_MAX each) for the error of a hook that fails, killed with its process
 * group when its timeout passes. Where and when each kind runs is the callers' (spawn.c
 * in the container's process, container.c in the shim). */
#include "shim.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define HOOK_OUTPUT_MAX 4096

const char *const hook_kind_names[HOOK_KINDS] = {
  [HOOK_PRESTART] = "prestart",
  [HOOK_CREATE_RUNTIME] = "createRuntime",
  [HOOK_CREATE_CONTAINER] = "createContainer",
  [HOOK_START_CONTAINER] = "startContainer",
  [HOOK_POSTSTART] = "poststart",
  [HOOK_POSTSTOP] = "poststop",
};

/* ---- parsing ------------------------------------------------------------------ */

/* A hook's args or env; absent: NULL (a hook without env gets the shim's). */
static int hook_strings(json_t *hook, const char *key, const char *where, char ***out, struct shim_err *err)
{
  json_t *arr;
  *out = NULL;
  if (field_array(hook, key, where, &arr, err) < 0)
    return -1;
  return arr ? json_string_list(arr, where, key, out, err) : 0;
}

static int parse_hook(json_t *obj, const char *where, void *item, void *ctx, struct shim_err *err)
{
  struct spec_hook *h = item;
  bool has_timeout;
  int64_t timeout;
  if (field_string(obj, "path", where, &h->path, err) < 0)
    return -1;
  if (!h->path || h->path[0] != '/')
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.path: must be an absolute path, got \"%s\"", where, h->path ? h->path : "");
  if (hook_strings(obj, "args", where, &h->args, err) < 0 || hook_strings(obj, "env", where, &h->env, err) < 0)
    return -1;
  if (field_int64(obj, "timeout", where, &has_timeout, &timeout, err) < 0)
    return -1;
  if (has_timeout && (timeout <= 0 || timeout > 24 * 3600))
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.timeout: %lld must be greater than zero (and at most a day)", where,
                     (long long) timeout);
  h->timeout_s = has_timeout ? (int) timeout : 0;
  return 0;
}

int hooks_parse(json_t *doc, struct spec_hooks *out, struct shim_err *err)
{
  json_t *hooks;
  memset(out, 0, sizeof(*out));
  if (field_object(doc, "hooks", "config", &hooks, err) < 0)
    return -1;
  if (!hooks)
    return 0;
  for (int k = 0; k < HOOK_KINDS; k++) {
    char where[64];
    json_t *arr;
    snprintf(where, sizeof(where), "hooks.%s", hook_kind_names[k]);
    if (field_array(hooks, hook_kind_names[k], "hooks", &arr, err) < 0)
      return -1;
    if (arr && field_objects(arr, where, sizeof(struct spec_hook), (void **) &out->list[k], &out->n[k], parse_hook, NULL, err) < 0)
      return -1;
  }
  return 0;
}

void hooks_free(struct spec_hooks *h)
{
  for (int k = 0; k < HOOK_KINDS; k++) {
    for (size_t i = 0; i < h->n[k]; i++) {
      free(h->list[k][i].args);
      free(h->list[k][i].env);
    }
    free(h->list[k]);
  }
  memset(h, 0, sizeof(*h));
}

bool hooks_any(const struct spec_hooks *h, enum hook_kind k)
{
  return h && h->n[k] > 0;
}

int64_t hooks_budget_ms(const struct spec_hooks *h, enum hook_kind k)
{
  int64_t total = 0;
  for (size_t i = 0; h && i < h->n[k]; i++)
    total += (int64_t) (h->list[k][i].timeout_s ? h->list[k][i].timeout_s : HOOK_DEFAULT_TIMEOUT_S) * 1000;
  return total;
}

char *hooks_state(json_t *doc, const char *id, const char *status, pid_t pid, const char *bundle)
{
  json_t *version = json_object_get(doc, "ociVersion"), *annotations = json_object_get(doc, "annotations");
  cleanup_json json_t *state = json_pack("{s:s,s:s,s:s,s:s}", "ociVersion", json_is_string(version) ? json_string_value(version) : "1.1.0",
                                         "id", id, "status", status, "bundle", bundle);
  if (!state)
    return NULL;
  /* The pid is required while the process lives (created, running); a stopped container has none. */
  if (pid > 0)
    json_object_set_new(state, "pid", json_integer(pid));
  json_object_set_new(state, "annotations", json_is_object(annotations) ? json_incref(annotations) : json_object());
  return json_dumps(state, JSON_COMPACT);
}

/* ---- running ------------------------------------------------------------------ */

static int64_t mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Without an env of its own a hook gets the shim's (skiffd's), as runc gives it runc's. */
extern char **environ;

static _Noreturn void hook_child(const struct spec_hook *h, int in, int out, int errfd)
{
  char *argv0[] = { (char *) h->path, NULL };
  sigset_t none;
  setpgid(0, 0); /* its own group: a timeout kills what it started too */
  sigemptyset(&none);
  for (int sig = 1; sig < NSIG; sig++)
    if (sig != SIGKILL && sig != SIGSTOP)
      signal(sig, SIG_DFL);
  sigprocmask(SIG_SETMASK, &none, NULL);
  if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(errfd, 2) < 0)
    _exit(127);
  syscall(SYS_close_range, 3U, ~0U, 0U);
  execve(h->path, h->args && h->args[0] ? h->args : argv0, h->env ? h->env : environ);
  dprintf(2, "exec %s: %s", h->path, strerror(errno));
  _exit(127);
}

struct hook_out {
  int fd;
  char buf[HOOK_OUTPUT_MAX + 1];
  size_t len;
};

/* Read what is there; false at EOF or error. Output beyond the buffer is read and dropped. */
static bool read_some(struct hook_out *o)
{
  char scratch[4096];
  for (;;) {
    size_t room = HOOK_OUTPUT_MAX - o->len;
    ssize_t n = room ? read(o->fd, o->buf + o->len, room) : read(o->fd, scratch, sizeof(scratch));
    if (n > 0) {
      if (room)
        o->len += (size_t) n;
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && errno == EAGAIN)
      return true;
    return false;
  }
}

/* The output as one line for an error message: trailing whitespace cut, at most max bytes. */
static const char *output_text(struct hook_out *o, size_t max)
{
  size_t n = o->len < max ? o->len : max;
  while (n > 0 && (o->buf[n - 1] == '\n' || o->buf[n - 1] == ' ' || o->buf[n - 1] == '\r'))
    n--;
  o->buf[n] = '\0';
  for (size_t i = 0; i < n; i++)
    if (o->buf[i] == '\n')
      o->buf[i] = ' ';
  return o->buf;
}

static int run_one(const struct spec_hook *h, const char *kind, size_t idx, const char *state, struct shim_err *err)
{
  int in[2] = { -1, -1 }, out[2] = { -1, -1 }, errp[2] = { -1, -1 };
  cleanup_close int pidfd = -1;
  struct hook_out o = { .fd = -1 }, e = { .fd = -1 };
  size_t state_len = strlen(state), state_off = 0;
  int timeout_s = h->timeout_s ? h->timeout_s : HOOK_DEFAULT_TIMEOUT_S;
  int64_t deadline = mono_ms() + (int64_t) timeout_s * 1000;
  int status = 0, rc = -1;
  bool exited = false, timed_out = false;
  pid_t pid;

  if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
    shim_fail_errno(err, errno, "%s hook %s: pipe", kind, h->path);
    goto out;
  }
  pid = fork();
  if (pid < 0) {
    shim_fail_errno(err, errno, "%s hook %s: fork", kind, h->path);
    goto out;
  }
  if (pid == 0)
    hook_child(h, in[0], out[1], errp[1]);
  close(in[0]), close(out[1]), close(errp[1]);
  in[0] = out[1] = errp[1] = -1;
  o.fd = out[0], e.fd = errp[0];
  out[0] = errp[0] = -1;
  fcntl(in[1], F_SETFL, O_NONBLOCK);
  fcntl(o.fd, F_SETFL, O_NONBLOCK);
  fcntl(e.fd, F_SETFL, O_NONBLOCK);
  pidfd = (int) syscall(SYS_pidfd_open, pid, 0);

  while (!exited) {
    struct pollfd p[4];
    int np = 0, wait_ms;
    int64_t left = deadline - mono_ms();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    if (in[1] >= 0)
      p[np++] = (struct pollfd) { .fd = in[1], .events = POLLOUT };
    if (o.fd >= 0)
      p[np++] = (struct pollfd) { .fd = o.fd, .events = POLLIN };
    if (e.fd >= 0)
      p[np++] = (struct pollfd) { .fd = e.fd, .events = POLLIN };
    if (pidfd >= 0)
      p[np++] = (struct pollfd) { .fd = pidfd, .events = POLLIN };
    /* Without a pidfd (before Linux 5.3) the exit is looked for every 20 ms. */
    wait_ms = pidfd >= 0 ? (int) (left > 1000 ? 1000 : left) : (int) (left > 20 ? 20 : left);
    if (poll(p, (nfds_t) np, wait_ms) < 0 && errno != EINTR) {
      shim_fail_errno(err, errno, "%s hook %s: poll", kind, h->path);
      kill(-pid, SIGKILL), kill(pid, SIGKILL);
      waitpid(pid, NULL, 0);
      goto out;
    }
    if (in[1] >= 0) {
      ssize_t n = write(in[1], state + state_off, state_len - state_off);
      if (n > 0)
        state_off += (size_t) n;
      /* All written, or the hook does not read its stdin (EPIPE): close it. */
      if (state_off == state_len || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        close(in[1]);
        in[1] = -1;
      }
    }
    if (o.fd >= 0 && !read_some(&o)) {
      close(o.fd);
      o.fd = -1;
    }
    if (e.fd >= 0 && !read_some(&e)) {
      close(e.fd);
      e.fd = -1;
    }
    if (waitpid(pid, &status, WNOHANG) == pid)
      exited = true;
  }
  if (timed_out) {
    kill(-pid, SIGKILL), kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
      ;
  }
  /* What it wrote before it ended; a process it left behind holding the pipes is not waited for. */
  if (o.fd >= 0)
    read_some(&o);
  if (e.fd >= 0)
    read_some(&e);
  if (timed_out) {
    shim_fail(err, SHIM_DEADLINE_EXCEEDED, "%s hook [%zu] %s: timed out after %d s%s%s", kind, idx, h->path, timeout_s,
              e.len ? ": stderr: " : "", output_text(&e, 400));
    goto out;
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    rc = 0;
    goto out;
  }
  {
    char how[64];
    if (WIFSIGNALED(status))
      snprintf(how, sizeof(how), "killed by signal %d", WTERMSIG(status));
    else
      snprintf(how, sizeof(how), "exit status %d", WEXITSTATUS(status));
    shim_fail(err, SHIM_FAILED_PRECONDITION, "%s hook [%zu] %s: %s%s%s%s%s", kind, idx, h->path, how, e.len ? ": stderr: " : "",
              output_text(&e, 480), o.len ? ": stdout: " : "", output_text(&o, 200));
  }
out:
  for (int i = 0; i < 2; i++) {
    if (in[i] >= 0)
      close(in[i]);
    if (out[i] >= 0)
      close(out[i]);
    if (errp[i] >= 0)
      close(errp[i]);
  }
  if (o.fd >= 0)
    close(o.fd);
  if (e.fd >= 0)
    close(e.fd);
  return rc;
}

int hooks_run(const struct spec_hooks *h, enum hook_kind k, const char *state, struct shim_err *err)
{
  struct sigaction ign = { .sa_handler = SIG_IGN }, old;
  int rc = 0;
  if (!hooks_any(h, k))
    return 0;
  if (!state)
    return shim_fail_errno(err, ENOMEM, "%s hooks: state", hook_kind_names[k]);
  /* A hook that does not read its stdin must not kill us with SIGPIPE (the container's
   * process runs with the default action). */
  sigaction(SIGPIPE, &ign, &old);
  for (size_t i = 0; i < h->n[k] && rc == 0; i++)
    rc = run_one(&h->list[k][i], hook_kind_names[k], i, state, err);
  sigaction(SIGPIPE, &old, NULL);
  return rc;
}
