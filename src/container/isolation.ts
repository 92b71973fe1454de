// What separates a container from its pod and from the host, in one report: each of the
// seven namespaces (private, shared with the pod, or the host's), cgroup limits and the
// resources left unbounded,
// capabilities beyond the default set, seccomp, the AppArmor profile and SELinux label,
// no_new_privs, privileged, read-only rootfs, masked paths, and whether uid 0 inside is
// uid 0 on the host. It comes from the OCI spec
// skiff wrote and, while the container runs, from what the kernel says (/proc/<pid>/ns,
// uid_map), so a namespace is reported as it is, not as it was asked for. `skiff inspect
// --isolation` prints it; skiffd's metrics turn it into gauges to alert on.
import { promises as fsp } from 'fs';
import type { NamespaceType, Spec } from '../oci/runtime_spec';
import { hostIdOf } from '../sandbox/userns';
import { DEFAULT_CAPABILITIES } from './spec';
import { readProcFile } from '../sys/proc_file';

export const NAMESPACES = ['mnt', 'pid', 'net', 'ipc', 'uts', 'user', 'cgroup'] as const;
/** Resources a container's cgroup can bound; one it does not is shared with its neighbours. */
export const RESOURCES = ['memory', 'pids', 'cpu', 'io'] as const;
export type Resource = (typeof RESOURCES)[number];
export type Namespace = (typeof NAMESPACES)[number];
export type Sharing = 'private' | 'pod' | 'host';

const OCI_TYPE: Record<Namespace, NamespaceType> = { mnt: 'mount', pid: 'pid', net: 'network', ipc: 'ipc', uts: 'uts', user: 'user', cgroup: 'cgroup' };

export interface Isolation {
  namespaces: Record<Namespace, Sharing>;
  /** Where the namespace facts come from: the running process, or the spec. */
  observed: boolean;
  limits: { cpus: number | null; memoryBytes: number | null; pids: number | null };
  /** What the container's own cgroup leaves unbounded, so that it can take from the other
   * pods on the node: no memory limit, no pids limit, no cpu quota, no IO weight (the
   * kernel's default weight, the same as every neighbour's). Kubelet may still bound the
   * pod's cgroup above it (podPidsLimit, a Guaranteed pod's memory). */
  unbounded: Resource[];
  extraCapabilities: string[];
  seccomp: 'filtered' | 'unconfined';
  /** The mandatory access control the process execs into: skiffd names a profile or
   * label only where the host's LSM enforces it, and the shim fails rather than skip it. */
  lsm: { apparmor: string | null; selinux: string | null };
  /** Neither an AppArmor profile nor an SELinux label confines the container. */
  lsmUnconfined: boolean;
  noNewPrivileges: boolean;
  privileged: boolean;
  readOnlyRootfs: boolean;
  maskedPaths: string[];
  /** The uid the process runs as, inside. */
  uid: number;
  /** uid 0 inside the container is uid 0 on the host (no user namespace maps it away). */
  uid0IsHostRoot: boolean;
}

/** The container runs as root, and that root is the host's. */
export function runsAsHostRoot(i: Isolation): boolean {
  return i.uid === 0 && i.uid0IsHostRoot;
}

/** The report from the spec alone (also for a container that is not running). */
export function isolationFromSpec(spec: Spec, privileged: boolean): Isolation {
  const namespaces = {} as Record<Namespace, Sharing>;
  for (const n of NAMESPACES) {
    const entry = spec.linux.namespaces.find((x) => x.type === OCI_TYPE[n]);
    namespaces[n] = !entry ? 'host' : entry.path ? 'pod' : 'private';
  }
  const r = spec.linux.resources;
  const unified = r?.unified ?? {};
  // cgroup v2 files given as unified win over the v1-style fields (the shim writes them last).
  const [unifiedQuota, unifiedPeriod] = (unified['cpu.max'] ?? '').trim().split(/\s+/);
  const quota = unifiedQuota && unifiedQuota !== 'max' ? Number(unifiedQuota) : (r?.cpu?.quota ?? 0);
  const period = unifiedQuota && unifiedQuota !== 'max' ? Number(unifiedPeriod || 100_000) : r?.cpu?.period || 100_000;
  const memoryBytes = unifiedLimit(unified['memory.max']) ?? (r?.memory?.limit && r.memory.limit > 0 ? r.memory.limit : null);
  const pids = unifiedLimit(unified['pids.max']) ?? (r?.pids?.limit && r.pids.limit > 0 ? r.pids.limit : null);
  const ioWeight = !!r?.blockIO?.weight || ['io.weight', 'io.bfq.weight', 'blkio.weight', 'blkio.bfq.weight'].some((k) => unified[k]);
  const limits = { cpus: quota > 0 ? quota / period : null, memoryBytes, pids };
  const map = spec.linux.uidMappings;
  const seccomp = spec.linux.seccomp;
  return {
    namespaces,
    observed: false,
    limits,
    unbounded: RESOURCES.filter((x) => (x === 'memory' ? memoryBytes === null : x === 'pids' ? pids === null : x === 'cpu' ? limits.cpus === null : !ioWeight)),
    extraCapabilities: (spec.process.capabilities?.bounding ?? []).filter((c) => !DEFAULT_CAPABILITIES.includes(c)).sort(),
    seccomp: seccomp && (seccomp.defaultAction !== 'SCMP_ACT_ALLOW' || seccomp.syscalls?.length) ? 'filtered' : 'unconfined',
    lsm: { apparmor: spec.process.apparmorProfile || null, selinux: spec.process.selinuxLabel || null },
    lsmUnconfined: !spec.process.apparmorProfile && !spec.process.selinuxLabel,
    noNewPrivileges: spec.process.noNewPrivileges === true,
    privileged,
    readOnlyRootfs: spec.root.readonly === true,
    maskedPaths: spec.linux.maskedPaths ?? [],
    uid: spec.process.user.uid,
    // A container joining its pod's user namespace has no mapping of its own: pods with one
    // never map uid 0 to the host's (kubelet hands out ranges above 65535).
    uid0IsHostRoot: namespaces.user === 'host' || (!!map && hostIdOf(map, 0) === 0),
  };
}

/** A unified limit file's value ("max" or a count) as a number, or null for none. */
function unifiedLimit(v: string | undefined): number | null {
  const n = v === undefined ? NaN : Number(v.trim());
  return Number.isFinite(n) && n > 0 ? n : null;
}

/** /proc/<pid>/uid_map ("inside outside count" lines) -> the host uid of uid 0, or null. */
export function parseUidMap(text: string): number | null {
  return hostIdOf(
    text
      .split('\n')
      .map((l) => l.trim().split(/\s+/).map(Number))
      .filter((f) => f.length === 3 && f.every(Number.isFinite))
      .map(([containerID, hostID, size]) => ({ containerID, hostID, size })),
    0,
  );
}

async function nsId(pid: number, ns: Namespace): Promise<string | null> {
  try {
    return await fsp.readlink(`/proc/${pid}/ns/${ns}`);
  } catch {
    return null;
  }
}

/** The host's namespaces are skiffd's own (it runs in the node's; PID 1's may not be
 * readable, e.g. in a sandbox). They do not change: read once. */
let hostNamespaces: Promise<(string | null)[]> | null = null;

/** The spec's report corrected by the running process: its namespaces compared with the
 * pod's infra process and with the host's, and its uid_map. */
export async function observeIsolation(base: Isolation, pid: number, infraPid: number): Promise<Isolation> {
  if (!pid) return base;
  const hosts = await (hostNamespaces ??= Promise.all(NAMESPACES.map((n) => nsId(process.pid, n))));
  const namespaces = { ...base.namespaces };
  for (const [i, n] of NAMESPACES.entries()) {
    const host = hosts[i];
    const [mine, pod] = await Promise.all([nsId(pid, n), infraPid ? nsId(infraPid, n) : Promise.resolve(null)]);
    if (!mine) return base; // the process is gone
    namespaces[n] = mine === host ? 'host' : mine === pod ? 'pod' : 'private';
  }
  let uid0IsHostRoot = base.uid0IsHostRoot;
  try {
    uid0IsHostRoot = parseUidMap(await readProcFile(`/proc/${pid}/uid_map`)) === 0;
  } catch {
    return base;
  }
  return { ...base, namespaces, observed: true, uid0IsHostRoot };
}
