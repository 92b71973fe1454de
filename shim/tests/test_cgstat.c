/* test_cgstat.c: the parsers of *.pressure, io.stat and v1 blkio files on fixture
 * texts as kernels write them, and on malformed, partial and empty ones. */
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <string.h>


static bool near(json_t *v, double want)
{
  return json_is_real(v) && fabs(json_real_value(v) - want) < 1e-9;
}

/* p is {"avg10", "avg60", "avg300", "totalUs"} with these values. */
static bool psi_is(json_t *p, double a10, double a60, double a300, json_int_t total)
{
  return json_is_object(p) && near(json_object_get(p, "avg10"), a10) && near(json_object_get(p, "avg60"), a60)
         && near(json_object_get(p, "avg300"), a300) && json_integer_value(json_object_get(p, "totalUs")) == total
         && json_object_size(p) == 4;
}

/* The device major:minor of an io array, or NULL. */
static json_t *dev(json_t *devices, int major, int minor)
{
  size_t i;
  json_t *d;
  json_array_foreach (devices, i, d)
    if (json_integer_value(json_object_get(d, "major")) == major && json_integer_value(json_object_get(d, "minor")) == minor)
      return d;
  return NULL;
}

static bool counters_are(json_t *d, json_int_t rb, json_int_t wb, json_int_t r, json_int_t w)
{
  return d && json_integer_value(json_object_get(d, "readBytes")) == rb && json_integer_value(json_object_get(d, "writeBytes")) == wb
         && json_integer_value(json_object_get(d, "reads")) == r && json_integer_value(json_object_get(d, "writes")) == w;
}

static void pressure(void)
{
  json_t *p;

  p = cgstat_pressure_json("some avg10=1.50 avg60=0.25 avg300=0.01 total=123456\n"
                           "full avg10=0.50 avg60=0.00 avg300=0.00 total=7890\n");
  check(p && psi_is(json_object_get(p, "some"), 1.5, 0.25, 0.01, 123456), "pressure: the some line");
  check(p && psi_is(json_object_get(p, "full"), 0.5, 0, 0, 7890), "pressure: the full line");
  json_decref(p);

  p = cgstat_pressure_json("some avg10=0.00 avg60=0.00 avg300=0.00 total=42\n");
  check(p && psi_is(json_object_get(p, "some"), 0, 0, 0, 42) && json_is_null(json_object_get(p, "full")),
        "pressure: a some-only file (cpu before Linux 5.13) has full null");
  json_decref(p);

  p = cgstat_pressure_json("full avg10=0.00 avg60=0.00 avg300=0.00 total=1\n");
  check(!p, "pressure: without a some line there is nothing to report");

  p = cgstat_pressure_json("");
  check(!p, "pressure: an empty file gives nothing");

  p = cgstat_pressure_json("some avg10=0.00 avg60=0.00 total=5\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=1\n");
  check(!p, "pressure: a some line missing avg300 is not taken for zeros");

  p = cgstat_pressure_json("some avg10=x avg60=0.00 avg300=0.00 total=5\n");
  check(!p, "pressure: a non-numeric average is refused");

  p = cgstat_pressure_json("some avg10=0.10 avg60=0.20 avg300=0.30 total=-5\n");
  check(!p, "pressure: a negative total is refused");

  p = cgstat_pressure_json("some avg10=0.10 avg60=0.20 avg300=0.30 total=99\nfull avg10=0.1 total=3\n");
  check(p && psi_is(json_object_get(p, "some"), 0.1, 0.2, 0.3, 99) && json_is_null(json_object_get(p, "full")),
        "pressure: a malformed full line leaves full null and some intact");
  json_decref(p);

  p = cgstat_pressure_json("some total=1234567890123 avg300=0.30 avg60=0.20 avg10=0.10 future=1");
  check(p && json_integer_value(json_object_get(json_object_get(p, "some"), "totalUs")) == 1234567890123LL
            && near(json_object_get(json_object_get(p, "some"), "avg300"), 0.3),
        "pressure: keys in any order, unknown keys ignored, no final newline");
  json_decref(p);
}

static void io_stat(void)
{
  json_t *d;

  d = cgstat_io_stat_json("254:0 rbytes=4096 wbytes=1048576 rios=1 wios=16 dbytes=0 dios=0\n"
                          "7:0 rbytes=0 wbytes=512 rios=0 wios=1 dbytes=0 dios=0 cost.vrate=100.00 cost.usage=12\n");
  check(json_array_size(d) == 2 && counters_are(dev(d, 254, 0), 4096, 1048576, 1, 16), "io.stat: bytes and ios of a device");
  check(counters_are(dev(d, 7, 0), 0, 512, 0, 1), "io.stat: io.cost keys after the counters are skipped");
  json_decref(d);

  d = cgstat_io_stat_json("");
  check(json_is_array(d) && json_array_size(d) == 0, "io.stat: no IO yet is an empty list");
  json_decref(d);

  d = cgstat_io_stat_json("8:0 rbytes=1 wbytes=2 rios=3\n"
                          "garbage line\n"
                          "8:16 rbytes=x wbytes=2 rios=3 wios=4\n"
                          "8:32rbytes=1 wbytes=2 rios=3 wios=4\n"
                          "8:48 rbytes=1 wbytes=2 rios=3 wios=4");
  check(json_array_size(d) == 1 && counters_are(dev(d, 8, 48), 1, 2, 3, 4),
        "io.stat: lines missing a counter, with a bad number or a bad device are skipped");
  json_decref(d);
}

static void blkio(void)
{
  json_t *d;
  const char *bytes = "7:0 Read 8192\n7:0 Write 1048576\n7:0 Sync 1048576\n7:0 Async 8192\n7:0 Discard 0\n7:0 Total 1056768\n"
                      "254:0 Read 0\n254:0 Write 4096\n254:0 Sync 0\n254:0 Async 4096\n254:0 Discard 0\n254:0 Total 4096\n"
                      "Total 1060864\n";
  const char *ops = "7:0 Read 2\n7:0 Write 16\n7:0 Sync 16\n7:0 Async 2\n7:0 Discard 0\n7:0 Total 18\n"
                    "254:0 Read 0\n254:0 Write 1\n254:0 Sync 0\n254:0 Async 1\n254:0 Discard 0\n254:0 Total 1\nTotal 19\n";

  d = cgstat_blkio_json(bytes, ops);
  check(json_array_size(d) == 2 && counters_are(dev(d, 7, 0), 8192, 1048576, 2, 16), "blkio: Read and Write of bytes and ops merged per device");
  check(counters_are(dev(d, 254, 0), 0, 4096, 0, 1), "blkio: a second device");
  json_decref(d);

  d = cgstat_blkio_json("Total 0\n", "Total 0\n");
  check(json_is_array(d) && json_array_size(d) == 0, "blkio: only the Total line (no device counted) is an empty list");
  json_decref(d);

  d = cgstat_blkio_json(bytes, NULL);
  check(counters_are(dev(d, 7, 0), 8192, 1048576, 0, 0), "blkio: without io_serviced the operation counts stay 0");
  json_decref(d);

  d = cgstat_blkio_json("7:0 Read\n7:0 Write x\nx:0 Read 5\n7:1 Write 10\n", NULL);
  check(json_array_size(d) == 1 && counters_are(dev(d, 7, 1), 0, 10, 0, 0), "blkio: malformed lines are skipped");
  json_decref(d);
}

int main(void)
{
  pressure();
  io_stat();
  blkio();
  return tap_done();
}
