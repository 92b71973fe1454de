/* loop.c: the epoll set every watch lives in, deferred frees, and the shim's
 * process-wide state. main.c runs the loop; the other files register with it. */
#include "core.h"

#include <limits.h>
#include <malloc.h>
#include <string.h>
#include <sys/mman.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

struct shim_state g_shim;
static int g_epfd = -1;

#define IDLE_TRIM_MS 2000

/* Objects whose watches may still be referenced by events later in the
 * current epoll batch are freed only after the batch. */
struct deferred {
  void *obj;
  void (*fn)(void *);
  struct deferred *next;
};
static struct deferred *g_deferred;

void defer_free(void *obj, void (*fn)(void *))
{
  struct deferred *d = malloc(sizeof(*d));
  if (!d) {
    fn(obj); /* out of memory: free now rather than leak */
    return;
  }
  d->obj = obj;
  d->fn = fn;
  d->next = g_deferred;
  g_deferred = d;
}

void loop_run_deferred(void)
{
  while (g_deferred) {
    struct deferred *d = g_deferred;
    g_deferred = d->next;
    d->fn(d->obj);
    free(d);
  }
}

int loop_add(struct watch *w, uint32_t events)
{
  struct epoll_event ev = { .events = events, .data.ptr = w };
  w->events = events;
  return epoll_ctl(g_epfd, EPOLL_CTL_ADD, w->fd, &ev);
}

int loop_mod(struct watch *w, uint32_t events)
{
  struct epoll_event ev = { .events = events, .data.ptr = w };
  if (w->events == events)
    return 0;
  w->events = events;
  return epoll_ctl(g_epfd, EPOLL_CTL_MOD, w->fd, &ev);
}

void loop_del(struct watch *w)
{
  if (w->fd >= 0)
    epoll_ctl(g_epfd, EPOLL_CTL_DEL, w->fd, NULL);
}

int loop_init(void)
{
  g_epfd = epoll_create1(EPOLL_CLOEXEC);
  return g_epfd < 0 ? -1 : 0;
}

/* An idle shim (the usual state: one per pod, for the pod's whole life)
 * gives back what it does not use: freed heap, and the pages of its own
 * read-only mappings (code, constants) that start-up and past requests
 * touched. They are clean file pages, so dropping them loses nothing: a later
 * request faults back what it runs. */
void trim_memory(void)
{
  struct {
    unsigned long start, len;
  } drop[32];
  size_t n = 0;
  char line[512];
  FILE *f;
  malloc_trim(0);
  f = fopen("/proc/self/maps", "re");
  if (!f)
    return;
  while (fgets(line, sizeof(line), f) && n < sizeof(drop) / sizeof(drop[0])) {
    unsigned long start, end;
    char perms[8];
    if (sscanf(line, "%lx-%lx %7s", &start, &end, perms) != 3)
      continue;
    /* Only private read-only mappings of a file: never data, heap or stack. */
    if (perms[1] != '-' || perms[3] != 'p' || !strchr(line, '/'))
      continue;
    drop[n].start = start;
    drop[n].len = end - start;
    n++;
  }
  fclose(f);
  /* Last, so the code that found them is not faulted back in afterwards. */
  for (size_t i = 0; i < n; i++)
    madvise((void *) drop[i].start, drop[i].len, MADV_DONTNEED);
}

int loop_wait(struct epoll_event *evs, int max)
{
  static bool trimmed;
  for (;;) {
    int n = epoll_wait(g_epfd, evs, max, trimmed ? -1 : IDLE_TRIM_MS);
    if (n != 0) {
      trimmed = false;
      return n;
    }
    trim_memory();
    trimmed = true;
  }
}
