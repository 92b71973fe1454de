/* skiff-shim: shared declarations. Each .c file owns one kernel concern; this
 * header is the contract between them. Fallible functions return a negative
 * value and fill a struct shim_err (errno + a message naming what failed). */
#ifndef SKIFF_SHIM_H
#define SKIFF_SHIM_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SHIM_PROTOCOL_VERSION 1
#define SHIM_VERSION "0.1.0"

/* ---- errors (err.c) ------------------------------------------------------ */

/* Error classes, sent on the wire as the "code" of an error response. */
enum shim_code {
  SHIM_INTERNAL = 0,
  SHIM_INVALID_ARGUMENT,
  SHIM_NOT_FOUND,
  SHIM_ALREADY_EXISTS,
  SHIM_FAILED_PRECONDITION,
  SHIM_DEADLINE_EXCEEDED,
  SHIM_RESOURCE_EXHAUSTED,
};

struct shim_err {
  enum shim_code code;
  int errnum;      /* errno of the failing call, 0 if none */
  char msg[1024];
};

/* Fill err with errno-less message; returns -1. */
int shim_fail(struct shim_err *err, enum shim_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Fill err with errnum and message "<msg>: <strerror(errnum)>"; returns -1. */
int shim_fail_errno(struct shim_err *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *shim_code_name(enum shim_code code);
/* The code shim_fail_errno gives an errno (INTERNAL for one it does not map). */
enum shim_code shim_code_for_errno(int errnum);
/* Prefix an existing error message with more context ("create c1: ..."). */
void shim_err_prefix(struct shim_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* GCC cleanup helpers, crun style. */
void cleanup_freep(void *p);
void cleanup_closep(int *fd);
void cleanup_jsonp(json_t **j);
#define cleanup_free __attribute__((cleanup(cleanup_freep)))
#define cleanup_close __attribute__((cleanup(cleanup_closep)))
#define cleanup_json __attribute__((cleanup(cleanup_jsonp)))
/* In util.c: a child process killed and reaped (kill_and_reap) unless handed on
 * (set to -1), and a directory stream closed. */
void cleanup_reapp(pid_t *pid);
void cleanup_dirp(void *dir);
#define cleanup_reap __attribute__((cleanup(cleanup_reapp)))
#define cleanup_dir __attribute__((cleanup(cleanup_dirp)))

/* Tests' failpoints: die (SIGKILL) at `step` ("create.cgroup", ...) when it is named in
 * $SKIFF_SHIM_FAILPOINTS (comma-separated; skiffd passes what its failpoints ask). */
void shim_failpoint(const char *step);

/* ---- small helpers (util.c: generic fs, process and time helpers) --------- */

/* Diagnostics to the shim's own log (stderr redirected to <state>/shim.log). */
void shim_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Write a whole buffer to a file path (O_WRONLY|O_TRUNC or O_CREAT as given). */
int write_file(const char *path, const char *data, size_t len, int flags, struct shim_err *err);
int write_file_at(int dirfd, const char *name, const char *data, size_t len, struct shim_err *err);
/* Read at most max bytes of a small file into a NUL-terminated malloc'd buffer. */
int read_file(const char *path, char **out, size_t *len, size_t max, struct shim_err *err);
int read_file_at(int dirfd, const char *name, char **out, size_t *len, size_t max, struct shim_err *err);
/* Atomic write: temp file in the same dir, fsync, rename. */
int write_file_atomic(const char *path, const char *data, size_t len, struct shim_err *err);
int mkdir_p(const char *path, mode_t mode, struct shim_err *err);
bool path_exists(const char *path);
bool path_is_dir(const char *path); /* following symlinks */
/* now as nanoseconds since the epoch (CLOCK_REALTIME). */
int64_t now_ns(void);
/* RFC3339Nano UTC timestamp "2006-01-02T15:04:05.000000000Z" into buf (>= 40 bytes). */
void format_rfc3339nano(int64_t ns, char *buf, size_t len);
/* That timestamp as a JSON string; "" for 0 (not yet). */
json_t *time_json(int64_t ns);
/* fork() with clone flags (CLONE_NEW*, CLONE_PARENT) and, with cgroup_fd >= 0 (a cgroup2
 * directory), born in that cgroup (clone3's CLONE_INTO_CGROUP: no pid written to
 * cgroup.procs afterwards). *in_cgroup says whether it was: false without clone3. Like
 * fork it returns twice; the child must be forked from a single-threaded process. */
pid_t clone_child(uint64_t flags, int cgroup_fd, bool *in_cgroup);
/* SIGKILL a child process and reap it; nothing for pid <= 0. */
void kill_and_reap(pid_t pid);
/* Full read/write loops that retry on EINTR/short counts. */
ssize_t read_all(int fd, void *buf, size_t len);
ssize_t write_all(int fd, const void *buf, size_t len);

/* ---- typed fields of JSON objects (json_field.c) ---------------------------- */

/* An absent or null key reads as not there (NULL, false, 0, *present false); a
 * value of the wrong type fails with INVALID_ARGUMENT: "<where>.<key>: must be ...". */
bool field_present(json_t *obj, const char *key);
int field_string(json_t *obj, const char *key, const char *where, const char **out, struct shim_err *err);
int field_bool(json_t *obj, const char *key, const char *where, bool *out, struct shim_err *err);
int field_int64(json_t *obj, const char *key, const char *where, bool *present, int64_t *out, struct shim_err *err);
/* Reals from 2^63 up (2^64-1 from some generators) read as UINT64_MAX. */
int field_uint64(json_t *obj, const char *key, const char *where, bool *present, uint64_t *out, struct shim_err *err);
int field_object(json_t *obj, const char *key, const char *where, json_t **out, struct shim_err *err);
int field_array(json_t *obj, const char *key, const char *where, json_t **out, struct shim_err *err);
/* arr (the array of <where>.<key>; NULL gives an empty list) of strings as a NULL-terminated
 * list pointing into arr, as execve takes one: *out, to free. */
int json_string_list(json_t *arr, const char *where, const char *key, char ***out, struct shim_err *err);
/* Each element of arr, which must be an object ("<where>[i]: must be an object"), parsed
 * by parse_one into the next item of a new array of item_size items: *out (free it,
 * also on failure), *n (counting the item that failed, so that a free function sees
 * what it allocated). */
int field_objects(json_t *arr, const char *where, size_t item_size, void **out, size_t *n,
                  int (*parse_one)(json_t *obj, const char *where, void *item, void *ctx, struct shim_err *err), void *ctx,
                  struct shim_err *err);

/* ---- the OCI runtime spec, parsed once ---------------------------------------
 * config.json is read and checked once, before anything is made (spec.c; each
 * section by the module that applies it), into the structs below; nothing reads its
 * JSON again. Strings point into the JSON they were parsed from, which lives as long
 * as they do (struct spec holds its config.json); arrays belong to the struct. */

struct spec_rlimit {
  const char *type; /* "RLIMIT_NOFILE" */
  int resource;
  uint64_t soft, hard;
};

/* process.capabilities, as bit masks by capability number. */
struct spec_caps {
  bool listed; /* the key is there (even null): the user switch keeps capabilities for caps_set */
  bool given;  /* an object: all five sets are set (an unlisted one is empty) */
  uint64_t bounding, effective, inheritable, permitted, ambient;
};

/* process, or an exec's params.process. */
struct spec_process {
  char **args, **env; /* NULL-terminated, for execve */
  const char *cwd;    /* NULL: "/" */
  uint32_t uid, gid;
  gid_t *gids;
  size_t n_gids;
  int umask; /* -1: left as it is */
  bool has_oom_score_adj;
  int oom_score_adj;
  struct spec_rlimit *rlimits;
  size_t n_rlimits;
  bool terminal, no_new_privileges;
  struct spec_caps caps;
  const char *apparmor_profile, *selinux_label;
};

/* linux.namespaces, linux.uidMappings, linux.gidMappings. */
struct spec_namespace {
  int flag;         /* CLONE_NEW* */
  const char *type; /* "network" */
  const char *path; /* NULL: a new one */
};
struct spec_idmap {
  uint32_t container_id, host_id, size;
};
struct spec_ns {
  struct spec_namespace *list;
  size_t n;
  struct spec_idmap *uid_maps, *gid_maps;
  size_t n_uid_maps, n_gid_maps;
};

/* The rootfs: root.readonly, mounts, linux.devices, maskedPaths, readonlyPaths,
 * rootfsPropagation and mountLabel. */
struct spec_mount {
  const char *dest, *type, *source; /* type NULL: a bind mount */
  unsigned long flags, clear, propagation;
  bool rro;
  char *data; /* file system options: "mode=755"; NULL: none */
  /* An id-mapped bind mount: its uidMappings and gidMappings, or, for the "idmap" and
   * "ridmap" options without them, the container's (n_uid_maps 0). */
  bool idmap, idmap_recursive;
  struct spec_idmap *uid_maps, *gid_maps;
  size_t n_uid_maps, n_gid_maps;
};
struct spec_device {
  const char *path;
  char type; /* 'c', 'b' or 'p' ('u' is taken as 'c') */
  unsigned major, minor;
  mode_t mode;
  uid_t uid;
  gid_t gid;
};
struct spec_rootfs {
  bool readonly;
  struct spec_mount *mounts;
  size_t n_mounts;
  struct spec_device *devices;
  size_t n_devices;
  const char **masked_paths, **readonly_paths;
  size_t n_masked_paths, n_readonly_paths;
  const char *propagation; /* NULL: rslave */
  unsigned long propagation_flags; /* for "/": MS_SLAVE | MS_REC by default */
  const char *mount_label; /* SELinux context of the file systems made for it */
};

/* A sysctl: "net.ipv4.ip_forward" = "1". */
struct spec_sysctl {
  const char *key, *value;
};

/* linux.resources (also a pod cgroup's and an update's). has_*: the field was given;
 * limits of -1 are unlimited. */
struct res_hugepage {
  const char *page_size; /* "2MB" */
  int64_t limit;
};
struct res_device {
  bool allow;
  char type;             /* 'a', 'b' or 'c' */
  int64_t major, minor;  /* -1: any */
  const char *access;    /* letters of "rwm" */
};
struct res_unified {
  const char *key, *value; /* "memory.high" = "max" */
  size_t value_len;
};
struct res_cpu {
  bool has_shares, has_quota, has_period, has_rt_runtime, has_rt_period, has_idle;
  uint64_t shares, period, rt_period; /* shares, quota, period: 0 is not set, as CRI sends it */
  int64_t quota, rt_runtime, idle;
  const char *cpus, *mems;
};
struct res_memory {
  bool has_limit, has_reservation, has_swap, has_swappiness, has_disable_oom_killer;
  int64_t limit, reservation, swap; /* swap is the memory+swap total */
  uint64_t swappiness;
  bool disable_oom_killer;
};
struct resources {
  struct res_cpu cpu;
  struct res_memory memory;
  bool has_pids;
  int64_t pids_limit;
  struct res_hugepage *hugepages;
  size_t n_hugepages;
  bool has_devices; /* an empty list still denies all but the default devices */
  struct res_device *devices;
  size_t n_devices;
  bool has_blkio_weight;
  uint64_t blkio_weight;
  struct res_unified *unified;
  size_t n_unified;
};

struct seccomp_filter; /* linux.seccomp (seccomp.c) */

/* hooks (hooks.c): config.json's POSIX-platform hooks, by kind, in the order given. */
enum hook_kind {
  HOOK_PRESTART, /* deprecated: run as createRuntime hooks, before them */
  HOOK_CREATE_RUNTIME,
  HOOK_CREATE_CONTAINER,
  HOOK_START_CONTAINER,
  HOOK_POSTSTART,
  HOOK_POSTSTOP,
  HOOK_KINDS,
};
struct spec_hook {
  const char *path; /* absolute */
  char **args, **env; /* NULL-terminated; NULL: none (argv is then just the path, the environment the shim's) */
  int timeout_s;    /* 0: none given (HOOK_DEFAULT_TIMEOUT_S applies) */
};
struct spec_hooks {
  struct spec_hook *list[HOOK_KINDS];
  size_t n[HOOK_KINDS];
};
/* The shim serves the whole pod from one thread: a hook without a timeout of its own is
 * not waited for longer than this. */
#define HOOK_DEFAULT_TIMEOUT_S 60

struct spec {
  json_t *doc; /* config.json: the strings below point into it */
  const char *root_path, *hostname, *cgroups_path;
  struct spec_process process;
  struct spec_ns ns;
  struct spec_rootfs rootfs;
  struct resources resources;
  struct seccomp_filter *seccomp; /* NULL: none */
  struct spec_sysctl *sysctls;
  size_t n_sysctls;
  struct spec_hooks hooks;
};

/* ---- loading config.json (spec.c) --------------------------------------------- */

/* Load <bundle>/config.json and check and parse every section. */
int spec_load(const char *bundle, struct spec **out, struct shim_err *err);
void spec_free(struct spec *spec);
void cleanup_specp(struct spec **spec);
#define cleanup_spec __attribute__((cleanup(cleanup_specp)))
/* A bare OCI "process" object (exec's params.process); where names it in errors. */
int spec_parse_process(json_t *process, const char *where, struct spec_process *out, struct shim_err *err);
void spec_process_free(struct spec_process *p);
#define cleanup_spec_process __attribute__((cleanup(spec_process_free)))

/* ---- hooks (hooks.c) ------------------------------------------------------- */

extern const char *const hook_kind_names[HOOK_KINDS]; /* "createRuntime" ... */
/* config.json's "hooks": each kind a list of {path (absolute), args, env, timeout > 0}. */
int hooks_parse(json_t *doc, struct spec_hooks *out, struct shim_err *err);
void hooks_free(struct spec_hooks *h);
bool hooks_any(const struct spec_hooks *h, enum hook_kind k);
/* The longest the hooks of a kind may take together, for whoever waits on them. */
int64_t hooks_budget_ms(const struct spec_hooks *h, enum hook_kind k);
/* The state a hook reads on stdin (runtime.md "State"): ociVersion and annotations from
 * config.json (doc), the pid only when > 0. malloc'd JSON text; NULL without memory. */
char *hooks_state(json_t *doc, const char *id, const char *status, pid_t pid, const char *bundle);
/* Run the hooks of a kind in order, each with state on stdin, until one fails: exits
 * non-zero (FAILED_PRECONDITION) or outlives its timeout (DEADLINE_EXCEEDED, killed with
 * its process group); the error names the kind, the hook and its stderr. state NULL
 * fails (ENOMEM). */
int hooks_run(const struct spec_hooks *h, enum hook_kind k, const char *state, struct shim_err *err);

/* ---- capabilities (caps.c) ----------------------------------------------- */

/* process.capabilities: known names in all five sets. */
int caps_parse(json_t *process, struct spec_caps *out, struct shim_err *err);
/* Before switching user: drop from the bounding set every cap not listed. */
int caps_drop_bounding(const struct spec_caps *caps, struct shim_err *err);
/* After switching user (with PR_SET_KEEPCAPS): set effective, permitted,
 * inheritable, then raise ambient. */
int caps_set(const struct spec_caps *caps, struct shim_err *err);

/* ---- LSMs: AppArmor and SELinux (lsm.c) --------------------------------- */

/* How the labels reach the kernel: real /proc writes, or a test's recorder.
 * write_attr fills err (errnum set) and returns -1 on failure. */
struct lsm_ops {
  int (*write_attr)(const char *path, const char *data, struct shim_err *err);
};
extern const struct lsm_ops lsm_real_ops;
/* Mount data (file system options) the kernel takes: one page. */
#define LSM_MOUNT_DATA_MAX 4096
/* process.apparmorProfile and process.selinuxLabel: strings without NUL,
 * newline or quote; linux.mountLabel likewise. */
int lsm_parse_process(json_t *process, const char *where, const char **apparmor_profile, const char **selinux_label,
                      struct shim_err *err);
int lsm_parse_linux(json_t *linux_obj, const char **mount_label, struct shim_err *err);
/* Right before execve: the SELinux label, then the AppArmor profile, that the
 * execve enters. Writes nothing for a NULL or empty one. */
int lsm_set_exec_labels(const struct lsm_ops *ops, const char *selinux_label, const char *apparmor_profile,
                        struct shim_err *err);
/* Append context="<label>" to the data of a tmpfs, mqueue or devpts mount
 * (not a bind); nothing without a label. */
int lsm_mount_data(const char *type, bool bind, const char *label, char *data, size_t size, struct shim_err *err);

/* ---- seccomp (seccomp.c) -------------------------------------------------- */

/* linux.seccomp (actions, arches, flags, syscall names, arg ops) into a filter;
 * *out NULL when seccomp is NULL. */
int seccomp_parse(json_t *seccomp, struct seccomp_filter **out, struct shim_err *err);
void seccomp_free(struct seccomp_filter *f);
/* Compile the filter to its BPF program, once: a program compiled before for the same
 * profile is reused (libseccomp takes milliseconds for a default profile). The shim
 * compiles a container's at create, so that neither its start nor an exec does. */
int seccomp_compile(struct seccomp_filter *f, struct shim_err *err);
/* How many programs this process has compiled (the others came from the cache). */
unsigned long seccomp_compilations(void);
/* Load the filter into the calling process (last step before execve), compiling it
 * first if it is not yet. */
int seccomp_apply(struct seccomp_filter *f, struct shim_err *err);

/* ---- cgroup stat files (cgstat.c) ----------------------------------------- */

/* A cgroup2 *.pressure file as {"some": <psi>, "full": <psi>|null}, <psi> being
 * {"avg10", "avg60", "avg300", "totalUs"}; NULL when it has no well-formed "some"
 * line. "full" is null where the file has none (cpu before Linux 5.13). */
json_t *cgstat_pressure_json(const char *text);
/* cgroup2 io.stat as an array of {"major", "minor", "readBytes", "writeBytes",
 * "reads", "writes"}; lines without the four counters are skipped. */
json_t *cgstat_io_stat_json(const char *text);
/* v1 blkio.throttle.io_service_bytes and io_serviced (either may be NULL) as the
 * same array, from their Read and Write lines. */
json_t *cgstat_blkio_json(const char *bytes, const char *ops);

/* ---- cgroups (cgroup*.c: the driver; cgroup_internal.h is its own) --------- */

struct cgroup; /* opaque: one path per hierarchy (v1 controllers and/or v2) */

/* linux.resources checked (types, ranges, device rules) and parsed; NULL or null
 * gives no resources (cgroup_resources.c). */
int resources_parse(json_t *resources, struct resources *out, struct shim_err *err);
void resources_free(struct resources *r);
#define cleanup_resources __attribute__((cleanup(resources_free)))
/* The host's cgroup hierarchies as skiffd saw them (--cgroups, api/shim/PROTOCOL.md):
 * taken instead of reading /proc/self/mountinfo if they still hold when first needed. */
void cgroup_use_hierarchies(const char *json);
/* Create the cgroup at cgroups_path (absolute path under each hierarchy root;
 * a relative path is taken as under the root too) and apply resources (or none).
 * Works on v1, v2 and hybrid hosts (v1 controllers + some on the unified mount). */
int cgroup_create(const char *cgroups_path, const struct resources *resources, struct cgroup **out, struct shim_err *err);
/* Open an existing cgroup (exec joins the container's cgroup; recovery). */
int cgroup_open(const char *cgroups_path, struct cgroup **out, struct shim_err *err);
/* Open the parent of cg (the pod cgroup of an infra cgroup kubelet named); the
 * root cgroup is refused: its figures are the host's. */
int cgroup_open_parent(struct cgroup *cg, struct cgroup **out, struct shim_err *err);
/* What a new process joins its cgroup through, opened by the shim (the kernel checks
 * the opener's credentials and cgroup namespace, so a process already in the container's
 * user or cgroup namespace can still use them): the cgroup2 dir, for clone3's
 * CLONE_INTO_CGROUP, its cgroup.procs, and the `tasks` file of each v1 hierarchy. */
#define CGROUP_JOIN_MAX 16
struct cgroup_join {
  struct cgroup *cg;
  int v2_dir, v2_procs, v2_hier; /* -1: not in a cgroup2 hierarchy */
  int v1_tasks[CGROUP_JOIN_MAX], v1_hier[CGROUP_JOIN_MAX];
  size_t n_v1;
};
/* An empty join (nothing to close). */
void cgroup_join_init(struct cgroup_join *j);
int cgroup_join_open(struct cgroup *cg, struct cgroup_join *j, struct shim_err *err);
void cgroup_join_close(struct cgroup_join *j);
/* Its fds into fds (at most max), for a child to keep; returns how many. */
size_t cgroup_join_fds(const struct cgroup_join *j, int *fds, size_t max);
/* In the new process, which must be single-threaded: join the cgroup, then close the
 * join's fds. In each v1 hierarchy the process moves itself ("0" into `tasks`): a task
 * moving itself alone skips the kernel's global threadgroup lock, whose taking for
 * writing waits out an RCU grace period (milliseconds on a busy host) every time a pid
 * is written to cgroup.procs. It joins the cgroup2 one through cgroup.procs (taking
 * that lock) unless clone3 made it there (in_v2). */
int cgroup_join_self(struct cgroup_join *j, bool in_v2, struct shim_err *err);
/* Apply resources to a live cgroup; if the kernel refuses a value half-way,
 * the files already written get their old contents back (v1 device rules excepted). */
int cgroup_update(struct cgroup *cg, const struct resources *resources, struct shim_err *err);
/* Stats as a JSON object (see api/shim/PROTOCOL.md "stats"). */
int cgroup_stats(struct cgroup *cg, json_t **out, struct shim_err *err);
/* Number of OOM kills recorded for this cgroup (memory.oom_control oom_kill
 * on v1, memory.events oom_kill on v2); 0 when unknown. */
long cgroup_oom_kills(struct cgroup *cg);
/* The memory limit of the cgroup's own dir (memory.max on v2, memory.limit_in_bytes on
 * v1): false when it has none (a limit may still be set above it). */
bool cgroup_memory_limit(struct cgroup *cg, uint64_t *out);
/* Signal every process in the cgroup. */
int cgroup_signal_all(struct cgroup *cg, int sig, struct shim_err *err);
/* Processes currently in the cgroup (malloc'd array). */
int cgroup_pids(struct cgroup *cg, pid_t **pids, size_t *n, struct shim_err *err);
/* Kill what is left (SIGKILL, freezing first where possible), wait until the
 * cgroup is empty (bounded), rmdir it in every hierarchy. */
int cgroup_destroy(struct cgroup *cg, struct shim_err *err);
/* Path of this cgroup inside a hierarchy, for the container's cgroup mount:
 * returns the absolute host dir (e.g. /sys/fs/cgroup/memory/a/b) for v1
 * controller "memory", or the v2 dir for "" ; NULL if absent. */
const char *cgroup_dir(struct cgroup *cg, const char *controller);
/* List of v1 hierarchies (mount dir + controller names) for mounting
 * cgroup inside a container; calls fn for each. */
int cgroup_foreach_hierarchy(struct cgroup *cg, int (*fn)(void *ctx, const char *name, const char *host_dir), void *ctx, struct shim_err *err);
bool cgroup_is_v2_only(void);
void cgroup_free(struct cgroup *cg);
void cleanup_cgroupp(struct cgroup **cg);
#define cleanup_cgroup __attribute__((cleanup(cleanup_cgroupp)))

/* ---- namespaces (ns.c) --------------------------------------------------- */

/* linux.namespaces (known types, no duplicates, paths) and uid/gid mappings. */
int ns_parse(json_t *linux_obj, struct spec_ns *out, struct shim_err *err);
void ns_free(struct spec_ns *ns);
#define cleanup_ns __attribute__((cleanup(ns_free)))
/* The namespace of that type is listed (new or joined). */
bool ns_listed(const struct spec_ns *ns, int flag);
/* CLONE_NEW* flags for namespaces listed without a path. */
int ns_clone_flags(const struct spec_ns *ns);
/* Namespace fds to join, in join order (user first, mount last). */
struct ns_set {
  int fds[8];
  int types[8]; /* CLONE_NEW* */
  size_t n;
};
void ns_set_free(struct ns_set *set);
#define cleanup_ns_set __attribute__((cleanup(ns_set_free)))
/* Open every namespace given by path (before forking), checking each file is
 * a namespace of the stated type. */
int ns_open_paths(const struct spec_ns *ns, struct ns_set *set, struct shim_err *err);
/* For exec: open the namespaces of a running process that differ from the
 * caller's. */
int ns_open_process(pid_t pid, struct ns_set *set, struct shim_err *err);
/* A sysctls object ({"net.ipv4.x": "1"}, where names it in errors): string values,
 * keys key_ok accepts. *out is malloc'd. */
int ns_parse_sysctls(json_t *obj, const char *where, bool (*key_ok)(const char *key), struct spec_sysctl **out, size_t *n,
                     struct shim_err *err);
/* Write sysctls through /proc/sys; namespaced keys land in the caller's namespaces. */
int ns_write_sysctls(const struct spec_sysctl *sysctls, size_t n, const char *where, struct shim_err *err);
/* In the child: setns() into the opened namespaces, in order. */
int ns_join(const struct ns_set *set, struct shim_err *err);
/* Parent side: write uid_map/gid_map (and setgroups deny when needed) for pid. */
int ns_write_id_mappings(pid_t pid, const struct spec_ns *ns, struct shim_err *err);

/* ---- mounts and rootfs (mount_spec.c, mount.c) ------------------------------ */

/* root.readonly, mounts, and linux's maskedPaths, readonlyPaths, devices and
 * rootfsPropagation (destinations absolute, no "..", known types and options). */
int mount_parse(json_t *spec, struct spec_rootfs *out, struct shim_err *err);
void mount_free(struct spec_rootfs *r);

/* A container made from the pod's mount template (mount_template.c): its mounts are
 * clones of host paths made in the host's namespace (open_tree), attached in its own. */
struct mount_clone {
  int fd;               /* -1: not a bind mount (nor sysfs without a network namespace) */
  bool is_dir;          /* the source is a directory */
  unsigned long locked; /* the source's MS_RDONLY/NOSUID/NODEV/NOEXEC, which a bind keeps */
  size_t cg_first, cg_n; /* a v1 "cgroup" mount: its hierarchies in mount_clones.cgroup */
};
struct mount_clones {
  int rootfs;                 /* the rootfs, recursively */
  struct mount_clone *binds;  /* per spec mount */
  size_t n;
  /* The container's dir of each v1 hierarchy, for "cgroup" mounts, and the hierarchy's
   * name (its mount's directory: "cpu,cpuacct", "unified"). */
  int cgroup[CGROUP_JOIN_MAX];
  char cgroup_name[CGROUP_JOIN_MAX][64];
  size_t n_cgroup;
  unsigned long propagation;  /* what "/" gets on the host's copy (spec_rootfs.propagation_flags) */
  struct shim_err *err;
};
/* Where a container made from the template has its rootfs attached. */
#define MOUNT_TEMPLATE_ROOTFS "/rootfs"
/* The template's mount namespace (skiffd's, else made on first use; kept for the shim's
 * life), or -1. */
int mount_template_fd(struct shim_err *err);
/* Take skiffd's template (--mount-template-fd): one for the node, made once. */
void mount_template_adopt(int fd);
/* skiff-shim --mount-template DIR: make a template, print the pid of the process in it,
 * and end it once stdin closes (skiffd opens /proc/<pid>/ns/mnt meanwhile). */
int mount_template_serve(const char *dir);
/* Can this container be made from the template? Not with a user namespace, with
 * id-mapped mounts or with hooks before its start. */
bool mount_template_fits(const struct spec *spec, bool has_hooks);
void mount_clones_init(struct mount_clones *c);
/* In the host's mount namespace: clone the rootfs and every bind source. */
int mount_clones_prepare(const struct spec *spec, const char *rootfs, struct cgroup *cg, struct mount_clones *c,
                         struct shim_err *err);
void mount_clones_free(struct mount_clones *c);
/* The flags of statvfs's f_flag a bind mount must keep (mount.c). */
struct statvfs;
unsigned long statvfs_flags(const struct statvfs *st);

struct mount_ctx {
  const char *rootfs;  /* absolute host path of the rootfs */
  struct mount_clones *clones; /* made from the template: the host paths' clones; NULL: a copy of the host's */
  const int *idmapped; /* per mount: its id-mapped clone (mount_idmap_prepare), or -1; NULL: none */
  bool userns;         /* in a user namespace: bind devices, no mknod */
  struct cgroup *cg;   /* the container's cgroup, for "cgroup" mounts */
  bool new_cgroupns;   /* the container has its own cgroup namespace */
  /* Called once the mounts and devices are made, right before pivot_root (where the
   * createRuntime and createContainer hooks run); may be NULL. */
  int (*before_pivot)(void *arg, struct shim_err *err);
  void *before_pivot_arg;
};

/* In the container's child, after joining/creating its namespaces, in its
 * own mount namespace: set propagation, bind the rootfs onto itself, do every
 * spec mount (targets resolved inside the rootfs with openat2
 * RESOLVE_IN_ROOT, mounted through /proc/self/fd/N), create devices and the
 * default /dev entries, pivot_root, then masked and read-only paths and a
 * read-only root. On return the process's root is the container rootfs and
 * cwd is "/". */
int mount_setup_rootfs(const struct spec_rootfs *rootfs, const struct mount_ctx *ctx, struct shim_err *err);

/* ---- id mappings (idmap.c) and id-mapped mounts (mount_idmap.c) ------------- */

/* Lines a uid_map or gid_map may hold (Linux 4.15 on). */
#define IDMAP_MAX_LINES 340
/* Every range non-empty and below id 2^32-1, no two overlapping on either side, at most
 * IDMAP_MAX_LINES; errors name where[i]. */
int idmap_check(const struct spec_idmap *maps, size_t n, const char *where, struct shim_err *err);
/* obj[key] (absent: none) parsed and checked; errors name "<where>.<key>[i]". */
int idmap_parse(json_t *obj, const char *key, const char *where, struct spec_idmap **out, size_t *n, struct shim_err *err);
bool idmap_equal(const struct spec_idmap *a, size_t na, const struct spec_idmap *b, size_t nb);

/* A user namespace holding these mappings (its first process is gone when this returns):
 * an fd for MOUNT_ATTR_IDMAP, or -1. */
int idmap_userns_open(const struct spec_idmap *uids, size_t nu, const struct spec_idmap *gids, size_t ng, struct shim_err *err);
/* In the host's user and mount namespaces, before the container's process leaves them:
 * for each id-mapped mount of spec, a detached clone of its source with its mappings set,
 * in fds[i] (-1 for the other mounts; fds has spec->rootfs.n_mounts entries). On failure
 * every fd made is closed. */
int mount_idmap_prepare(const struct spec *spec, int *fds, struct shim_err *err);
void mount_idmap_close(int *fds, size_t n);

/* Open path inside root_fd without leaving it (openat2 RESOLVE_IN_ROOT). */
int open_in_root(int root_fd, const char *path, int flags, mode_t mode, struct shim_err *err);

/* ---- kernel features (features.c) ---------------------------------------- */

/* Probe recursive read-only mounts, user namespaces, id-mapped mounts and /sys for a
 * user namespace in the host's network namespace; print them as one JSON object
 * ({"<feature>": {"supported": bool, "error"?: string}}). Returns the exit code. */
int features_print(void);

/* ---- CRI log files (log.c) ----------------------------------------------- */

struct cri_log;
enum { STREAM_STDOUT = 1, STREAM_STDERR = 2 };
int cri_log_open(const char *path, struct cri_log **out, struct shim_err *err);
/* Write bytes read from a container stream in CRI format: full lines get
 * "F"; an unfinished line is held until its newline, or cut at 16 KiB ("P"). */
void cri_log_write(struct cri_log *log, int stream, const char *buf, size_t len);
/* Write out a held unfinished line (P) when its stream has ended. */
void cri_log_flush(struct cri_log *log, int stream);
int cri_log_reopen(struct cri_log *log, struct shim_err *err);
void cri_log_close(struct cri_log *log);

#endif
