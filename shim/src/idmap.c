/* idmap.c: uid and gid mappings as config.json gives them (linux.uidMappings and a
 * mount's uidMappings), parsed and checked as the kernel will take them, so a bad map is
 * refused naming its field instead of failing later with an EINVAL that names nothing. */
#include "shim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_one(json_t *m, const char *where, void *item, void *ctx, struct shim_err *err)
{
  struct spec_idmap *map = item;
  uint64_t cid, hid, size;
  bool p1, p2, p3;
  if (field_uint64(m, "containerID", where, &p1, &cid, err) < 0 || field_uint64(m, "hostID", where, &p2, &hid, err) < 0
      || field_uint64(m, "size", where, &p3, &size, err) < 0)
    return -1;
  if (!p1 || !p2 || !p3)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: containerID, hostID and size are required", where);
  /* Id 2^32-1 is the invalid id: a range must end below it. */
  if (size == 0 || cid > UINT32_MAX || hid > UINT32_MAX || size > UINT32_MAX || cid + size > UINT32_MAX || hid + size > UINT32_MAX)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: range out of 32-bit ids", where);
  *map = (struct spec_idmap) { .container_id = (uint32_t) cid, .host_id = (uint32_t) hid, .size = (uint32_t) size };
  return 0;
}

int idmap_check(const struct spec_idmap *maps, size_t n, const char *where, struct shim_err *err)
{
  if (n > IDMAP_MAX_LINES)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: %zu entries, the kernel takes at most %d", where, n, IDMAP_MAX_LINES);
  for (size_t i = 0; i < n; i++) {
    const struct spec_idmap *a = &maps[i];
    if (a->size == 0 || (uint64_t) a->container_id + a->size > UINT32_MAX || (uint64_t) a->host_id + a->size > UINT32_MAX)
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s[%zu]: range out of 32-bit ids", where, i);
    for (size_t j = 0; j < i; j++) {
      const struct spec_idmap *b = &maps[j];
      if ((uint64_t) a->container_id < (uint64_t) b->container_id + b->size
          && (uint64_t) b->container_id < (uint64_t) a->container_id + a->size)
        return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: [%zu] and [%zu] overlap in their container ids", where, j, i);
      if ((uint64_t) a->host_id < (uint64_t) b->host_id + b->size && (uint64_t) b->host_id < (uint64_t) a->host_id + a->size)
        return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: [%zu] and [%zu] overlap in their host ids", where, j, i);
    }
  }
  return 0;
}

int idmap_parse(json_t *obj, const char *key, const char *where, struct spec_idmap **out, size_t *n, struct shim_err *err)
{
  char path[128];
  json_t *arr;
  *out = NULL;
  *n = 0;
  if (field_array(obj, key, where, &arr, err) < 0)
    return -1;
  snprintf(path, sizeof(path), "%s.%s", where, key);
  if (json_array_size(arr) > IDMAP_MAX_LINES)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: %zu entries, the kernel takes at most %d", path, json_array_size(arr),
                     IDMAP_MAX_LINES);
  if (field_objects(arr, path, sizeof(**out), (void **) out, n, parse_one, NULL, err) < 0)
    return -1;
  return idmap_check(*out, *n, path, err);
}

bool idmap_equal(const struct spec_idmap *a, size_t na, const struct spec_idmap *b, size_t nb)
{
  return na == nb && (na == 0 || memcmp(a, b, na * sizeof(*a)) == 0);
}
