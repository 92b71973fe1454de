/* json_field.c: typed fields of a JSON object, for the OCI spec and the protocol's
 * params: an absent or null field reads as not there; one of the wrong type fails with
 * INVALID_ARGUMENT naming its path ("<where>.<key>: must be ..."). */
#include "shim.h"

#include <stdio.h>
#include <stdlib.h>

static int type_error(struct shim_err *err, const char *where, const char *key, const char *want)
{
  return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.%s: must be %s", where, key, want);
}

bool field_present(json_t *obj, const char *key)
{
  json_t *v = obj ? json_object_get(obj, key) : NULL;
  return v && !json_is_null(v);
}

int field_string(json_t *obj, const char *key, const char *where, const char **out, struct shim_err *err)
{
  json_t *v = obj ? json_object_get(obj, key) : NULL;
  *out = NULL;
  if (!v || json_is_null(v))
    return 0;
  if (!json_is_string(v))
    return type_error(err, where, key, "a string");
  *out = json_string_value(v);
  return 0;
}

int field_bool(json_t *obj, const char *key, const char *where, bool *out, struct shim_err *err)
{
  json_t *v = obj ? json_object_get(obj, key) : NULL;
  *out = false;
  if (!v || json_is_null(v))
    return 0;
  if (!json_is_boolean(v))
    return type_error(err, where, key, "a boolean");
  *out = json_is_true(v);
  return 0;
}

int field_int64(json_t *obj, const char *key, const char *where, bool *present, int64_t *out, struct shim_err *err)
{
  json_t *v = obj ? json_object_get(obj, key) : NULL;
  if (present)
    *present = false;
  *out = 0;
  if (!v || json_is_null(v))
    return 0;
  if (!json_is_integer(v))
    return type_error(err, where, key, "an integer");
  *out = (int64_t) json_integer_value(v);
  if (present)
    *present = true;
  return 0;
}

int field_uint64(json_t *obj, const char *key, const char *where, bool *present, uint64_t *out, struct shim_err *err)
{
  json_t *v = obj ? json_object_get(obj, key) : NULL;
  if (present)
    *present = false;
  *out = 0;
  if (!v || json_is_null(v))
    return 0;
  /* jansson holds integers as signed 64-bit: values above INT64_MAX (e.g. a
   * memory limit of 2^64-1) arrive as reals and are accepted as "unlimited". */
  if (json_is_real(v) && json_real_value(v) >= 9.2e18) {
    *out = UINT64_MAX;
  } else if (!json_is_integer(v) || json_integer_value(v) < 0) {
    return type_error(err, where, key, "a non-negative integer");
  } else {
    *out = (uint64_t) json_integer_value(v);
  }
  if (present)
    *present = true;
  return 0;
}

int field_object(json_t *obj, const char *key, const char *where, json_t **out, struct shim_err *err)
{
  json_t *v = obj ? json_object_get(obj, key) : NULL;
  *out = NULL;
  if (!v || json_is_null(v))
    return 0;
  if (!json_is_object(v))
    return type_error(err, where, key, "an object");
  *out = v;
  return 0;
}

int field_array(json_t *obj, const char *key, const char *where, json_t **out, struct shim_err *err)
{
  json_t *v = obj ? json_object_get(obj, key) : NULL;
  *out = NULL;
  if (!v || json_is_null(v))
    return 0;
  if (!json_is_array(v))
    return type_error(err, where, key, "an array");
  *out = v;
  return 0;
}

int json_string_list(json_t *arr, const char *where, const char *key, char ***out, struct shim_err *err)
{
  size_t i;
  json_t *v;
  cleanup_free char **list = calloc(json_array_size(arr) + 1, sizeof(char *));
  if (!list)
    return shim_fail_errno(err, ENOMEM, "%s.%s", where, key);
  json_array_foreach (arr, i, v) {
    if (!json_is_string(v))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s.%s[%zu]: must be a string", where, key, i);
    list[i] = (char *) json_string_value(v);
  }
  *out = list;
  list = NULL;
  return 0;
}

int field_objects(json_t *arr, const char *where, size_t item_size, void **out, size_t *n,
                  int (*parse_one)(json_t *obj, const char *where, void *item, void *ctx, struct shim_err *err), void *ctx,
                  struct shim_err *err)
{
  json_t *v;
  size_t i;
  char *items = calloc(json_array_size(arr) + 1, item_size);
  *out = items;
  *n = 0;
  if (!items)
    return shim_fail_errno(err, ENOMEM, "%s", where);
  json_array_foreach (arr, i, v) {
    char at[160];
    snprintf(at, sizeof(at), "%s[%zu]", where, i);
    if (!json_is_object(v))
      return shim_fail(err, SHIM_INVALID_ARGUMENT, "%s: must be an object", at);
    (*n)++;
    if (parse_one(v, at, items + i * item_size, ctx, err) < 0)
      return -1;
  }
  return 0;
}
