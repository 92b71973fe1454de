/* pod.c: the pod's namespaces. They are created by and held in the pod's
 * infra process, a child of the shim that never execs: PID 1 of the pod's PID
 * namespace when there is one (reaping orphans there), otherwise asleep. */
#include "core.h"

#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static struct {
  pid_t infra;
  int infra_status;     /* how the infra process ended, once reaped (wait status) */
  bool infra_reaped;
  json_t *info;         /* what `list` reports: pid, namespaces, hostname */
  struct cgroup *cg;    /* the infra process's cgroup, or NULL */
  struct cgroup *pod_cg; /* the pod cgroup the shim made (params.podCgroup), or NULL */
} g_pod;

/* Remove the infra's cgroup, then the pod cgroup (after the containers' are gone); false
 * if one stays. */
static bool pod_cgroups_destroy(void)
{
  struct cgroup **cgs[] = { &g_pod.cg, &g_pod.pod_cg };
  bool clean = true;
  for (size_t i = 0; i < sizeof(cgs) / sizeof(cgs[0]); i++) {
    struct shim_err err;
    if (!*cgs[i])
      continue;
    if (cgroup_destroy(*cgs[i], &err) < 0) {
      shim_log("pod cgroup: %s", err.msg);
      clean = false;
    }
    cgroup_free(*cgs[i]);
    *cgs[i] = NULL;
  }
  return clean;
}

/* params.podCgroup (made with its limits) and params.cgroupsPath (the infra's). */
static int pod_cgroups_create(json_t *params, struct shim_err *err)
{
  const char *infra_path, *pod_path = NULL;
  json_t *pod_cg, *resources = NULL;
  cleanup_resources struct resources res = { 0 };
  if (field_string(params, "cgroupsPath", "params", &infra_path, err) < 0
      || field_object(params, "podCgroup", "params", &pod_cg, err) < 0)
    return -1;
  if (pod_cg) {
    if (field_string(pod_cg, "path", "params.podCgroup", &pod_path, err) < 0
        || field_object(pod_cg, "resources", "params.podCgroup", &resources, err) < 0)
      return -1;
    if (!pod_path)
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "params.podCgroup.path: missing");
    if (!infra_path)
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "params.podCgroup: needs params.cgroupsPath inside it");
    if (resources_parse(resources, &res, err) < 0)
      return -1;
    if (cgroup_create(pod_path, &res, &g_pod.pod_cg, err) < 0) {
      shim_err_prefix(err, "pod cgroup");
      return -1;
    }
  }
  if (infra_path && cgroup_create(infra_path, NULL, &g_pod.cg, err) < 0) {
    shim_err_prefix(err, "infra cgroup");
    pod_cgroups_destroy();
    return -1;
  }
  return 0;
}

int pod_stats(json_t **out, struct shim_err *err)
{
  cleanup_cgroup struct cgroup *parent = NULL;
  /* The pod cgroup holds every container's and the infra's: its PSI is the pod's
   * (pressure does not add up over children). */
  if (g_pod.pod_cg)
    return cgroup_stats(g_pod.pod_cg, out, err);
  if (!g_pod.cg)
    return shim_fail(err, SHIM_FAILED_PRECONDITION, "the pod has no cgroup (no params.cgroupsPath)");
  /* kubelet's pod cgroup: the infra's parent. */
  if (cgroup_open_parent(g_pod.cg, &parent, err) < 0) {
    shim_err_prefix(err, "pod cgroup");
    return -1;
  }
  return cgroup_stats(parent, out, err);
}

pid_t pod_infra_pid(void)
{
  return g_pod.infra;
}

json_t *pod_json(void)
{
  return g_pod.info ? json_incref(g_pod.info) : json_null();
}

/* "new" or "host"; def when absent. */
static int ns_mode(json_t *params, const char *key, bool def_new, bool *is_new, struct shim_err *err)
{
  const char *v;
  if (field_string(params, key, "params", &v, err) < 0)
    return -1;
  if (!v) {
    *is_new = def_new;
    return 0;
  }
  if (strcmp(v, "new") != 0 && strcmp(v, "host") != 0)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "params.%s: \"%s\" is not \"new\" or \"host\"", key, v);
  *is_new = strcmp(v, "new") == 0;
  return 0;
}

/* A params.sysctls key: what kubelet sends, dotted or with slashes, inside /proc/sys. */
static bool sysctl_key_ok(const char *k)
{
  return *k && k[0] != '.' && k[0] != '/' && !strstr(k, "..")
         && strspn(k, "abcdefghijklmnopqrstuvwxyz0123456789_-./") == strlen(k);
}

/* What the infra process sets up. */
struct pod_setup {
  int flags; /* CLONE_NEW* */
  const char *hostname;
  struct spec_sysctl *sysctls;
  size_t n_sysctls;
  struct spec_ns userns; /* the mappings, with CLONE_NEWUSER */
};

static void pod_setup_free(struct pod_setup *p)
{
  free(p->sysctls);
  ns_free(&p->userns);
}

static int loopback_up(struct shim_err *err)
{
  struct ifreq ifr = { 0 };
  cleanup_close int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return shim_fail_errno(err, errno, "socket for lo");
  strcpy(ifr.ifr_name, "lo");
  if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
    return shim_fail_errno(err, errno, "get flags of lo");
  ifr.ifr_flags |= IFF_UP;
  if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
    return shim_fail_errno(err, errno, "bring lo up");
  return 0;
}

static _Noreturn void infra_main(int status_fd, int go_fd, const struct pod_setup *p, struct cgroup_join *cg, bool in_v2)
{
  int flags = p->flags;
  const char *hostname = p->hostname;
  struct shim_err err = { 0 };
  sigset_t set;

  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  prctl(PR_SET_NAME, "skiff-pod", 0, 0, 0);
  /* It runs the shim's binary for the pod's whole life, visible to the pod's
   * processes: keep them from opening /proc/<pid>/exe (CVE-2019-5736). */
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  if (cgroup_join_self(cg, in_v2, &err) < 0)
    goto fail;
  if (flags & CLONE_NEWUSER) {
    char go;
    if (read_all(go_fd, &go, 1) != 1)
      _exit(1);
    if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0) {
      shim_fail_errno(&err, errno, "become root in the pod's user namespace");
      goto fail;
    }
  }
  if ((flags & CLONE_NEWUTS) && hostname && sethostname(hostname, strlen(hostname)) < 0) {
    shim_fail_errno(&err, errno, "params.hostname: sethostname \"%s\"", hostname);
    goto fail;
  }
  if ((flags & CLONE_NEWNET) && loopback_up(&err) < 0)
    goto fail;
  if (ns_write_sysctls(p->sysctls, p->n_sysctls, "params.sysctls", &err) < 0)
    goto fail;
  {
    char ok = 0;
    write_all(status_fd, &ok, 1);
  }
  {
    int devnull = open("/dev/null", O_RDWR);
    for (int i = 0; i < 3; i++)
      dup2(devnull, i);
    syscall(SYS_close_range, 3, ~0U, 0);
  }
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  sigprocmask(SIG_BLOCK, &set, NULL);
  /* From here on it only waits and reaps: drop what set-up touched. */
  trim_memory();
  for (;;) {
    siginfo_t si;
    if (sigwaitinfo(&set, &si) < 0 && errno != EINTR)
      pause();
    while (waitpid(-1, NULL, WNOHANG) > 0)
      ;
  }
fail:
  {
    char bad = 1;
    write_all(status_fd, &bad, 1);
    write_all(status_fd, err.msg, strlen(err.msg));
  }
  _exit(1);
}

/* Clone the infra process with the pod's namespaces (flags) and wait until it has set
 * them up: the user namespace's mappings, the hostname, lo, the sysctls. */
static int start_infra(const struct pod_setup *p, json_t **result, struct shim_err *err)
{
  int flags = p->flags;
  const char *hostname = p->hostname;
  cleanup_close int status_rd = -1, status_wr = -1, go_rd = -1, go_wr = -1;
  cleanup_reap pid_t child = -1;
  struct cgroup_join join;
  bool in_v2;
  int fds[2];
  json_t *ns_map;

  if (pipe2(fds, O_CLOEXEC) < 0)
    return shim_fail_errno(err, errno, "pipe");
  status_rd = fds[0], status_wr = fds[1];
  if (pipe2(fds, O_CLOEXEC) < 0)
    return shim_fail_errno(err, errno, "pipe");
  go_rd = fds[0], go_wr = fds[1];
  cgroup_join_init(&join);
  if (g_pod.cg && cgroup_join_open(g_pod.cg, &join, err) < 0)
    return -1;
  /* A clone (not a fork) to create the PID namespace the child is PID 1 of; born in
   * the infra's cgroup2 group, it joins the v1 hierarchies itself. */
  child = clone_child((uint64_t) flags, join.v2_dir, &in_v2);
  if (child == 0) {
    close(status_rd);
    close(go_wr);
    infra_main(status_wr, go_rd, p, &join, in_v2);
  }
  {
    int e = errno;
    cgroup_join_close(&join);
    close(status_wr);
    close(go_rd);
    status_wr = go_rd = -1;
    if (child < 0)
      return shim_fail_errno(err, e, "create the pod's namespaces (clone flags 0x%x)", (unsigned) flags);
  }
  if ((flags & CLONE_NEWUSER) && ns_write_id_mappings(child, &p->userns, err) < 0)
    return -1;
  {
    char go = 1, st = 1, msg[1100] = { 0 };
    write_all(go_wr, &go, 1);
    if (read_all(status_rd, &st, 1) != 1)
      return shim_fail(err, SHIM_INTERNAL, "pod infra process exited during set-up");
    if (st != 0) {
      read_all(status_rd, msg, sizeof(msg) - 1);
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s", msg);
    }
  }
  ns_map = json_object();
  {
    static const struct {
      int flag;
      const char *name;
    } kinds[] = { { CLONE_NEWNET, "net" }, { CLONE_NEWIPC, "ipc" }, { CLONE_NEWUTS, "uts" },
                  { CLONE_NEWPID, "pid" }, { CLONE_NEWUSER, "user" } };
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
      char path[64];
      if (!(flags & kinds[i].flag))
        continue;
      snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int) child, kinds[i].name);
      json_object_set_new(ns_map, kinds[i].name, json_string(path));
    }
  }
  g_pod.infra = child;
  g_pod.info = json_pack("{s:i,s:o,s:s}", "pid", (int) child, "namespaces", ns_map, "hostname", hostname ? hostname : "");
  *result = json_pack("{s:i,s:O}", "pid", (int) child, "namespaces", ns_map);
  shim_log("pod infra pid %d (flags 0x%x)", (int) child, (unsigned) flags);
  child = -1; /* the pod's now */
  return 0;
}

int pod_create(json_t *params, json_t **result, struct shim_err *err)
{
  bool net, ipc, uts, pid;
  json_t *userns, *sysctls;
  cleanup_json json_t *linux_like = NULL;
  __attribute__((cleanup(pod_setup_free))) struct pod_setup setup = { 0 };

  if (g_pod.info)
    return shim_fail(err, SHIM_ALREADY_EXISTS, "the pod's namespaces already exist");
  if (ns_mode(params, "network", true, &net, err) < 0 || ns_mode(params, "ipc", true, &ipc, err) < 0
      || ns_mode(params, "uts", true, &uts, err) < 0 || ns_mode(params, "pid", false, &pid, err) < 0
      || field_string(params, "hostname", "params", &setup.hostname, err) < 0
      || field_object(params, "userns", "params", &userns, err) < 0
      || field_object(params, "sysctls", "params", &sysctls, err) < 0
      || ns_parse_sysctls(sysctls, "params.sysctls", sysctl_key_ok, &setup.sysctls, &setup.n_sysctls, err) < 0)
    return -1;
  if (setup.hostname && strlen(setup.hostname) > 64)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "params.hostname: longer than 64 characters");
  if (setup.hostname && *setup.hostname && !uts)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "params.hostname: needs uts \"new\"");
  setup.flags |= net ? CLONE_NEWNET : 0;
  setup.flags |= ipc ? CLONE_NEWIPC : 0;
  setup.flags |= uts ? CLONE_NEWUTS : 0;
  setup.flags |= pid ? CLONE_NEWPID : 0;
  if (userns) {
    /* The mappings are checked as a spec's linux section with a user namespace. */
    linux_like = json_pack("{s:[{s:s}],s:O?,s:O?}", "namespaces", "type", "user", "uidMappings",
                           json_object_get(userns, "uidMappings"), "gidMappings", json_object_get(userns, "gidMappings"));
    if (ns_parse(linux_like, &setup.userns, err) < 0)
      return -1;
    setup.flags |= CLONE_NEWUSER;
  }
  if (pod_cgroups_create(params, err) < 0)
    return -1;
  if (start_infra(&setup, result, err) < 0) {
    pod_cgroups_destroy();
    return -1;
  }
  return 0;
}

int pod_update(json_t *params, struct shim_err *err)
{
  json_t *res_json;
  cleanup_resources struct resources res = { 0 };
  if (field_object(params, "resources", "params", &res_json, err) < 0)
    return -1;
  if (!res_json)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "params.resources: required");
  if (resources_parse(res_json, &res, err) < 0)
    return -1;
  if (!g_pod.pod_cg)
    return shim_fail(err, SHIM_FAILED_PRECONDITION, "the shim made no pod cgroup (params.podCgroup of \"pod\")");
  if (cgroup_update(g_pod.pod_cg, &res, err) < 0) {
    shim_err_prefix(err, "pod cgroup");
    return -1;
  }
  return 0;
}

void pod_reaped(pid_t pid, int status)
{
  if (pid != g_pod.infra || pid <= 0)
    return;
  shim_log("pod infra process %d exited (status 0x%x)", (int) pid, (unsigned) status);
  g_pod.infra = 0;
  g_pod.infra_status = status;
  g_pod.infra_reaped = true;
  if (g_pod.info) {
    json_object_set_new(g_pod.info, "infraExited", json_true());
    json_object_set_new(g_pod.info, "infraStatus", json_integer(status));
  }
}

/* How the infra process ended, as a wait status in *status; false while it runs. An exit
 * not yet reaped is looked at without reaping it (WNOWAIT): the main loop reaps. */
static bool infra_ended(int *status)
{
  siginfo_t si;
  if (g_pod.infra_reaped) {
    *status = g_pod.infra_status;
    return true;
  }
  memset(&si, 0, sizeof(si));
  if (g_pod.infra <= 0 || waitid(P_PID, (id_t) g_pod.infra, &si, WEXITED | WNOHANG | WNOWAIT) < 0 || si.si_pid == 0)
    return false;
  *status = si.si_code == CLD_EXITED ? (si.si_status & 0xff) << 8 : si.si_status & 0x7f;
  return true;
}

int pod_infra_gone_failure(const char *id, struct shim_err *err)
{
  int status, sig;
  if (!infra_ended(&status))
    return -1;
  sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  /* The infra's cgroup holds nothing else: an OOM kill counted there was the infra's. */
  if (sig == SIGKILL && g_pod.cg && cgroup_oom_kills(g_pod.cg) > 0)
    return shim_fail(err, SHIM_RESOURCE_EXHAUSTED,
                     "create container \"%s\": the kernel's OOM killer ended the pod's infra process, whose namespaces the container "
                     "joins: the pod's memory limit is too low",
                     id);
  return shim_fail(err, SHIM_FAILED_PRECONDITION, "create container \"%s\": the pod's infra process, whose namespaces the container joins, has %s %d",
                   id, sig ? "been killed by signal" : "exited with status", sig ? sig : WEXITSTATUS(status));
}

bool pod_shutdown(void)
{
  bool clean;
  if (g_pod.infra > 0) {
    kill_and_reap(g_pod.infra);
    g_pod.infra = 0;
  }
  clean = pod_cgroups_destroy();
  json_decref(g_pod.info);
  g_pod.info = NULL;
  return clean;
}
