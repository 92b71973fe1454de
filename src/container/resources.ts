// CRI LinuxContainerResources -> OCI linux.resources, as containerd maps them; the
// oom_score_adj is clamped up to what the host allows (containerd's
// restrict_oom_score_adj) instead of failing the container.
import { InvalidArgument } from '../errors';
import type { LinuxContainerResources } from '../cri/gen/cri';

export interface OciLinuxResources {
  cpu?: { shares?: number; quota?: number; period?: number; cpus?: string; mems?: string };
  memory?: { limit?: number; swap?: number };
  hugepageLimits?: { pageSize: string; limit: number }[];
  unified?: Record<string, string>;
}

export function ociResources(r: LinuxContainerResources, minOomScoreAdj: number): OciLinuxResources & { oomScoreAdj?: number } {
  for (const [k, v] of [['cpu_period', r.cpu_period], ['cpu_quota', r.cpu_quota], ['cpu_shares', r.cpu_shares], ['memory_limit_in_bytes', r.memory_limit_in_bytes]] as const)
    if (v < 0 && !(k === 'cpu_quota' && v === -1)) throw new InvalidArgument(`resources.${k} must not be negative, got ${v}`);
  if (r.oom_score_adj < -1000 || r.oom_score_adj > 1000) throw new InvalidArgument(`resources.oom_score_adj must be in [-1000, 1000], got ${r.oom_score_adj}`);
  for (const [k, v] of Object.entries(r.unified)) if (k.includes('/') || k.includes('..') || !k) throw new InvalidArgument(`resources.unified: bad key "${k}"`); else void v;
  const out: OciLinuxResources & { oomScoreAdj?: number } = {};
  const cpu: NonNullable<OciLinuxResources['cpu']> = {};
  if (r.cpu_shares) cpu.shares = r.cpu_shares;
  if (r.cpu_quota) cpu.quota = r.cpu_quota;
  if (r.cpu_period) cpu.period = r.cpu_period;
  if (r.cpuset_cpus) cpu.cpus = r.cpuset_cpus;
  if (r.cpuset_mems) cpu.mems = r.cpuset_mems;
  if (Object.keys(cpu).length) out.cpu = cpu;
  const memory: NonNullable<OciLinuxResources['memory']> = {};
  if (r.memory_limit_in_bytes) memory.limit = r.memory_limit_in_bytes;
  if (r.memory_swap_limit_in_bytes) memory.swap = r.memory_swap_limit_in_bytes;
  if (Object.keys(memory).length) out.memory = memory;
  if (r.hugepage_limits.length) out.hugepageLimits = r.hugepage_limits.map((h) => ({ pageSize: h.page_size, limit: h.limit }));
  if (Object.keys(r.unified).length) out.unified = { ...r.unified };
  if (r.oom_score_adj) out.oomScoreAdj = Math.max(r.oom_score_adj, minOomScoreAdj);
  return out;
}
