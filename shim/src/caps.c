/* caps.c: process.capabilities: the five sets by name, applied with raw
 * capset/prctl (no libcap): bounding dropped before the uid switch, the
 * others set after it. Absent "capabilities" leaves the process's as they are. */
#include "shim.h"

#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *const cap_names[] = {
  "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
  "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN",
  "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
  "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
  "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
  "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND",
  "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
};
#define N_CAPS ((int) (sizeof(cap_names) / sizeof(cap_names[0])))

static const char *const set_names[] = { "bounding", "effective", "inheritable", "permitted", "ambient" };

static int cap_number(const char *name)
{
  for (int i = 0; i < N_CAPS; i++)
    if (strcmp(cap_names[i], name) == 0)
      return i;
  return -1;
}

static int last_cap(void)
{
  static int cached = -1;
  if (cached < 0) {
    struct shim_err err;
    char *text = NULL;
    cached = N_CAPS - 1;
    if (read_file("/proc/sys/kernel/cap_last_cap", &text, NULL, 64, &err) == 0) {
      int v = atoi(text);
      if (v > 0 && v < cached)
        cached = v;
    }
    free(text);
  }
  return cached;
}

int caps_validate(json_t *process, struct shim_err *err)
{
  json_t *caps;
  if (spec_get_object(process, "capabilities", "process", &caps, err) < 0)
    return -1;
  for (size_t s = 0; caps && s < sizeof(set_names) / sizeof(set_names[0]); s++) {
    json_t *arr, *v;
    size_t i;
    char where[64];
    snprintf(where, sizeof(where), "process.capabilities");
    if (spec_get_array(caps, set_names[s], where, &arr, err) < 0)
      return -1;
    json_array_foreach (arr, i, v) {
      const char *name = json_string_value(v);
      if (!name)
        return shim_fail(err, SHIM_INVALID_ARGUMENT, "process.capabilities.%s[%zu]: must be a string", set_names[s], i);
      if (cap_number(name) < 0)
        return shim_fail(err, SHIM_INVALID_ARGUMENT, "process.capabilities.%s[%zu]: unknown capability \"%s\"",
                         set_names[s], i, name);
    }
  }
  return 0;
}

/* Bit mask of a named set (caps above the kernel's last one dropped). */
static uint64_t set_mask(json_t *process, const char *set)
{
  json_t *arr = json_object_get(json_object_get(process, "capabilities"), set), *v;
  uint64_t mask = 0;
  size_t i;
  json_array_foreach (arr, i, v) {
    int n = cap_number(json_string_value(v));
    if (n >= 0 && n <= last_cap())
      mask |= 1ULL << n;
  }
  return mask;
}

int caps_drop_bounding(json_t *process, struct shim_err *err)
{
  uint64_t keep = set_mask(process, "bounding");
  for (int c = 0; c <= last_cap(); c++) {
    if (keep & (1ULL << c))
      continue;
    if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
      return shim_fail_errno(err, errno, "drop %s from the bounding set", cap_names[c]);
  }
  return 0;
}

int caps_set(json_t *process, struct shim_err *err)
{
  struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
  struct __user_cap_data_struct data[2];
  uint64_t eff = set_mask(process, "effective"), prm = set_mask(process, "permitted");
  uint64_t inh = set_mask(process, "inheritable"), amb = set_mask(process, "ambient");
  for (int w = 0; w < 2; w++) {
    data[w].effective = (uint32_t) (eff >> (32 * w));
    data[w].permitted = (uint32_t) (prm >> (32 * w));
    data[w].inheritable = (uint32_t) (inh >> (32 * w));
  }
  if (syscall(SYS_capset, &hdr, data) < 0)
    return shim_fail_errno(err, errno, "process.capabilities: capset");
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
    return shim_fail_errno(err, errno, "clear ambient capabilities");
  for (int c = 0; c <= last_cap(); c++) {
    /* The kernel only allows ambient caps that are permitted and inheritable. */
    if (!(amb & (1ULL << c)) || !(prm & inh & (1ULL << c)))
      continue;
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0)
      return shim_fail_errno(err, errno, "raise ambient %s", cap_names[c]);
  }
  return 0;
}
