/* test_lsm.c: what the shim writes to enter an AppArmor profile and an SELinux
 * label, in which order, through a recording lsm_ops (this host has neither
 * LSM); the AppArmor fallback to attr/exec on kernels without
 * attr/apparmor/; failures naming the profile or label; SELinux mount
 * contexts; config validation; and the real writer's procfs check. */
#include "harness.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the recorder ------------------------------------------------------- */

#define MAX_WRITES 8

static struct {
  size_t n;
  char path[MAX_WRITES][128];
  char data[MAX_WRITES][256];
  /* Paths that fail, and with which errno. */
  const char *fail_path[2];
  int fail_errno[2];
} rec;

static void rec_reset(void)
{
  memset(&rec, 0, sizeof(rec));
}

static int fake_write_attr(const char *path, const char *data, struct shim_err *err)
{
  if (rec.n < MAX_WRITES) {
    snprintf(rec.path[rec.n], sizeof(rec.path[0]), "%s", path);
    snprintf(rec.data[rec.n], sizeof(rec.data[0]), "%s", data);
    rec.n++;
  }
  for (int i = 0; i < 2; i++)
    if (rec.fail_path[i] && strcmp(rec.fail_path[i], path) == 0)
      return shim_fail_errno(err, rec.fail_errno[i], "write %s", path);
  return 0;
}

static const struct lsm_ops fake_ops = { .write_attr = fake_write_attr };

static bool wrote(size_t i, const char *path, const char *data)
{
  return i < rec.n && strcmp(rec.path[i], path) == 0 && strcmp(rec.data[i], data) == 0;
}

static int apply(const char *process_text, struct shim_err *err)
{
  cleanup_json json_t *p = test_json(process_text);
  memset(err, 0, sizeof(*err));
  return lsm_set_exec_labels(&fake_ops, json_string_value(json_object_get(p, "selinuxLabel")),
                             json_string_value(json_object_get(p, "apparmorProfile")), err);
}

#define AA_EXEC "/proc/thread-self/attr/apparmor/exec"
#define EXEC "/proc/thread-self/attr/exec"

static void test_exec_labels(void)
{
  struct shim_err err;
  int r;

  rec_reset();
  r = apply("{\"args\": [\"sh\"]}", &err);
  check(r == 0 && rec.n == 0, "no profile and no label: nothing is written");

  rec_reset();
  r = apply("{\"args\": [\"sh\"], \"apparmorProfile\": \"\", \"selinuxLabel\": \"\"}", &err);
  check(r == 0 && rec.n == 0, "empty profile and label: nothing is written");

  rec_reset();
  r = apply("{\"apparmorProfile\": \"skiff-default\"}", &err);
  check(r == 0 && rec.n == 1 && wrote(0, AA_EXEC, "exec skiff-default"),
        "AppArmor: \"exec <profile>\" to attr/apparmor/exec");

  rec_reset();
  rec.fail_path[0] = AA_EXEC;
  rec.fail_errno[0] = ENOENT;
  r = apply("{\"apparmorProfile\": \"skiff-default\"}", &err);
  check(r == 0 && rec.n == 2 && wrote(0, AA_EXEC, "exec skiff-default") && wrote(1, EXEC, "exec skiff-default"),
        "AppArmor on a kernel without attr/apparmor/: falls back to attr/exec");

  rec_reset();
  rec.fail_path[0] = AA_EXEC;
  rec.fail_errno[0] = EACCES;
  r = apply("{\"apparmorProfile\": \"my-profile\"}", &err);
  check(r < 0 && rec.n == 1 && err.errnum == EACCES && strstr(err.msg, "process.apparmorProfile \"my-profile\"")
            && strstr(err.msg, AA_EXEC),
        "AppArmor write refused: no fallback, the error names the profile and the file");

  rec_reset();
  rec.fail_path[0] = AA_EXEC;
  rec.fail_errno[0] = ENOENT;
  rec.fail_path[1] = EXEC;
  rec.fail_errno[1] = EINVAL;
  r = apply("{\"apparmorProfile\": \"my-profile\"}", &err);
  check(r < 0 && rec.n == 2 && err.errnum == EINVAL && strstr(err.msg, "\"my-profile\"") && strstr(err.msg, EXEC),
        "AppArmor absent from the kernel: both writes fail, the error names the profile");

  rec_reset();
  r = apply("{\"selinuxLabel\": \"system_u:system_r:container_t:s0:c1,c2\"}", &err);
  check(r == 0 && rec.n == 1 && wrote(0, EXEC, "system_u:system_r:container_t:s0:c1,c2"),
        "SELinux: the process label to attr/exec");

  rec_reset();
  r = apply("{\"selinuxLabel\": \"system_u:system_r:container_t:s0\", \"apparmorProfile\": \"p\"}", &err);
  check(r == 0 && rec.n == 2 && wrote(0, EXEC, "system_u:system_r:container_t:s0") && wrote(1, AA_EXEC, "exec p"),
        "both named: the SELinux label first, then the AppArmor profile (crun's order)");

  rec_reset();
  rec.fail_path[0] = EXEC;
  rec.fail_errno[0] = EINVAL;
  r = apply("{\"selinuxLabel\": \"system_u:system_r:bogus_t:s0\", \"apparmorProfile\": \"p\"}", &err);
  check(r < 0 && rec.n == 1 && strstr(err.msg, "process.selinuxLabel \"system_u:system_r:bogus_t:s0\"")
            && strstr(err.msg, "Invalid argument"),
        "SELinux write refused: fails naming the label, the profile is not attempted");
}

static void test_mount_data(void)
{
  struct shim_err err = { 0 };
  char data[LSM_MOUNT_DATA_MAX];
  const char *label = "system_u:object_r:container_file_t:s0:c1,c2";

  strcpy(data, "mode=755,size=65536k");
  check(lsm_mount_data("tmpfs", false, label, data, sizeof(data), &err) == 0
            && strcmp(data, "mode=755,size=65536k,context=\"system_u:object_r:container_file_t:s0:c1,c2\"") == 0,
        "tmpfs: context=\"<mount label>\" appended, quoted (the level has commas)");
  data[0] = '\0';
  check(lsm_mount_data("mqueue", false, label, data, sizeof(data), &err) == 0
            && strcmp(data, "context=\"system_u:object_r:container_file_t:s0:c1,c2\"") == 0,
        "mqueue without options: context alone");
  strcpy(data, "newinstance");
  check(lsm_mount_data("devpts", false, label, data, sizeof(data), &err) == 0 && strstr(data, "newinstance,context=\""),
        "devpts gets the context");
  strcpy(data, "");
  check(lsm_mount_data("proc", false, label, data, sizeof(data), &err) == 0 && data[0] == '\0'
            && lsm_mount_data("sysfs", false, label, data, sizeof(data), &err) == 0 && data[0] == '\0',
        "proc and sysfs are left alone");
  check(lsm_mount_data("tmpfs", true, label, data, sizeof(data), &err) == 0 && data[0] == '\0'
            && lsm_mount_data(NULL, true, label, data, sizeof(data), &err) == 0 && data[0] == '\0',
        "bind mounts are left alone");
  strcpy(data, "mode=755");
  check(lsm_mount_data("tmpfs", false, NULL, data, sizeof(data), &err) == 0 && strcmp(data, "mode=755") == 0
            && lsm_mount_data("tmpfs", false, "", data, sizeof(data), &err) == 0 && strcmp(data, "mode=755") == 0,
        "no mount label: options unchanged");
  {
    char small[24] = "mode=755";
    check(lsm_mount_data("tmpfs", false, label, small, sizeof(small), &err) < 0 && err.code == SHIM_INVALID_ARGUMENT
              && strstr(err.msg, "linux.mountLabel") && strcmp(small, "mode=755") == 0,
          "options too long with the context: an error naming linux.mountLabel, options unchanged");
  }
}

static void test_validate(void)
{
  struct shim_err err;
  struct {
    const char *json;
    bool ok;
    const char *name;
  } cases[] = {
    { "{\"apparmorProfile\": \"skiff-default\", \"selinuxLabel\": \"a:b:c:s0\"}", true, "strings are accepted" },
    { "{\"apparmorProfile\": 7}", false, "a non-string profile is refused" },
    { "{\"selinuxLabel\": \"a:b:c:s0\\nx\"}", false, "a newline in a label is refused" },
    { "{\"apparmorProfile\": \"p\\u0000q\"}", false, "a NUL in a profile is refused" },
    { "{\"selinuxLabel\": \"a\\\"b\"}", false, "a quote in a label is refused (it would end context=\"...\")" },
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    json_error_t jerr;
    cleanup_json json_t *p = json_loads(cases[i].json, JSON_ALLOW_NUL, &jerr);
    const char *profile, *label;
    int r;
    memset(&err, 0, sizeof(err));
    r = p ? lsm_parse_process(p, "process", &profile, &label, &err) : -2;
    check(cases[i].ok ? r == 0 : (r == -1 && err.code == SHIM_INVALID_ARGUMENT && strstr(err.msg, "process.")), cases[i].name);
  }
  {
    cleanup_json json_t *l = json_pack("{s:i}", "mountLabel", 1);
    const char *label;
    check(lsm_parse_linux(l, &label, &err) < 0 && strstr(err.msg, "linux.mountLabel"), "a non-string mountLabel is refused");
  }
}

/* The real writer refuses a file that is not on procfs: a container that
 * put its own file over /proc must not get its label write ignored. */
static void test_real_procfs_check(void)
{
  char dir[] = "/tmp/skiff-test-lsm-XXXXXX", path[64];
  struct shim_err err = { 0 };
  if (!mkdtemp(dir)) {
    check(false, "mkdtemp");
    return;
  }
  snprintf(path, sizeof(path), "%s/exec", dir);
  write_file(path, "", 0, O_CREAT, &err);
  check(lsm_real_ops.write_attr(path, "exec p", &err) < 0 && strstr(err.msg, "is not on a proc file system"),
        "real writer: a file outside procfs is refused");
  unlink(path);
  rmdir(dir);
  memset(&err, 0, sizeof(err));
  check(lsm_real_ops.write_attr("/proc/thread-self/attr/nonexistent-lsm/exec", "exec p", &err) < 0 && err.errnum == ENOENT,
        "real writer: a missing attribute file fails with ENOENT (what triggers the fallback)");
}

int main(void)
{
  test_exec_labels();
  test_mount_data();
  test_validate();
  test_real_procfs_check();
  return tap_done();
}
