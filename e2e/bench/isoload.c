// isoload: the programs of the isolation benchmark (`npm run bench -- isolation`), one
// static binary the benchmark builds into its test image: the victim's latency probes, the
// host's HTTP latency sampler, and each noisy neighbour. Every neighbour bounds itself
// (memory, processes, file size, and a deadline after which it exits), so that one run
// "without limits" still cannot take a shared node down, even if the benchmark dies.
//
//   isoload victim PORT                 probes; GET /samples hands over what they measured
//   isoload client IP PORT HZ SECONDS   HTTP latency from the host, a line per request
//   isoload cpu SECONDS                 a busy loop on every CPU
//   isoload mem SECONDS MIB             workers allocating MIB each, one at a time, respawned when killed
//   isoload fork SECONDS CAP            a fork bomb held at CAP live processes
//   isoload disk SECONDS MIB            4 threads writing 4 KiB + fsync into a MIB file
//   isoload net SECONDS IP PORT         UDP flood to IP:PORT from every CPU
//   isoload cache SECONDS MIB           writes a MIB file, then reads it again and again
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NS 1000000000ull
#define MIB (1024ull * 1024ull)

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t t) {
  struct timespec ts = {.tv_sec = (time_t)(t / NS), .tv_nsec = (long)(t % NS)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
  }
}

static void fail(const char *what) {
  fprintf(stderr, "isoload: %s: %s\n", what, strerror(errno));
  exit(1);
}

static long arg_long(const char *s, const char *name, long min, long max) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *end || v < min || v > max) {
    fprintf(stderr, "isoload: %s: expected an integer in [%ld, %ld], got \"%s\"\n", name, min, max, s);
    exit(2);
  }
  return v;
}

static void start_threads(int n, void *(*fn)(void *), void *arg) {
  for (int i = 0; i < n; i++) {
    pthread_t t;
    if (pthread_create(&t, NULL, fn, arg)) fail("pthread_create");
  }
}

static int cpus(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

/* ---- victim: three probes and an HTTP server ---- */

// What the probes measured since the last GET /samples: kind 's' (a 1 ms wake-up's
// lateness), 'w' (one round of the allocation and file work); when each was due and the
// time it took, in ns, CLOCK_MONOTONIC
// (the benchmark's clock too: the namespaces of a container do not change it).
struct sample {
  uint64_t t;
  uint64_t ns;
  char kind;
};
#define RING (1u << 18)
static struct sample ring[RING];
static size_t ring_start, ring_len;
static pthread_mutex_t ring_lock = PTHREAD_MUTEX_INITIALIZER;

static void record(char kind, uint64_t t, uint64_t ns) {
  pthread_mutex_lock(&ring_lock);
  ring[(ring_start + ring_len) % RING] = (struct sample){.t = t, .ns = ns, .kind = kind};
  if (ring_len < RING)
    ring_len++;
  else
    ring_start = (ring_start + 1) % RING; // nobody fetched for a long time: the oldest go
  pthread_mutex_unlock(&ring_lock);
}

// A wake-up is due every 1 ms; each records how late it came. Lateness counts from when a
// wake-up was due, so a thread kept off the CPU for 50 ms records the 50 it missed (a
// probe that counted only its own sleeps would record one late sample and fall silent).
// More than 1 s behind, it starts again from now.
static void *sched_probe(void *arg) {
  (void)arg;
  uint64_t due = now_ns();
  for (;;) {
    due += 1000000;
    sleep_until(due);
    uint64_t late = now_ns() - due;
    record('s', due, late);
    if (late > NS) due = now_ns();
  }
  return NULL;
}

#define WORK_PERIOD_NS (50ull * 1000000ull)
#define WORK_ALLOC (1 * MIB)
#define WORK_WRITE (16 * 1024)
#define WORK_WRITE_FILE (4 * MIB)
#define WORK_READ (64 * 1024)
#define WORK_READ_FILE (16 * MIB)

// Every 50 ms: map, touch and unmap 1 MiB, write 16 KiB and fdatasync it, read 64 KiB of a
// file the page cache holds; the sample is from when the round was due to its end. Rounds
// missed while one ran late are dropped, so that the victim does not carry a backlog into
// the next window.
static void *work_probe(void *arg) {
  (void)arg;
  static char buf[WORK_READ];
  int wfd = open("/tmp/victim-write", O_WRONLY | O_CREAT | O_TRUNC, 0600);
  int rfd = open("/tmp/victim-read", O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (wfd < 0 || rfd < 0) fail("open /tmp/victim-*");
  memset(buf, 'v', sizeof buf);
  for (size_t off = 0; off < WORK_READ_FILE; off += sizeof buf)
    if (pwrite(rfd, buf, sizeof buf, (off_t)off) != (ssize_t)sizeof buf) fail("write /tmp/victim-read");
  unsigned seed = 1;
  uint64_t due = now_ns();
  for (uint64_t i = 0;; i++) {
    due += WORK_PERIOD_NS;
    sleep_until(due);
    char *p = mmap(NULL, WORK_ALLOC, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) fail("mmap");
    memset(p, (int)i, WORK_ALLOC);
    munmap(p, WORK_ALLOC);
    if (pwrite(wfd, buf, WORK_WRITE, (off_t)((i * WORK_WRITE) % WORK_WRITE_FILE)) != WORK_WRITE) fail("write /tmp/victim-write");
    if (fdatasync(wfd)) fail("fdatasync");
    off_t at = (off_t)(rand_r(&seed) % (WORK_READ_FILE / WORK_READ)) * WORK_READ;
    if (pread(rfd, buf, WORK_READ, at) != WORK_READ) fail("read /tmp/victim-read");
    uint64_t t1 = now_ns();
    record('w', due, t1 - due);
    if (t1 > due + WORK_PERIOD_NS) due = t1;
  }
  return NULL;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static int reply(int fd, const char *body, size_t len) {
  char head[128];
  int h = snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n\r\n", len);
  return write_all(fd, head, (size_t)h) || write_all(fd, body, len) ? -1 : 0;
}

static int reply_samples(int fd) {
  pthread_mutex_lock(&ring_lock);
  size_t n = ring_len, start = ring_start;
  ring_len = 0;
  ring_start = (start + n) % RING;
  char *text = malloc(n * 48 + 1);
  if (!text) {
    pthread_mutex_unlock(&ring_lock);
    return -1;
  }
  size_t len = 0;
  for (size_t i = 0; i < n; i++) {
    struct sample *s = &ring[(start + i) % RING];
    len += (size_t)sprintf(text + len, "%c %llu %llu\n", s->kind, (unsigned long long)s->t, (unsigned long long)s->ns);
  }
  pthread_mutex_unlock(&ring_lock);
  int r = reply(fd, text, len);
  free(text);
  return r;
}

#define MAX_CONNS 16
struct conn {
  int fd;
  size_t len;
  char buf[4096];
};

// One thread, poll(2): the host's sampler keeps one connection open and the benchmark
// opens another for /samples now and then. GET requests without bodies only.
static void serve(int port) {
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_ANY)};
  if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 64)) fail("listen");
  static struct conn conns[MAX_CONNS];
  for (int i = 0; i < MAX_CONNS; i++) conns[i].fd = -1;
  for (;;) {
    struct pollfd pfd[MAX_CONNS + 1];
    int idx[MAX_CONNS + 1], n = 0;
    pfd[n] = (struct pollfd){.fd = ls, .events = POLLIN};
    idx[n++] = -1;
    for (int i = 0; i < MAX_CONNS; i++)
      if (conns[i].fd >= 0) {
        pfd[n] = (struct pollfd){.fd = conns[i].fd, .events = POLLIN};
        idx[n++] = i;
      }
    if (poll(pfd, (nfds_t)n, -1) < 0) {
      if (errno == EINTR) continue;
      fail("poll");
    }
    for (int k = 0; k < n; k++) {
      if (!pfd[k].revents) continue;
      if (idx[k] < 0) {
        int fd = accept(ls, NULL, NULL);
        if (fd < 0) continue;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        int slot = -1;
        for (int i = 0; i < MAX_CONNS && slot < 0; i++)
          if (conns[i].fd < 0) slot = i;
        if (slot < 0) {
          close(fd);
          continue;
        }
        conns[slot].fd = fd;
        conns[slot].len = 0;
        continue;
      }
      struct conn *c = &conns[idx[k]];
      ssize_t r = read(c->fd, c->buf + c->len, sizeof c->buf - c->len - 1);
      if (r <= 0) {
        close(c->fd);
        c->fd = -1;
        continue;
      }
      c->len += (size_t)r;
      c->buf[c->len] = 0;
      char *end;
      while ((end = strstr(c->buf, "\r\n\r\n"))) {
        int err = strncmp(c->buf, "GET /samples", 12) == 0 ? reply_samples(c->fd) : reply(c->fd, "ok\n", 3);
        size_t used = (size_t)(end + 4 - c->buf);
        memmove(c->buf, end + 4, c->len - used + 1);
        c->len -= used;
        if (err) {
          close(c->fd);
          c->fd = -1;
          break;
        }
      }
      if (c->fd >= 0 && c->len == sizeof c->buf - 1) { // no end of headers in 4 KiB: not ours
        close(c->fd);
        c->fd = -1;
      }
    }
  }
}

static int victim(int argc, char **argv) {
  if (argc != 1) return 2;
  int port = (int)arg_long(argv[0], "PORT", 1, 65535);
  signal(SIGPIPE, SIG_IGN);
  start_threads(1, sched_probe, NULL);
  start_threads(1, work_probe, NULL);
  serve(port);
  return 0;
}

/* ---- client: the host's HTTP sampler ---- */

static void ipv4(const char *s, struct in_addr *a) {
  if (inet_pton(AF_INET, s, a) != 1) {
    fprintf(stderr, "isoload: not an IPv4 address: %s\n", s);
    exit(2);
  }
}

static int dial(const char *ip, int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) fail("socket");
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  ipv4(ip, &a.sin_addr);
  struct timeval tv = {.tv_sec = 5};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
    close(fd);
    return -1;
  }
  return fd;
}

// One GET / on fd and its whole answer ("ok\n"); -1 on any failure.
static int get_once(int fd) {
  static const char req[] = "GET / HTTP/1.1\r\nHost: victim\r\n\r\n";
  if (write_all(fd, req, sizeof req - 1)) return -1;
  char buf[512];
  size_t len = 0;
  for (;;) {
    ssize_t r = read(fd, buf + len, sizeof buf - len - 1);
    if (r <= 0) return -1;
    len += (size_t)r;
    buf[len] = 0;
    char *end = strstr(buf, "\r\n\r\n");
    const char *cl = strstr(buf, "Content-Length: ");
    if (end && cl && len >= (size_t)(end + 4 - buf) + (size_t)atol(cl + 16)) return 0;
    if (len == sizeof buf - 1) return -1;
  }
}

// Requests are due HZ times a second; a request's latency counts from when it was due, not
// from when it went out, so a stall shows in every request it delayed (coordinated
// omission). A failed request is retried on a new connection and counts until it succeeds.
static int client(int argc, char **argv) {
  if (argc != 4) return 2;
  const char *ip = argv[0];
  int port = (int)arg_long(argv[1], "PORT", 1, 65535);
  long hz = arg_long(argv[2], "HZ", 1, 10000);
  long seconds = arg_long(argv[3], "SECONDS", 1, 3600);
  signal(SIGPIPE, SIG_IGN);
  setvbuf(stdout, NULL, _IOFBF, 1 << 16);
  uint64_t interval = NS / (uint64_t)hz, start = now_ns(), end = start + (uint64_t)seconds * NS;
  int fd = dial(ip, port);
  unsigned failures = 0;
  for (uint64_t due = start; due < end; due += interval) {
    sleep_until(due);
    while (fd < 0 || get_once(fd)) {
      if (fd >= 0) close(fd);
      if (++failures > 100 || now_ns() > end + 30 * NS) {
        fprintf(stderr, "isoload: %s:%d does not answer\n", ip, port);
        return 1;
      }
      usleep(10000);
      fd = dial(ip, port);
    }
    printf("%llu %llu\n", (unsigned long long)due, (unsigned long long)(now_ns() - due));
  }
  fflush(stdout);
  return 0;
}

/* ---- the neighbours ---- */

static void *spin(void *arg) {
  (void)arg;
  volatile uint64_t x = 0;
  for (;;) x++;
  return NULL;
}

static int cpu_hog(int argc, char **argv) {
  (void)argv;
  if (argc != 0) return 2;
  start_threads(cpus() - 1, spin, NULL);
  spin(NULL);
  return 0;
}

// Workers one at a time, each mapping and touching up to MIB, then touching it again and
// again; a worker the OOM killer takes is replaced after 10 ms. At most MIB are ever
// allocated, limit or none.
static int mem_hog(int argc, char **argv) {
  if (argc != 1) return 2;
  uint64_t total = (uint64_t)arg_long(argv[0], "MIB", 16, 4096) * MIB;
  const uint64_t chunk = 16 * MIB;
  for (;;) {
    pid_t p = fork();
    if (p < 0) fail("fork");
    if (p == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      char *chunks[4096 / 16];
      size_t n = 0;
      for (uint64_t got = 0; got < total; got += chunk) {
        chunks[n] = mmap(NULL, chunk, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (chunks[n] == MAP_FAILED) fail("mmap");
        memset(chunks[n++], 1, chunk);
      }
      for (unsigned round = 2;; round++)
        for (size_t i = 0; i < n; i++) memset(chunks[i], (int)round, chunk);
    }
    while (waitpid(p, NULL, 0) < 0 && errno == EINTR) {
    }
    usleep(10000);
  }
  return 0;
}

// A fork bomb held at CAP live processes: every process forks as fast as it can; one
// that finds CAP reached exits, so the bomb churns at the cap (a pids limit below CAP
// refuses its forks instead). SIGCHLD is ignored so that no zombie outlives its count.
// The leader's process group is killed at the deadline.
static atomic_int *live;

static void bomb(int cap) {
  for (;;) {
    if (atomic_fetch_add(live, 1) >= cap) {
      atomic_fetch_sub(live, 2); // the reservation, and this process
      _exit(0);
    }
    pid_t p = fork();
    if (p < 0) {
      atomic_fetch_sub(live, 1);
      sched_yield();
    }
  }
}

static int fork_bomb(int argc, char **argv, long seconds) {
  if (argc != 1) return 2;
  int cap = (int)arg_long(argv[0], "CAP", 2, 10000);
  live = mmap(NULL, sizeof *live, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (live == MAP_FAILED) fail("mmap");
  signal(SIGCHLD, SIG_IGN);
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  atomic_store(live, 1);
  pid_t leader = fork();
  if (leader < 0) fail("fork");
  if (leader == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    bomb(cap);
  }
  setpgid(leader, leader);
  sleep_until(now_ns() + (uint64_t)seconds * NS);
  kill(-leader, SIGKILL);
  return 0;
}

#define DISK_BLOCK 4096

static uint64_t disk_blocks;

static void *disk_writer(void *arg) {
  int fd = *(int *)arg;
  static char block[DISK_BLOCK];
  memset(block, 'd', sizeof block);
  unsigned seed = (unsigned)(uintptr_t)&seed;
  for (;;) {
    off_t at = (off_t)(rand_r(&seed) % disk_blocks) * DISK_BLOCK;
    if (pwrite(fd, block, DISK_BLOCK, at) != DISK_BLOCK) fail("write /tmp/disk-hog");
    if (fsync(fd)) fail("fsync");
  }
  return NULL;
}

static int disk_hog(int argc, char **argv) {
  if (argc != 1) return 2;
  disk_blocks = (uint64_t)arg_long(argv[0], "MIB", 1, 4096) * MIB / DISK_BLOCK;
  static int fd;
  fd = open("/tmp/disk-hog", O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) fail("open /tmp/disk-hog");
  start_threads(3, disk_writer, &fd);
  disk_writer(&fd);
  return 0;
}

static struct sockaddr_in flood_to;

static void *flood(void *arg) {
  (void)arg;
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&flood_to, sizeof flood_to)) fail("udp socket");
  static char payload[1400];
  for (;;) (void)send(fd, payload, sizeof payload, 0); // refusals (ICMP) are expected
  return NULL;
}

static int net_flood(int argc, char **argv) {
  if (argc != 2) return 2;
  flood_to = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)arg_long(argv[1], "PORT", 1, 65535))};
  ipv4(argv[0], &flood_to.sin_addr);
  start_threads(cpus() - 1, flood, NULL);
  flood(NULL);
  return 0;
}

static int cache_thrash(int argc, char **argv) {
  if (argc != 1) return 2;
  uint64_t size = (uint64_t)arg_long(argv[0], "MIB", 1, 8192) * MIB;
  int fd = open("/tmp/cache-hog", O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) fail("open /tmp/cache-hog");
  char *buf = malloc(MIB);
  if (!buf) fail("malloc");
  memset(buf, 'c', MIB);
  for (uint64_t off = 0; off < size; off += MIB)
    if (pwrite(fd, buf, MIB, (off_t)off) != (ssize_t)MIB) fail("write /tmp/cache-hog");
  for (;;)
    for (uint64_t off = 0; off < size; off += MIB)
      if (pread(fd, buf, MIB, (off_t)off) < 0) fail("read /tmp/cache-hog");
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "victim") == 0) return victim(argc - 2, argv + 2);
  if (argc >= 2 && strcmp(argv[1], "client") == 0) return client(argc - 2, argv + 2);
  if (argc < 3) {
    fprintf(stderr, "usage: isoload victim PORT | client IP PORT HZ SECONDS | cpu|mem|fork|disk|net|cache SECONDS [ARGS]\n");
    return 2;
  }
  const char *mode = argv[1];
  long seconds = arg_long(argv[2], "SECONDS", 1, 3600);
  int n = argc - 3;
  char **rest = argv + 3;
  // The deadline: SIGALRM's default action ends the process (workers die with it, by
  // PDEATHSIG); the fork bomb's leader waits it out itself.
  if (strcmp(mode, "fork") != 0) alarm((unsigned)seconds);
  int r = 2;
  if (strcmp(mode, "cpu") == 0) r = cpu_hog(n, rest);
  else if (strcmp(mode, "mem") == 0) r = mem_hog(n, rest);
  else if (strcmp(mode, "fork") == 0) r = fork_bomb(n, rest, seconds);
  else if (strcmp(mode, "disk") == 0) r = disk_hog(n, rest);
  else if (strcmp(mode, "net") == 0) r = net_flood(n, rest);
  else if (strcmp(mode, "cache") == 0) r = cache_thrash(n, rest);
  if (r == 2) fprintf(stderr, "isoload: %s: wrong mode or arguments\n", mode);
  return r;
}
