/* test_idmap.c: id mappings as config.json gives them: ranges the kernel would refuse
 * (empty, past id 2^32-2, overlapping on either side, too many lines) refused naming the
 * field; a mount's uidMappings/gidMappings and the "idmap"/"ridmap" options parsed into
 * an id-mapped bind mount, and refused on other mounts or when only one map is given.
 * As root, a user namespace made for a mapping holds exactly that mapping. */
#include "harness.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

static void check_ranges(void)
{
  struct shim_err err = { 0 };
  const struct spec_idmap ok[] = { { 0, 100000, 1000 }, { 1000, 200000, 64536 } };
  const struct spec_idmap empty[] = { { 0, 100000, 0 } };
  const struct spec_idmap past_end[] = { { 0, 4294967000u, 296 } }; /* would take in 2^32-1, the invalid id */
  const struct spec_idmap last_ok[] = { { 0, 4294967000u, 295 } }; /* up to 2^32-2 */
  const struct spec_idmap overlap_container[] = { { 0, 100000, 1000 }, { 999, 300000, 10 } };
  const struct spec_idmap overlap_host[] = { { 0, 100000, 1000 }, { 5000, 100500, 10 } };
  const struct spec_idmap adjacent[] = { { 0, 100000, 1000 }, { 1000, 101000, 10 } };
  static struct spec_idmap many[IDMAP_MAX_LINES + 1];

  check_rc(idmap_check(ok, 2, "m", &err), &err, "two disjoint ranges are accepted");
  check_rc(idmap_check(adjacent, 2, "m", &err), &err, "ranges that touch without overlapping are accepted");
  check_rc(idmap_check(last_ok, 1, "m", &err), &err, "a range ending just below id 2^32-1 is accepted");
  check(idmap_check(empty, 1, "m", &err) < 0 && err.code == SHIM_INVALID_ARGUMENT && strcmp(err.msg, "m[0]: range out of 32-bit ids") == 0,
        "an empty range is refused naming it (%s)", err.msg);
  check(idmap_check(past_end, 1, "m", &err) < 0 && strstr(err.msg, "m[0]") != NULL, "a range reaching id 2^32-1 is refused (%s)", err.msg);
  check(idmap_check(overlap_container, 2, "mounts[3].uidMappings", &err) < 0
            && strcmp(err.msg, "mounts[3].uidMappings: [0] and [1] overlap in their container ids") == 0,
        "overlapping container ids are refused naming both (%s)", err.msg);
  check(idmap_check(overlap_host, 2, "m", &err) < 0 && strcmp(err.msg, "m: [0] and [1] overlap in their host ids") == 0,
        "overlapping host ids are refused naming both (%s)", err.msg);
  for (size_t i = 0; i < IDMAP_MAX_LINES + 1; i++)
    many[i] = (struct spec_idmap) { (uint32_t) i, (uint32_t) (100000 + i), 1 };
  check_rc(idmap_check(many, IDMAP_MAX_LINES, "m", &err), &err, "%d lines are accepted", IDMAP_MAX_LINES);
  check(idmap_check(many, IDMAP_MAX_LINES + 1, "m", &err) < 0 && strstr(err.msg, "at most 340") != NULL,
        "%d lines are refused (%s)", IDMAP_MAX_LINES + 1, err.msg);
}

/* mount_parse of a spec with one mount; the error message, or "" when it parsed. */
static const char *parse_one_mount(const char *mount_json, struct spec_rootfs *r)
{
  static struct shim_err err;
  char text[2048];
  json_t *spec;
  int rc;
  snprintf(text, sizeof(text), "{\"root\": {\"path\": \"/r\"}, \"mounts\": [%s], \"linux\": {}}", mount_json);
  spec = test_json(text);
  memset(&err, 0, sizeof(err));
  rc = mount_parse(spec, r, &err);
  json_decref(spec);
  return rc == 0 ? "" : err.msg;
}

static void check_mount_parsing(void)
{
  struct spec_rootfs r;
  const char *msg;
  const char *map = "[{\"containerID\": 0, \"hostID\": 100000, \"size\": 65536}]";
  char buf[1024];

  snprintf(buf, sizeof(buf), "{\"destination\": \"/v\", \"type\": \"bind\", \"source\": \"/s\", \"options\": [\"rbind\"], \"uidMappings\": %s, \"gidMappings\": %s}", map, map);
  msg = parse_one_mount(buf, &r);
  check(strcmp(msg, "") == 0 && r.n_mounts == 1 && r.mounts[0].idmap && !r.mounts[0].idmap_recursive && r.mounts[0].n_uid_maps == 1
            && r.mounts[0].uid_maps[0].host_id == 100000 && r.mounts[0].n_gid_maps == 1 && r.mounts[0].gid_maps[0].size == 65536,
        "a bind mount with mappings is id-mapped, not recursively (%s)", msg);
  mount_free(&r);

  snprintf(buf, sizeof(buf), "{\"destination\": \"/v\", \"type\": \"bind\", \"source\": \"/s\", \"options\": [\"rbind\", \"ridmap\"], \"uidMappings\": %s, \"gidMappings\": %s}", map, map);
  msg = parse_one_mount(buf, &r);
  check(strcmp(msg, "") == 0 && r.mounts[0].idmap && r.mounts[0].idmap_recursive, "\"ridmap\" makes it recursive (%s)", msg);
  mount_free(&r);

  msg = parse_one_mount("{\"destination\": \"/v\", \"type\": \"bind\", \"source\": \"/s\", \"options\": [\"idmap\"]}", &r);
  check(strcmp(msg, "") == 0 && r.mounts[0].idmap && r.mounts[0].n_uid_maps == 0, "\"idmap\" alone asks for the container's mappings (%s)", msg);
  mount_free(&r);

  msg = parse_one_mount("{\"destination\": \"/v\", \"type\": \"bind\", \"source\": \"/s\", \"options\": [\"rbind\"]}", &r);
  check(strcmp(msg, "") == 0 && !r.mounts[0].idmap, "a bind mount without mappings is not id-mapped (%s)", msg);
  mount_free(&r);

  snprintf(buf, sizeof(buf), "{\"destination\": \"/v\", \"type\": \"bind\", \"source\": \"/s\", \"uidMappings\": %s}", map);
  msg = parse_one_mount(buf, &r);
  check(strcmp(msg, "linux.mounts[0].gidMappings: required with uidMappings") == 0, "uidMappings without gidMappings is refused (%s)", msg);
  mount_free(&r);

  snprintf(buf, sizeof(buf), "{\"destination\": \"/t\", \"type\": \"tmpfs\", \"source\": \"tmpfs\", \"uidMappings\": %s, \"gidMappings\": %s}", map, map);
  msg = parse_one_mount(buf, &r);
  check(strcmp(msg, "linux.mounts[0]: id-mapped mounts must be bind mounts (type tmpfs)") == 0, "a tmpfs with mappings is refused (%s)", msg);
  mount_free(&r);

  msg = parse_one_mount("{\"destination\": \"/v\", \"type\": \"bind\", \"source\": \"/s\", \"uidMappings\": "
                        "[{\"containerID\": 0, \"hostID\": 1, \"size\": 10}, {\"containerID\": 5, \"hostID\": 100, \"size\": 10}], "
                        "\"gidMappings\": [{\"containerID\": 0, \"hostID\": 1, \"size\": 10}]}",
                        &r);
  check(strcmp(msg, "linux.mounts[0].uidMappings: [0] and [1] overlap in their container ids") == 0,
        "overlapping mount mappings are refused naming the mount (%s)", msg);
  mount_free(&r);

  msg = parse_one_mount("{\"destination\": \"/v\", \"type\": \"bind\", \"source\": \"/s\", \"uidMappings\": "
                        "[{\"containerID\": 0, \"hostID\": 4294967295, \"size\": 1}], \"gidMappings\": []}",
                        &r);
  check(strcmp(msg, "linux.mounts[0].uidMappings[0]: range out of 32-bit ids") == 0, "a mapping past 2^32 is refused (%s)", msg);
  mount_free(&r);
}

/* As root: the user namespace made for a mapping holds it, as /proc/<pid>/uid_map of a
 * process inside shows. */
static void check_userns(void)
{
  const struct spec_idmap uids[] = { { 0, 310000, 1000 }, { 1000, 320000, 64536 } };
  const struct spec_idmap gids[] = { { 0, 330000, 65536 } };
  struct shim_err err = { 0 };
  char line[256] = "";
  int fd, p[2];
  pid_t pid;

  if (geteuid() != 0) {
    check(true, "# skipped: making a user namespace with mappings needs root");
    return;
  }
  fd = idmap_userns_open(uids, 2, gids, 1, &err);
  if (!check_rc(fd < 0 ? -1 : 0, &err, "a user namespace is made for two uid ranges"))
    return;
  if (pipe(p) < 0)
    return;
  pid = fork();
  if (pid == 0) {
    char buf[256];
    ssize_t n = 0;
    int f;
    if (setns(fd, CLONE_NEWUSER) == 0 && (f = open("/proc/self/uid_map", O_RDONLY)) >= 0)
      n = read(f, buf, sizeof(buf) - 1);
    if (n > 0)
      write(p[1], buf, (size_t) n);
    _exit(0);
  }
  close(p[1]);
  {
    ssize_t n = read_all(p[0], line, sizeof(line) - 1);
    line[n > 0 ? n : 0] = '\0';
  }
  close(p[0]);
  waitpid(pid, NULL, 0);
  close(fd);
  {
    unsigned a, b, c, d, e, f;
    check(sscanf(line, " %u %u %u %u %u %u", &a, &b, &c, &d, &e, &f) == 6 && a == 0 && b == 310000 && c == 1000 && d == 1000
              && e == 320000 && f == 64536,
          "the namespace holds exactly the uid ranges given (%s)", line);
  }
}

int main(void)
{
  check_ranges();
  check_mount_parsing();
  check_userns();
  return tap_done();
}
