/* core.h: the shim's own objects (connections, containers, exec sessions) and
 * the event loop that ties them together. Kernel-concern modules do not see it. */
#ifndef SKIFF_SHIM_CORE_H
#define SKIFF_SHIM_CORE_H

#include "shim.h"

#include <sys/epoll.h>

#define LINE_MAX_BYTES (4 * 1024 * 1024)
#define FRAME_MAX_BYTES (1024 * 1024)
/* A sync exec keeps at most this much of stdout and stderr together (the rest is
 * read and dropped): the CRI reply, these bytes and at most 21 bytes of protobuf
 * framing, then fits the 16 MiB that kubelet accepts. */
#define EXEC_SYNC_MAX_OUTPUT (16 * 1024 * 1024 - 1024)
/* A connection keeps an output buffer this large between replies; a larger one
 * (a big reply, a slow stream reader) is freed once sent. */
#define CONN_KEEP_BYTES (64 * 1024)
/* A client whose unsent output passes this is slow: stream data to it is
 * dropped (attach) or the producer pauses (exec), so a container never blocks
 * on a reader. */
#define CONN_HIGH_WATER (4 * 1024 * 1024)

enum frame_type {
  FRAME_STDIN = 0,
  FRAME_STDOUT = 1,
  FRAME_STDERR = 2,
  FRAME_RESIZE = 3,
  FRAME_CLOSE_STDIN = 4,
  FRAME_EXIT = 5,
};

/* ---- event loop (loop.c; main.c runs it) ----------------------------------- */

/* What an epoll registration points at. */
enum watch_kind {
  W_LISTEN,
  W_SIGNAL,
  W_CONN,
  W_OUTPUT, /* a process's stdout/stderr pipe or pty master */
  W_STDIN,  /* a process's stdin, waiting to be writable */
  W_TIMER,  /* exec sync timeout */
  W_FORWARD, /* a port-forward's TCP socket */
};

struct watch {
  enum watch_kind kind;
  int fd;
  void *obj;
  int stream; /* W_OUTPUT: STREAM_STDOUT / STREAM_STDERR */
  uint32_t events;
};

int loop_init(void);
int loop_wait(struct epoll_event *evs, int max);
/* Give back freed heap and the pages of read-only file mappings (code). */
void trim_memory(void);
/* Free what defer_free() queued; called after each batch of events. */
void loop_run_deferred(void);
int loop_add(struct watch *w, uint32_t events);
int loop_mod(struct watch *w, uint32_t events);
/* Remove from epoll; the caller then closes w->fd and sets it to -1, which
 * makes later events of the same batch skip the watch. */
void loop_del(struct watch *w);
/* Free obj with fn after the current batch of events has been handled. */
void defer_free(void *obj, void (*fn)(void *));

struct shim_state {
  const char *state_dir;
  const char *socket_path;
  char exits_dir[4096];
  bool shutting_down; /* leave the loop after this batch */
  bool shut_down;     /* containers, pod, socket and pid file are gone */
  bool shut_down_clean; /* ... and so is every cgroup the shim made */
};
extern struct shim_state g_shim;

/* Kill every container and the pod, remove the socket and pid file (proto.c). */
/* Kill every container and the infra process, remove their cgroups, the socket and the
 * pid file; true if every cgroup went (a second call repeats the first answer). */
bool shim_shutdown(void);

/* ---- growable byte buffer (buf.c) ------------------------------------------ */

struct buf {
  char *data;
  size_t len, cap, off; /* off: bytes already consumed from the front */
};
int buf_append(struct buf *b, const void *data, size_t len);
void buf_consume(struct buf *b, size_t n);
size_t buf_pending(const struct buf *b);
void buf_free(struct buf *b);

/* ---- client connections (conn.c) and their requests (proto.c) --------------- */

struct stream_sess;
struct conn;

/* What serves a connection: each request line it reads, and its end (so that
 * nothing waits to answer it any more). */
struct conn_handler {
  void (*line)(struct conn *c, const char *line, size_t len);
  void (*closed)(struct conn *c);
};
/* The shim protocol's requests (proto.c). */
extern const struct conn_handler proto_conn_handler;

/* Output queued behind a connection's out buffer: buffers handed over whole
 * (conn_give), and what was queued after them. */
struct out_seg {
  struct buf b;
  struct out_seg *next;
};

struct conn {
  struct watch w;
  struct buf in, out;
  struct out_seg *more, *more_last; /* sent after out, in order */
  bool subscribed;
  bool streaming;       /* frames instead of JSON lines */
  bool closing;         /* close once output is flushed */
  bool write_shut;      /* output done and shut (SHUT_WR): input is discarded until the client closes */
  bool paused;          /* not reading: its target stdin is full */
  const struct conn_handler *handler;
  struct stream_sess *sess;
  struct conn *next;
};

void conn_accept(int listen_fd, const struct conn_handler *handler);
void conn_event(struct conn *c, uint32_t events);
void conn_close(struct conn *c);
/* Queue output; returns -1 when it could not (no memory: the conn is closed). */
int conn_send_json(struct conn *c, json_t *msg);
int conn_send_result(struct conn *c, json_t *id, json_t *result);
void conn_send_error(struct conn *c, json_t *id, const struct shim_err *err);
void conn_send_frame(struct conn *c, enum frame_type type, const void *data, size_t len);
/* A frame whose data is msg as JSON text (an exit frame). */
void conn_send_json_frame(struct conn *c, enum frame_type type, json_t *msg);
/* Queue a whole buffer without copying it: the connection takes it over (*b is
 * left empty) and frees it once sent. */
void conn_give(struct conn *c, struct buf *b);
/* Bytes queued and not yet sent. */
size_t conn_pending(const struct conn *c);
/* Send an event line to every subscribed connection. */
void conn_broadcast_event(const char *event, json_t *params);
void conn_resume(struct conn *c);
/* Close the connection once its queued output is sent. */
void conn_finish(struct conn *c);
void conn_close_all(void);

/* ---- processes: containers and exec sessions (container.c, exec.c) ---------- */

enum ctr_status { CTR_CREATED, CTR_RUNNING, CTR_STOPPED };

struct exit_info {
  pid_t pid;
  int exit_code;
  int signal;
  int64_t exited_ns;
  bool oom_killed;
};
/* exit.c */
json_t *exit_json(const char *id, const struct exit_info *e);
void exit_from_status(struct exit_info *e, pid_t pid, int status);

/* The stdio of one process, owned by the shim: pipes or a pty master (proc_io.c).
 * Its watches point back at it (watch.obj); what it reads goes to its owner, a
 * container or an exec, through ops. */
struct proc_io_ops {
  void (*output)(void *owner, int stream, const char *data, size_t len);
  void (*end)(void *owner, int stream); /* the stream ended (EOF); may be NULL */
};

struct proc_io {
  struct watch out, err;  /* W_OUTPUT watches (err.fd -1 with a tty) */
  struct watch in;        /* W_STDIN: write end of stdin, or a dup of the pty master */
  struct buf in_buf;      /* stdin bytes waiting for the process to read */
  bool tty;
  bool in_close_pending;  /* close stdin once in_buf is drained */
  struct conn *paused_conn; /* stopped reading because in_buf is full */
  const struct proc_io_ops *ops;
  void *owner;
};

#define proc_io_of(w) ((struct proc_io *) (w)->obj)
void proc_io_init(struct proc_io *io, const struct proc_io_ops *ops, void *owner);
/* Pipes for a new process; stdio[] gets the child's ends (-1 for none). */
int proc_io_pipes(struct proc_io *io, bool tty, bool want_stdin, int stdio[3], struct shim_err *err);
void proc_io_close_child_ends(int stdio[3]);
void cleanup_child_endsp(int (*stdio)[3]);
#define cleanup_child_ends __attribute__((cleanup(cleanup_child_endsp)))
/* Register the outputs with the loop; master: the pty master or -1. */
int proc_io_start(struct proc_io *io, int master, bool want_stdin, struct shim_err *err);
/* Read everything already written (after the process exited). */
void proc_io_drain(struct proc_io *io);
void proc_io_close(struct proc_io *io);
/* Output ready on a process's stdout/stderr/pty. */
void proc_output_event(struct watch *w, uint32_t events);
void proc_stdin_event(struct watch *w, uint32_t events);
/* Queue stdin bytes for a process; returns false if its buffer is over the
 * high water mark (the caller pauses its source). */
bool proc_io_write_stdin(struct proc_io *io, const void *data, size_t len);
void proc_io_close_stdin(struct proc_io *io);
int proc_io_resize(struct proc_io *io, unsigned width, unsigned height, struct shim_err *err);

struct waiter {
  struct conn *conn;
  json_t *req_id;
  struct waiter *next;
};

struct container {
  char *id;
  char *bundle;
  /* What an exec needs of its spec: linux.seccomp, whose strings point into config.json
   * (the rest of the parsed spec goes once the container is made). */
  json_t *spec_doc;
  struct seccomp_filter *seccomp; /* NULL: none */
  struct spec_hooks hooks;        /* config.json's hooks (strings in spec_doc) */
  pid_t pid;
  enum ctr_status status;
  int sync_fd;            /* to the init while created; -1 after start */
  struct cgroup *cg;
  struct cri_log *log;
  char *log_path;
  struct proc_io io;
  bool stdin_once;
  bool own_pidns;
  int64_t created_ns, started_ns;
  long oom_kills_at_start;
  struct exit_info exit;
  struct waiter *waiters;
  struct criu_restore *restore; /* created from a checkpoint: what start runs; else NULL */
  struct container *next;
};

/* A stream session: a connection in frame mode attached to a container's
 * stdio, driving one exec'd process, or relaying a port forward. The connection
 * hands it the frames it reads, through its ops. */
struct exec_proc;
struct forward;

struct stream_ops {
  void (*input)(struct stream_sess *s, enum frame_type type, const char *data, size_t len);
  /* The connection's output went below the high-water mark; may be NULL. */
  void (*drained)(struct stream_sess *s);
  /* The connection is closing: let go of it and free s. */
  void (*detach)(struct stream_sess *s);
};

struct stream_sess {
  const struct stream_ops *ops;
  struct conn *conn;
  struct container *ctr;   /* attach */
  struct exec_proc *exec;  /* streaming exec */
  struct forward *fwd;     /* port forward */
  bool want_stdin, want_stdout, want_stderr;
  struct stream_sess *next; /* in ctr's attach list (g_attaches) */
};

struct exec_proc {
  struct container *ctr;  /* NULL once the container is deleted */
  char ctr_id[129];
  pid_t pid;
  struct proc_io io;
  bool sync;
  struct conn *conn;      /* sync: who gets the reply; streaming: the stream conn */
  json_t *req_id;
  bool raw_output;        /* sync: the reply line is followed by the output bytes */
  struct buf out_acc, err_acc; /* sync: captured output, EXEC_SYNC_MAX_OUTPUT together */
  bool truncated;
  struct watch timer;
  bool timed_out;
  bool exited;
  struct exit_info exit;
  struct exec_proc *next;
};

extern struct container *g_containers;
extern struct exec_proc *g_execs;

struct container *container_find(const char *id);
int container_create(json_t *params, json_t **result, struct shim_err *err);
int container_start(struct container *c, json_t **result, struct shim_err *err);
int container_kill(struct container *c, int sig, bool all, struct shim_err *err);
int container_delete(struct container *c, bool force, struct shim_err *err);
json_t *container_state_json(struct container *c);
void container_add_waiter(struct container *c, struct conn *conn, json_t *req_id);
void containers_forget_conn(struct conn *conn);
/* A reaped child: true when it was a container's init (now stopped). */
bool container_reaped(pid_t pid, int status);
bool containers_shutdown(void);

int exec_start(struct container *c, json_t *params, struct conn *conn, json_t *req_id, struct shim_err *err);
/* A reaped child: true when it was an exec'd process (now answered for). */
bool exec_reaped(pid_t pid, int status);
void exec_exited(struct exec_proc *e, int status);
void exec_output(struct exec_proc *e, int stream, const char *data, size_t len);
/* The container is going away: end its exec'd processes. */
void exec_container_deleted(struct container *c);
void exec_timer_event(struct exec_proc *e);
void exec_forget_conn(struct conn *conn);

/* attach, and the client side of a streaming exec (io.c) */
int attach_start(struct container *c, json_t *params, struct conn *conn, json_t *req_id, struct shim_err *err);
/* A container's output, to the clients attached to it. */
void attach_broadcast(struct container *c, int stream, const char *data, size_t len);
/* The container exited or is deleted: an exit frame, then each attach ends. */
void attach_container_exited(struct container *c);
/* Frames to a process's stdio: an attach's or a streaming exec's session. */
extern const struct stream_ops stdio_stream_ops;

/* ---- port forwarding (forward.c) ----------------------------------------- */

/* Connect to 127.0.0.1:port in the pod's network namespace; answers req_id once
 * connected (returns 1), or fails at once (-1). */
int forward_start(json_t *params, struct conn *conn, json_t *req_id, struct shim_err *err);
void forward_event(struct forward *f, uint32_t events);

/* ---- spawning processes (spawn.c) ---------------------------------------- */

struct spawn_req {
  const struct spec *spec;            /* create: the container's spec; exec: NULL */
  const struct spec_process *process; /* the process to run (spec.process, or exec's) */
  struct seccomp_filter *seccomp; /* the container's, compiled, for an exec'd process too */
  const char *rootfs;     /* create: absolute rootfs; exec: NULL */
  struct cgroup *cg;
  pid_t join_pid;         /* exec: join this pid's namespaces */
  int stdio[3];           /* fds for the process's 0,1,2 (-1: /dev/null);
                             with process.terminal the process opens a pty */
  bool create;            /* a new container (mounts, sysctls, hostname) */
  /* create: the container's id, bundle and hooks (createRuntime, createContainer and
   * startContainer run during the spawn and the release). */
  const char *id, *bundle;
  const struct spec_hooks *hooks;
};

/* The process's own set-up between its clone and execve (proc_setup.c). */
/* The shim blocks the signals its signalfd reads and ignores SIGPIPE; a blocked mask
 * and ignored dispositions survive execve, so undo both. */
void reset_signals(void);
int apply_rlimits(const struct spec_process *p, struct shim_err *err);
int set_oom_score_adj(const struct spec_process *p, struct shim_err *err);
/* Open a terminal inside the container's own devpts, make it the controlling terminal
 * and stdio; *master_out for the shim. */
int setup_tty(uid_t uid, int *master_out, struct shim_err *err);
/* args[0] resolved as execvp does (PATH from env), inside the container, as its user. */
int find_executable(const char *arg0, char **env, char *out, size_t len, struct shim_err *err);
/* umask, bounding set, groups, uid/gid and the capability sets of process. */
int switch_user(const struct spec_process *p, struct shim_err *err);
/* chdir to process.cwd (made if missing), refusing one outside the root. */
int ensure_cwd(const char *cwd, struct shim_err *err);

/* Spawn a process (through an intermediate that joins namespaces); on success
 * *pid is the process (a child of the shim), *sync_fd the channel to it, and
 * *pty_master the terminal's master when process.terminal is set (else -1).
 * The process has sent READY and waits for spawn_release(). */
int spawn_process(const struct spawn_req *req, pid_t *pid, int *sync_fd, int *pty_master, struct shim_err *err);
/* Tell a created process to execve; waits for the result (longer by extra_ms: the
 * startContainer hooks it runs first). */
int spawn_release(int sync_fd, int64_t extra_ms, struct shim_err *err);

/* ---- checkpoint and restore with CRIU (criu.c, criu_restore.c) ------------------ */

struct criu_restore;
/* Dump the running container's process tree into params.imagesDir, leaving it running. */
int criu_checkpoint(struct container *c, json_t *params, json_t **result, struct shim_err *err);
/* create with params.restore: c->restore made, with c's stdio (*master: a pty's, else -1). */
int criu_restore_prepare(struct container *c, json_t *params, const struct spec *spec, const char *rootfs,
                         bool want_stdin, int *master, struct shim_err *err);
/* start of such a container: CRIU run; *pid the restored init, the shim's child. */
int criu_restore_run(struct container *c, pid_t *pid, struct shim_err *err);
void criu_restore_free(struct criu_restore *r);

/* ---- pod (pod.c) --------------------------------------------------------- */

int pod_create(json_t *params, json_t **result, struct shim_err *err);
json_t *pod_json(void);
/* Stats of the pod cgroup (see api/shim/PROTOCOL.md "podStats"). */
int pod_stats(json_t **out, struct shim_err *err);
pid_t pod_infra_pid(void);
void pod_reaped(pid_t pid, int status);
/* A container create failed: when the pod's infra process is gone (its namespaces with
 * it), err says so and how (RESOURCE_EXHAUSTED for an OOM kill) and -1 is returned;
 * otherwise err is left as it is, and the result is -1 too. */
int pod_infra_gone_failure(const char *id, struct shim_err *err);
bool pod_shutdown(void);
/* New limits for the pod cgroup the shim made; all or nothing (cgroup_update). */
int pod_update(json_t *params, struct shim_err *err);

/* ---- stats/update (container.c) ----------------------------------------- */
/* New limits (linux.resources JSON, checked first) for the container's cgroup. */
int container_update(struct container *c, json_t *resources, struct shim_err *err);
int container_stats(struct container *c, json_t **out, struct shim_err *err);
int container_reopen_log(struct container *c, struct shim_err *err);

#endif
