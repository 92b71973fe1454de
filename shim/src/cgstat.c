/* cgstat.c: parsers of the cgroup files behind the IO and pressure stats:
 * cgroup2 *.pressure (PSI) and io.stat, and v1 blkio.throttle.io_service_bytes /
 * io_serviced. Pure functions of the file text, so they are tested on fixtures. */
#include "shim.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* One "some"/"full" line of a pressure file, as the kernel writes it:
 * "some avg10=0.12 avg60=0.05 avg300=0.01 total=123456". */
struct psi_line {
  double avg10, avg60, avg300;
  uint64_t total_us;
};

static bool parse_double(const char *s, size_t len, double *out)
{
  char buf[64], *end;
  if (len == 0 || len >= sizeof(buf))
    return false;
  memcpy(buf, s, len);
  buf[len] = '\0';
  *out = strtod(buf, &end);
  return *end == '\0' && *out >= 0;
}

static bool parse_u64(const char *s, size_t len, uint64_t *out)
{
  char buf[32], *end;
  if (len == 0 || len >= sizeof(buf) || s[0] < '0' || s[0] > '9')
    return false;
  memcpy(buf, s, len);
  buf[len] = '\0';
  errno = 0;
  *out = strtoull(buf, &end, 10);
  return *end == '\0' && errno == 0;
}

/* The fields after "some "/"full " up to the end of the line; false unless all four
 * are there and well formed (a partial line would report made-up zeros). */
static bool parse_psi_fields(const char *p, const char *eol, struct psi_line *out)
{
  unsigned seen = 0;
  while (p < eol) {
    size_t len = strcspn(p, " \n");
    const char *eq;
    if (len > (size_t) (eol - p))
      len = (size_t) (eol - p);
    eq = memchr(p, '=', len);
    if (eq) {
      size_t klen = (size_t) (eq - p), vlen = len - klen - 1;
      const char *v = eq + 1;
      if (klen == 5 && strncmp(p, "avg10", 5) == 0 && parse_double(v, vlen, &out->avg10))
        seen |= 1;
      else if (klen == 5 && strncmp(p, "avg60", 5) == 0 && parse_double(v, vlen, &out->avg60))
        seen |= 2;
      else if (klen == 6 && strncmp(p, "avg300", 6) == 0 && parse_double(v, vlen, &out->avg300))
        seen |= 4;
      else if (klen == 5 && strncmp(p, "total", 5) == 0 && parse_u64(v, vlen, &out->total_us))
        seen |= 8;
    }
    p += len;
    p += strspn(p, " ");
  }
  return seen == 15;
}

static json_t *psi_line_json(const struct psi_line *l)
{
  return json_pack("{s:f,s:f,s:f,s:I}", "avg10", l->avg10, "avg60", l->avg60, "avg300", l->avg300, "totalUs",
                   (json_int_t) l->total_us);
}

json_t *cgstat_pressure_json(const char *text)
{
  struct psi_line some, full;
  bool has_some = false, has_full = false;
  for (const char *line = text; line && *line;) {
    const char *eol = strchr(line, '\n');
    if (!eol)
      eol = line + strlen(line);
    if (strncmp(line, "some ", 5) == 0)
      has_some = parse_psi_fields(line + 5, eol, &some);
    else if (strncmp(line, "full ", 5) == 0)
      has_full = parse_psi_fields(line + 5, eol, &full);
    line = *eol ? eol + 1 : NULL;
  }
  if (!has_some)
    return NULL;
  return json_pack("{s:o,s:o}", "some", psi_line_json(&some), "full", has_full ? psi_line_json(&full) : json_null());
}

/* The entry of devices for major:minor, added (with zero counters) when missing. */
static json_t *device_entry(json_t *devices, unsigned long major, unsigned long minor)
{
  size_t i;
  json_t *d;
  json_array_foreach (devices, i, d)
    if ((unsigned long) json_integer_value(json_object_get(d, "major")) == major
        && (unsigned long) json_integer_value(json_object_get(d, "minor")) == minor)
      return d;
  d = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "major", (json_int_t) major, "minor", (json_int_t) minor, "readBytes",
                (json_int_t) 0, "writeBytes", (json_int_t) 0, "reads", (json_int_t) 0, "writes", (json_int_t) 0);
  json_array_append_new(devices, d);
  return d;
}

/* "MAJ:MIN" at the start of s; returns the length consumed or 0. */
static size_t parse_devno(const char *s, unsigned long *major, unsigned long *minor)
{
  char *end;
  if (*s < '0' || *s > '9')
    return 0;
  *major = strtoul(s, &end, 10);
  if (*end != ':' || end[1] < '0' || end[1] > '9')
    return 0;
  *minor = strtoul(end + 1, &end, 10);
  if (*end != ' ')
    return 0;
  return (size_t) (end - s);
}

json_t *cgstat_io_stat_json(const char *text)
{
  static const char *const keys[] = { "rbytes", "wbytes", "rios", "wios" };
  static const char *const fields[] = { "readBytes", "writeBytes", "reads", "writes" };
  json_t *devices = json_array();
  for (const char *line = text; line && *line;) {
    const char *eol = strchr(line, '\n'), *p;
    unsigned long major, minor;
    uint64_t vals[4];
    unsigned seen = 0;
    size_t n;
    if (!eol)
      eol = line + strlen(line);
    n = parse_devno(line, &major, &minor);
    /* "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0" (and cost.* keys
     * where io.cost runs): a line without the four counters is skipped. */
    for (p = line + n; n && p < eol;) {
      size_t len = strcspn(p, " \n");
      const char *eq;
      if (len > (size_t) (eol - p))
        len = (size_t) (eol - p);
      eq = memchr(p, '=', len);
      for (size_t k = 0; eq && k < 4; k++)
        if ((size_t) (eq - p) == strlen(keys[k]) && strncmp(p, keys[k], (size_t) (eq - p)) == 0
            && parse_u64(eq + 1, len - (size_t) (eq - p) - 1, &vals[k]))
          seen |= 1u << k;
      p += len;
      p += strspn(p, " ");
    }
    if (seen == 15) {
      json_t *d = device_entry(devices, major, minor);
      for (size_t k = 0; k < 4; k++)
        json_object_set_new(d, fields[k], json_integer((json_int_t) vals[k]));
    }
    line = *eol ? eol + 1 : NULL;
  }
  return devices;
}

/* Lines "MAJ:MIN Read N" and "MAJ:MIN Write N" of a blkio file into read_field and
 * write_field of each device (Sync, Async, Discard, Total and the last "Total N"
 * line are not what cAdvisor reports). */
static void blkio_merge(json_t *devices, const char *text, const char *read_field, const char *write_field)
{
  for (const char *line = text; line && *line;) {
    const char *eol = strchr(line, '\n'), *op, *num;
    unsigned long major, minor;
    uint64_t v;
    size_t n;
    if (!eol)
      eol = line + strlen(line);
    n = parse_devno(line, &major, &minor);
    op = line + n + 1;
    num = n ? memchr(op, ' ', (size_t) (eol - op)) : NULL;
    if (num && parse_u64(num + 1, (size_t) (eol - num - 1), &v)) {
      size_t oplen = (size_t) (num - op);
      const char *field = oplen == 4 && strncmp(op, "Read", 4) == 0 ? read_field
                          : oplen == 5 && strncmp(op, "Write", 5) == 0 ? write_field
                                                                        : NULL;
      if (field)
        json_object_set_new(device_entry(devices, major, minor), field, json_integer((json_int_t) v));
    }
    line = *eol ? eol + 1 : NULL;
  }
}

json_t *cgstat_blkio_json(const char *bytes, const char *ops)
{
  json_t *devices = json_array();
  if (bytes)
    blkio_merge(devices, bytes, "readBytes", "writeBytes");
  if (ops)
    blkio_merge(devices, ops, "reads", "writes");
  return devices;
}
