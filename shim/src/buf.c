/* buf.c: a growable byte buffer consumed from the front: connection input and
 * output, stdin queued for a process, an exec's captured output. */
#include "core.h"

#include <stdlib.h>
#include <string.h>

int buf_append(struct buf *b, const void *data, size_t len)
{
  if (b->off > 0 && b->off == b->len) {
    b->off = b->len = 0;
  }
  if (b->len + len > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    char *nd;
    /* Compact before growing. */
    if (b->off > 0) {
      memmove(b->data, b->data + b->off, b->len - b->off);
      b->len -= b->off;
      b->off = 0;
    }
    while (cap < b->len + len)
      cap *= 2;
    if (cap != b->cap) {
      nd = realloc(b->data, cap);
      if (!nd)
        return -1;
      b->data = nd;
      b->cap = cap;
    }
  }
  memcpy(b->data + b->len, data, len);
  b->len += len;
  return 0;
}

void buf_consume(struct buf *b, size_t n)
{
  b->off += n;
  if (b->off >= b->len)
    b->off = b->len = 0;
}

size_t buf_pending(const struct buf *b)
{
  return b->len - b->off;
}

void buf_free(struct buf *b)
{
  free(b->data);
  memset(b, 0, sizeof(*b));
}
