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

/* Diagnostics to the shim's own log (stderr redirected to <state>/shim.log). */
void shim_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Tests' failpoints: die (SIGKILL) at `step` ("create.cgroup", ...) when it is named in
 * $SKIFF_SHIM_FAILPOINTS (comma-separated; skiffd passes what its failpoints ask). */
void shim_failpoint(const char *step);

/* ---- small helpers (util.c: only generic fs/string helpers) --------------- */

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
/* SIGKILL a child process and reap it; nothing for pid <= 0. */
void kill_and_reap(pid_t pid);
/* Full read/write loops that retry on EINTR/short counts. */
ssize_t read_all(int fd, void *buf, size_t len);
ssize_t write_all(int fd, const void *buf, size_t len);

/* ---- JSON access helpers for the OCI spec (spec.c) ------------------------ */

/* Accessors return NULL / default when the key is absent; the *_checked ones
 * fail with INVALID_ARGUMENT naming the JSON path when the type is wrong. */
/* The key is there and not null. */
bool spec_has(json_t *obj, const char *key);
int spec_get_string(json_t *obj, const char *key, const char *where, const char **out, struct shim_err *err);
int spec_get_bool(json_t *obj, const char *key, const char *where, bool *out, struct shim_err *err);
int spec_get_int64(json_t *obj, const char *key, const char *where, bool *present, int64_t *out, struct shim_err *err);
int spec_get_uint64(json_t *obj, const char *key, const char *where, bool *present, uint64_t *out, struct shim_err *err);
int spec_get_object(json_t *obj, const char *key, const char *where, json_t **out, struct shim_err *err);
int spec_get_array(json_t *obj, const char *key, const char *where, json_t **out, struct shim_err *err);

/* Load <bundle>/config.json and validate every section (calls each module's
 * *_validate). On success *out holds the spec (caller json_decref's). */
int spec_load(const char *bundle, json_t **out, struct shim_err *err);
/* Validate a bare OCI "process" object (used by exec). */
int spec_validate_process(json_t *process, const char *where, struct shim_err *err);

/* ---- capabilities (caps.c) ----------------------------------------------- */

/* Validate process.capabilities: known names in all five sets. */
int caps_validate(json_t *process, struct shim_err *err);
/* Before switching user: drop from the bounding set every cap not listed. */
int caps_drop_bounding(json_t *process, struct shim_err *err);
/* After switching user (with PR_SET_KEEPCAPS): set effective, permitted,
 * inheritable, then raise ambient. */
int caps_set(json_t *process, struct shim_err *err);

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
int lsm_validate_process(json_t *process, const char *where, struct shim_err *err);
int lsm_validate_linux(json_t *linux_obj, struct shim_err *err);
/* Right before execve: the SELinux label, then the AppArmor profile, that the
 * execve enters. Writes nothing when the process names neither. */
int lsm_set_exec_labels(const struct lsm_ops *ops, json_t *process, struct shim_err *err);
/* Append context="<label>" to the data of a tmpfs, mqueue or devpts mount
 * (not a bind); nothing without a label. */
int lsm_mount_data(const char *type, bool bind, const char *label, char *data, size_t size, struct shim_err *err);

/* ---- seccomp (seccomp.c) -------------------------------------------------- */

/* Validate linux.seccomp (actions, arches, syscall names, arg ops). */
int seccomp_validate(json_t *seccomp, struct shim_err *err);
/* Load the filter into the calling process (last step before execve). */
int seccomp_apply(json_t *seccomp, struct shim_err *err);

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

/* ---- cgroups (cgroup.c) -------------------------------------------------- */

struct cgroup; /* opaque: one path per hierarchy (v1 controllers and/or v2) */

/* Validate linux.resources (types, ranges, device rules). */
int cgroup_validate_resources(json_t *resources, struct shim_err *err);
/* Create the cgroup at cgroups_path (absolute path under each hierarchy root;
 * a relative path is taken as under the root too) and apply resources.
 * Works on v1, v2 and hybrid hosts (v1 controllers + some on the unified mount). */
int cgroup_create(const char *cgroups_path, json_t *resources, struct cgroup **out, struct shim_err *err);
/* Open an existing cgroup (exec joins the container's cgroup; recovery). */
int cgroup_open(const char *cgroups_path, struct cgroup **out, struct shim_err *err);
/* Open the parent of cg (the pod cgroup of an infra cgroup kubelet named); the
 * root cgroup is refused: its figures are the host's. */
int cgroup_open_parent(struct cgroup *cg, struct cgroup **out, struct shim_err *err);
int cgroup_add_pid(struct cgroup *cg, pid_t pid, struct shim_err *err);
/* Apply resources to a live cgroup; if the kernel refuses a value half-way,
 * the files already written get their old contents back (v1 device rules excepted). */
int cgroup_update(struct cgroup *cg, json_t *resources, struct shim_err *err);
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

/* Validate linux.namespaces (known types, no duplicates, paths), and
 * uid/gid mappings. */
int ns_validate(json_t *linux_obj, struct shim_err *err);
/* CLONE_NEW* flags for namespaces listed without a path. */
int ns_clone_flags(json_t *linux_obj, int *flags, struct shim_err *err);
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
int ns_open_paths(json_t *linux_obj, struct ns_set *set, struct shim_err *err);
/* For exec: open the namespaces of a running process that differ from the
 * caller's. */
int ns_open_process(pid_t pid, struct ns_set *set, struct shim_err *err);
/* Write sysctls ({"net.ipv4.x": "1"}) through /proc/sys; namespaced keys land
 * in the caller's namespaces. where names the field in errors. */
int ns_write_sysctls(json_t *sysctls, const char *where, struct shim_err *err);
/* In the child: setns() into the opened namespaces, in order. */
int ns_join(const struct ns_set *set, struct shim_err *err);
/* Parent side: write uid_map/gid_map (and setgroups deny when needed) for pid. */
int ns_write_id_mappings(pid_t pid, json_t *uid_mappings, json_t *gid_mappings, struct shim_err *err);

/* ---- mounts and rootfs (mount.c) ----------------------------------------- */

/* Validate root, mounts, maskedPaths, readonlyPaths, devices,
 * rootfsPropagation (destinations absolute, no "..", known types/options). */
int mount_validate(json_t *spec, struct shim_err *err);

struct mount_ctx {
  const char *rootfs;  /* absolute host path of the rootfs */
  bool userns;         /* in a user namespace: bind devices, no mknod */
  struct cgroup *cg;   /* the container's cgroup, for "cgroup" mounts */
  bool new_cgroupns;   /* the container has its own cgroup namespace */
};

/* In the container's child, after joining/creating its namespaces, in its
 * own mount namespace: set propagation, bind the rootfs onto itself, do every
 * spec mount (targets resolved inside the rootfs with openat2
 * RESOLVE_IN_ROOT, mounted through /proc/self/fd/N), create devices and the
 * default /dev entries, pivot_root, then masked and read-only paths and a
 * read-only root. On return the process's root is the container rootfs and
 * cwd is "/". */
int mount_setup_rootfs(json_t *spec, const struct mount_ctx *ctx, struct shim_err *err);

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
