/* exit.c: how a process ended (a container's init or an exec'd process), as the
 * protocol reports it: exit code, signal, time, OOM kill. */
#include "core.h"

#include <sys/wait.h>

void exit_from_status(struct exit_info *e, pid_t pid, int status)
{
  e->pid = pid;
  e->exited_ns = now_ns();
  if (WIFSIGNALED(status)) {
    e->signal = WTERMSIG(status);
    e->exit_code = 128 + e->signal;
  } else {
    e->signal = 0;
    e->exit_code = WEXITSTATUS(status);
  }
}

json_t *exit_json(const char *id, const struct exit_info *e)
{
  return json_pack("{s:s,s:i,s:i,s:i,s:o,s:I,s:b,s:s}", "id", id, "pid", (int) e->pid, "exitCode", e->exit_code,
                   "signal", e->signal, "exitedAt", time_json(e->exited_ns), "exitedAtNs", (json_int_t) e->exited_ns,
                   "oomKilled", e->oom_killed, "reason", e->oom_killed ? "OOMKilled" : "");
}
