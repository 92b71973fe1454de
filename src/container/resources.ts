// CRI LinuxContainerResources -> OCI linux.resources, as containerd maps them; the
// oom_score_adj is clamped up to what the host allows (containerd's
// restrict_oom_score_adj) instead of failing the container.
import { InvalidArgument } from '../errors';
import type { LinuxContainerResources } from '../cri/gen/cri';
import type { LinuxCpu, LinuxMemory, LinuxResources } from '../oci/runtime_spec';

/** Bounds the kernel puts on what it takes (cgroup v1 names; v2 maps onto the same ranges). */
const CPU_SHARES = { min: 2, max: 262_144 };
const CPU_PERIOD_US = { min: 1_000, max: 1_000_000 };
const MIN_CPU_QUOTA_US = 1_000;
/** More bytes than any machine has: a limit above it is a mistake, not a limit. */
const MAX_BYTES = 2 ** 62;
const CPU_LIST = /^\d+(-\d+)?(,\d+(-\d+)?)*$/;
const PAGE_SIZE = /^[1-9]\d*[KMG]B$/;

/**
 * The least memory limit a container is made with. Below it the kernel kills the process
 * while skiff-shim sets it up or as it execs its command (about 200 KiB on cgroup v1, more
 * on v2, which also charges the kernel's memory): such a limit is a mistake, refused with
 * its field named rather than failing as an exit nobody asked for. CRI-O refuses limits
 * under its runtime's floor the same way (12 MiB for runc, 500 KiB for crun).
 */
export const MIN_MEMORY_LIMIT_BYTES = 1024 * 1024;

/** InvalidArgument for a memory limit (0: none) under MIN_MEMORY_LIMIT_BYTES, naming `field`. */
export function checkMemoryFloor(bytes: number, field: string): void {
  if (bytes > 0 && bytes < MIN_MEMORY_LIMIT_BYTES)
    throw new InvalidArgument(`${field}: ${bytes} bytes is below the minimum of ${MIN_MEMORY_LIMIT_BYTES} bytes (1 MiB) a container needs to start`);
}

/** A cgroup file name of the pod's or container's own directory (the shim's rule). */
export const isUnifiedKey = (k: string) => !!k && !k.startsWith('.') && !k.includes('/') && !k.includes('..') && k.includes('.');

/**
 * Every value of `r` the kernel would take, or InvalidArgument naming the field
 * (`<field>.cpu_quota`). Stricter than what CreateContainer has long accepted: used where
 * a bad value must be caught before anything is changed (UpdatePodSandboxResources).
 */
export function checkLinuxResources(r: LinuxContainerResources | null, field: string): void {
  if (!r) return;
  const bad = (name: string, why: string) => new InvalidArgument(`${field}.${name}: ${why}`);
  for (const [k, v] of Object.entries(r)) if (typeof v === 'number' && !Number.isSafeInteger(v)) throw bad(k, `${v} is not an integer`);
  if (r.cpu_shares !== 0 && (r.cpu_shares < CPU_SHARES.min || r.cpu_shares > CPU_SHARES.max))
    throw bad('cpu_shares', `${r.cpu_shares} is not 0 (unset) or in ${CPU_SHARES.min}..${CPU_SHARES.max}`);
  if (r.cpu_period !== 0 && (r.cpu_period < CPU_PERIOD_US.min || r.cpu_period > CPU_PERIOD_US.max))
    throw bad('cpu_period', `${r.cpu_period} is not 0 (unset) or in ${CPU_PERIOD_US.min}..${CPU_PERIOD_US.max} microseconds`);
  if (r.cpu_quota !== 0 && r.cpu_quota !== -1 && r.cpu_quota < MIN_CPU_QUOTA_US)
    throw bad('cpu_quota', `${r.cpu_quota} is not -1 (no limit), 0 (unset) or at least ${MIN_CPU_QUOTA_US} microseconds`);
  if (r.cpu_quota > 0 && r.cpu_period === 0) throw bad('cpu_quota', `${r.cpu_quota} needs cpu_period: a quota is per period`);
  if (r.memory_limit_in_bytes < 0 || r.memory_limit_in_bytes > MAX_BYTES)
    throw bad('memory_limit_in_bytes', `${r.memory_limit_in_bytes} is not 0 (unset) or a size up to 2^62`);
  if (r.memory_swap_limit_in_bytes < -1 || r.memory_swap_limit_in_bytes > MAX_BYTES)
    throw bad('memory_swap_limit_in_bytes', `${r.memory_swap_limit_in_bytes} is not -1 (no limit), 0 (unset) or a size up to 2^62`);
  if (r.memory_swap_limit_in_bytes > 0 && r.memory_limit_in_bytes > 0 && r.memory_swap_limit_in_bytes < r.memory_limit_in_bytes)
    throw bad('memory_swap_limit_in_bytes', `${r.memory_swap_limit_in_bytes} is below memory_limit_in_bytes ${r.memory_limit_in_bytes} (it is memory plus swap)`);
  if (r.oom_score_adj < -1000 || r.oom_score_adj > 1000) throw bad('oom_score_adj', `${r.oom_score_adj} is not in -1000..1000`);
  for (const k of ['cpuset_cpus', 'cpuset_mems'] as const) {
    const list = r[k];
    if (!list) continue;
    if (!CPU_LIST.test(list)) throw bad(k, `"${list}" is not a list like "0-3,5"`);
    for (const range of list.split(',')) {
      const [a, b] = range.split('-').map(Number);
      if (b !== undefined && b < a) throw bad(k, `range ${range} in "${list}" is backwards`);
    }
  }
  const sizes = new Set<string>();
  r.hugepage_limits.forEach((h, i) => {
    if (!PAGE_SIZE.test(h.page_size)) throw bad(`hugepage_limits[${i}].page_size`, `"${h.page_size}" is not a size like "2MB" or "1GB"`);
    if (sizes.has(h.page_size)) throw bad(`hugepage_limits[${i}].page_size`, `"${h.page_size}" is given twice`);
    sizes.add(h.page_size);
    if (!Number.isSafeInteger(h.limit) || h.limit < 0 || h.limit > MAX_BYTES) throw bad(`hugepage_limits[${i}].limit`, `${h.limit} is not a size up to 2^62`);
  });
  for (const k of Object.keys(r.unified)) if (!isUnifiedKey(k)) throw bad('unified', `"${k}" is not a cgroup file name like "memory.high"`);
}

export function ociResources(r: LinuxContainerResources, minOomScoreAdj: number): LinuxResources & { oomScoreAdj?: number } {
  for (const [k, v] of [['cpu_period', r.cpu_period], ['cpu_quota', r.cpu_quota], ['cpu_shares', r.cpu_shares], ['memory_limit_in_bytes', r.memory_limit_in_bytes]] as const)
    if (v < 0 && !(k === 'cpu_quota' && v === -1)) throw new InvalidArgument(`resources.${k} must not be negative, got ${v}`);
  if (r.oom_score_adj < -1000 || r.oom_score_adj > 1000) throw new InvalidArgument(`resources.oom_score_adj must be in [-1000, 1000], got ${r.oom_score_adj}`);
  for (const k of Object.keys(r.unified)) if (!isUnifiedKey(k)) throw new InvalidArgument(`resources.unified: bad key "${k}"`);
  const out: LinuxResources & { oomScoreAdj?: number } = {};
  const cpu: LinuxCpu = {};
  if (r.cpu_shares) cpu.shares = r.cpu_shares;
  if (r.cpu_quota) cpu.quota = r.cpu_quota;
  if (r.cpu_period) cpu.period = r.cpu_period;
  if (r.cpuset_cpus) cpu.cpus = r.cpuset_cpus;
  if (r.cpuset_mems) cpu.mems = r.cpuset_mems;
  if (Object.keys(cpu).length) out.cpu = cpu;
  const memory: LinuxMemory = {};
  if (r.memory_limit_in_bytes) memory.limit = r.memory_limit_in_bytes;
  if (r.memory_swap_limit_in_bytes) memory.swap = r.memory_swap_limit_in_bytes;
  if (Object.keys(memory).length) out.memory = memory;
  if (r.hugepage_limits.length) out.hugepageLimits = r.hugepage_limits.map((h) => ({ pageSize: h.page_size, limit: h.limit }));
  if (Object.keys(r.unified).length) out.unified = { ...r.unified };
  if (r.oom_score_adj) out.oomScoreAdj = Math.max(r.oom_score_adj, minOomScoreAdj);
  return out;
}
