// The pod's cgroup. kubelet names one (cgroup_parent: the pod cgroup it made and sizes,
// overhead included) and skiff leaves its limits alone, as containerd and CRI-O do. When
// no cgroup_parent is given (kubelet with cgroupsPerQOS off, critest, crictl), skiff makes
// the pod cgroup itself under cri.cgroup_parent and sets on it the pod's resources plus its
// overhead, so a pod is held to what the CRI said it may use. Either way the containers go
// in <pod cgroup>/<container id> and the infra process in <pod cgroup>/<pod id>.
import * as path from 'path';
import { InvalidArgument } from '../errors';
import type { LinuxContainerResources } from '../cri/gen/cri';
import { ociResources } from '../container/resources';
import type { LinuxResources } from '../oci/runtime_spec';

export interface PodCgroup {
  /** The pod cgroup (cgroupfs path). */
  path: string;
  /** skiff made it, set `resources` on it, and removes it with the pod. */
  owned: boolean;
  /** The limits skiff set (owned cgroups only). */
  resources?: LinuxResources;
}

/** What a pod asks of its cgroup. */
export interface PodCgroupRequest {
  /** kubelet's pod cgroup, or '' for one skiff makes. */
  parent: string;
  /** The sum of the containers' resources, and the pod's overhead. */
  resources: LinuxContainerResources | null;
  overhead: LinuxContainerResources | null;
}

const DEFAULT_CPU_PERIOD = 100_000;

/** The pod cgroup for pod `id`; InvalidArgument for a relative parent or one with "..". */
export function podCgroup(id: string, want: PodCgroupRequest, defaultParent: string): PodCgroup {
  const given = want.parent;
  const parent = given || defaultParent;
  if (!parent.startsWith('/') || parent.split('/').includes('..')) throw new InvalidArgument(`cgroup_parent "${parent}" must be an absolute cgroup path without ".."`);
  if (given) return { path: given, owned: false };
  const resources = podCgroupLimits(want.resources, want.overhead);
  return { path: path.posix.join(parent, `skiff-pod-${id}`), owned: true, ...(resources && Object.keys(resources).length ? { resources } : {}) };
}

/** The limits of a pod cgroup skiff owns, as the shim takes them: podLimits in OCI terms. */
function podCgroupLimits(res: LinuxContainerResources | null, ovh: LinuxContainerResources | null): LinuxResources | undefined {
  const limits = podLimits(res, ovh);
  // podLimits sets no oom_score_adj (a process setting, not a cgroup's): none comes back.
  return limits ? ociResources(limits, -1000) : undefined;
}

/**
 * The limits an UpdatePodSandboxResources sets on a pod cgroup skiff owns: the same sum as
 * at RunPodSandbox, where a limit the pod no longer has is lifted (memory, memory+swap and
 * CPU quota back to unlimited) instead of being left at its old value. CPU shares, cpusets
 * and hugepage sizes not given stay as they are. undefined: nothing to set.
 */
export function podCgroupUpdate(res: LinuxContainerResources | null, ovh: LinuxContainerResources | null): LinuxResources | undefined {
  const limits = podCgroupLimits(res, ovh);
  if (!limits) return undefined;
  return { ...limits, cpu: { quota: -1, ...limits.cpu }, memory: { limit: -1, swap: -1, ...limits.memory } };
}

/** OCI field names in a shim error (linux.resources.cpu.quota) as the CRI names them. */
const CRI_FIELDS: [RegExp, string][] = [
  [/linux\.resources\.cpu\.shares/g, 'cpu_shares'],
  [/linux\.resources\.cpu\.quota/g, 'cpu_quota'],
  [/linux\.resources\.cpu\.period/g, 'cpu_period'],
  [/linux\.resources\.cpu\.cpus/g, 'cpuset_cpus'],
  [/linux\.resources\.cpu\.mems/g, 'cpuset_mems'],
  [/linux\.resources\.memory\.limit/g, 'memory_limit_in_bytes'],
  [/linux\.resources\.memory\.swap/g, 'memory_swap_limit_in_bytes'],
  [/linux\.resources\.hugepageLimits\[(\d+)\]\.pageSize/g, 'hugepage_limits[$1].page_size'],
  [/linux\.resources\.hugepageLimits/g, 'hugepage_limits'],
  [/linux\.resources\.unified/g, 'unified'],
];

/** A pod cgroup error of the shim's, naming the request's field (the sum of resources and overhead). */
export function criFieldNames(message: string): string {
  return `resources (plus overhead): ${CRI_FIELDS.reduce((m, [re, name]) => m.replace(re, name), message)}`;
}

/** The pod's limits: its containers' sum (`resources`) plus the overhead of running the pod.
 * A limit the sum does not set stays unset (an unlimited container makes an unlimited pod);
 * CPU shares are a weight, so overhead alone still adds its share. */
export function podLimits(res: LinuxContainerResources | null, ovh: LinuxContainerResources | null): LinuxContainerResources | null {
  if (!res && !ovh) return null;
  const zero: LinuxContainerResources = {
    cpu_period: 0, cpu_quota: 0, cpu_shares: 0, memory_limit_in_bytes: 0, oom_score_adj: 0,
    cpuset_cpus: '', cpuset_mems: '', hugepage_limits: [], unified: {}, memory_swap_limit_in_bytes: 0,
  };
  const r = res ?? zero;
  const o = ovh ?? zero;
  const out: LinuxContainerResources = { ...zero, cpuset_cpus: r.cpuset_cpus, cpuset_mems: r.cpuset_mems, unified: { ...r.unified } };
  out.cpu_shares = r.cpu_shares + o.cpu_shares;
  if (r.cpu_quota > 0) {
    // Quotas are per period: the overhead's is counted in the pod's period.
    out.cpu_period = r.cpu_period || DEFAULT_CPU_PERIOD;
    const extra = o.cpu_quota > 0 ? Math.ceil((o.cpu_quota * out.cpu_period) / (o.cpu_period || DEFAULT_CPU_PERIOD)) : 0;
    out.cpu_quota = r.cpu_quota + extra;
  }
  if (r.memory_limit_in_bytes > 0) out.memory_limit_in_bytes = r.memory_limit_in_bytes + Math.max(0, o.memory_limit_in_bytes);
  if (r.memory_swap_limit_in_bytes > 0) out.memory_swap_limit_in_bytes = r.memory_swap_limit_in_bytes + Math.max(0, o.memory_limit_in_bytes);
  out.hugepage_limits = r.hugepage_limits.map((h) => ({
    page_size: h.page_size,
    limit: h.limit + (o.hugepage_limits.find((x) => x.page_size === h.page_size)?.limit ?? 0),
  }));
  return out;
}
