/* caps.c: process.capabilities: the five OCI sets by name, applied with raw
 * capset/prctl (no libcap): bounding dropped before the uid switch, the
 * others set after it.
 *
 * An absent (or null) "capabilities" leaves the process's capabilities as
 * they are: both caps_drop_bounding and caps_set do nothing. When the object
 * is present, a set it does not list is the empty set. Names are checked
 * against the full table below; caps the running kernel does not have (above
 * /proc/sys/kernel/cap_last_cap) are skipped when applying. */
#include "shim.h"

#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Indexed by capability number (linux/capability.h). */
static const char *const cap_names[] = {
  "CAP_CHOWN",           "CAP_DAC_OVERRIDE",  "CAP_DAC_READ_SEARCH",   "CAP_FOWNER",
  "CAP_FSETID",          "CAP_KILL",          "CAP_SETGID",            "CAP_SETUID",
  "CAP_SETPCAP",         "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
  "CAP_NET_ADMIN",       "CAP_NET_RAW",       "CAP_IPC_LOCK",          "CAP_IPC_OWNER",
  "CAP_SYS_MODULE",      "CAP_SYS_RAWIO",     "CAP_SYS_CHROOT",        "CAP_SYS_PTRACE",
  "CAP_SYS_PACCT",       "CAP_SYS_ADMIN",     "CAP_SYS_BOOT",          "CAP_SYS_NICE",
  "CAP_SYS_RESOURCE",    "CAP_SYS_TIME",      "CAP_SYS_TTY_CONFIG",    "CAP_MKNOD",
  "CAP_LEASE",           "CAP_AUDIT_WRITE",   "CAP_AUDIT_CONTROL",     "CAP_SETFCAP",
  "CAP_MAC_OVERRIDE",    "CAP_MAC_ADMIN",     "CAP_SYSLOG",            "CAP_WAKE_ALARM",
  "CAP_BLOCK_SUSPEND",   "CAP_AUDIT_READ",    "CAP_PERFMON",           "CAP_BPF",
  "CAP_CHECKPOINT_RESTORE",
};
#define N_CAPS ((int) (sizeof(cap_names) / sizeof(cap_names[0])))

/* capset takes two 32-bit words per set: at most 64 capabilities. */
#define MAX_CAP 63

static const char *const set_names[] = { "bounding", "effective", "inheritable", "permitted", "ambient" };

static int cap_number(const char *name)
{
  for (int i = 0; i < N_CAPS; i++)
    if (strcmp(cap_names[i], name) == 0)
      return i;
  return -1;
}

static const char *cap_name(int c)
{
  return c < N_CAPS ? cap_names[c] : "a capability newer than this shim";
}

/* The running kernel's highest capability number. It may be above our table
 * (a newer kernel): those caps are still dropped from the bounding set. The
 * first answer is kept: it cannot change while we run. */
static int kernel_last_cap(void)
{
  static int cached = -1;
  if (cached < 0) {
    struct shim_err ignored;
    cleanup_free char *text = NULL;
    size_t len;
    cached = N_CAPS - 1;
    if (read_file("/proc/sys/kernel/cap_last_cap", &text, &len, 64, &ignored) == 0) {
      char *end;
      long v = strtol(text, &end, 10);
      if (end != text && v > 0 && v <= MAX_CAP)
        cached = (int) v;
    } else {
      /* No /proc (e.g. after pivot_root into a rootfs without it): probe the
       * bounding set, which answers EINVAL past the last cap. */
      int c = 0;
      while (c < MAX_CAP && prctl(PR_CAPBSET_READ, c + 1, 0, 0, 0) >= 0)
        c++;
      cached = c;
    }
  }
  return cached;
}

int caps_parse(json_t *process, struct spec_caps *out, struct shim_err *err)
{
  uint64_t *masks[] = { &out->bounding, &out->effective, &out->inheritable, &out->permitted, &out->ambient };
  json_t *caps;
  memset(out, 0, sizeof(*out));
  out->listed = json_object_get(process, "capabilities") != NULL;
  if (field_object(process, "capabilities", "process", &caps, err) < 0)
    return -1;
  if (!caps)
    return 0;
  out->given = true;
  for (size_t s = 0; s < sizeof(set_names) / sizeof(set_names[0]); s++) {
    json_t *arr, *v;
    size_t i;
    if (field_array(caps, set_names[s], "process.capabilities", &arr, err) < 0)
      return -1;
    json_array_foreach (arr, i, v) {
      const char *name = json_string_value(v);
      int n;
      if (!name)
        return shim_fail(err, SHIM_INVALID_ARGUMENT, "process.capabilities.%s[%zu]: must be a string", set_names[s], i);
      n = cap_number(name);
      if (n < 0)
        return shim_fail(err, SHIM_INVALID_ARGUMENT, "process.capabilities.%s[%zu]: unknown capability \"%s\"",
                         set_names[s], i, name);
      *masks[s] |= 1ULL << n;
    }
  }
  return 0;
}

/* A set without the caps this kernel does not have. */
static uint64_t on_this_kernel(uint64_t mask)
{
  int last = kernel_last_cap();
  return last >= 63 ? mask : mask & ((1ULL << (last + 1)) - 1);
}

static int lowest_bit(uint64_t mask)
{
  return __builtin_ctzll(mask);
}

int caps_drop_bounding(const struct spec_caps *caps, struct shim_err *err)
{
  uint64_t keep;
  if (!caps->given)
    return 0;
  keep = on_this_kernel(caps->bounding);
  for (int c = 0; c <= kernel_last_cap(); c++) {
    if (keep & (1ULL << c))
      continue;
    /* One call a cap: dropping one that is gone succeeds. Without CAP_SETPCAP every
     * drop fails, which is fine for a cap already gone (PR_CAPBSET_READ says 0). */
    if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0) {
      int e = errno;
      if (e == EPERM && prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 0)
        continue;
      return shim_fail_errno(err, e, "process.capabilities.bounding: drop %s (%d)", cap_name(c), c);
    }
  }
  return 0;
}

int caps_set(const struct spec_caps *caps, struct shim_err *err)
{
  struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
  struct __user_cap_data_struct data[2], cur[2];
  uint64_t eff, prm, inh, amb, extra;

  if (!caps->given)
    return 0;
  eff = on_this_kernel(caps->effective);
  prm = on_this_kernel(caps->permitted);
  inh = on_this_kernel(caps->inheritable);
  amb = on_this_kernel(caps->ambient);
  /* The kernel refuses these with a bare EPERM: say which cap is wrong. */
  extra = eff & ~prm;
  if (extra)
    return shim_fail(err, SHIM_INVALID_ARGUMENT, "process.capabilities.effective: %s is not in permitted",
                     cap_name(lowest_bit(extra)));
  if (syscall(SYS_capget, &hdr, cur) < 0)
    return shim_fail_errno(err, errno, "process.capabilities: capget");
  extra = prm & ~((uint64_t) cur[0].permitted | (uint64_t) cur[1].permitted << 32);
  if (extra)
    return shim_fail(err, SHIM_FAILED_PRECONDITION, "process.capabilities.permitted: %s is not held by the process",
                     cap_name(lowest_bit(extra)));

  for (int w = 0; w < 2; w++) {
    data[w].effective = (uint32_t) (eff >> (32 * w));
    data[w].permitted = (uint32_t) (prm >> (32 * w));
    data[w].inheritable = (uint32_t) (inh >> (32 * w));
  }
  hdr.version = _LINUX_CAPABILITY_VERSION_3;
  hdr.pid = 0;
  if (syscall(SYS_capset, &hdr, data) < 0) {
    int e = errno;
    /* A new inheritable cap must be in the bounding set (or already held). */
    for (int c = 0; e == EPERM && c <= kernel_last_cap(); c++) {
      if ((inh & (1ULL << c)) && prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 0)
        return shim_fail(err, SHIM_INVALID_ARGUMENT, "process.capabilities.inheritable: %s is not in the bounding set",
                         cap_name(c));
    }
    return shim_fail_errno(err, e, "process.capabilities: capset");
  }

  /* EINVAL: a kernel without ambient capabilities (< 4.3); nothing to clear. */
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
    return shim_fail_errno(err, errno, "process.capabilities.ambient: clear");
  for (int c = 0; c <= kernel_last_cap(); c++) {
    /* The kernel only allows ambient caps that are permitted and inheritable;
     * others are skipped rather than failing the container. */
    if (!(amb & prm & inh & (1ULL << c)))
      continue;
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0)
      return shim_fail_errno(err, errno, "process.capabilities.ambient: raise %s", cap_name(c));
  }
  return 0;
}
