// Pod samples: a sample of each of the pod's containers, the readings of the pod cgroup
// itself (its pressure: stall times do not add up over containers that stall at the same
// time), and per-interface network counters read from the pod's network namespace through
// /proc/<infra pid>/net/dev. cri/runtime/stats.ts turns a sample into the CRI's
// PodSandboxStats, and cri/runtime/cadvisor_metrics.ts into cAdvisor's series.
import type { ContainerRecord } from '../container/container_service';
import type { PodRecord } from '../sandbox/pod_registry';
import type { SandboxService } from '../sandbox/sandbox_service';
import type { CgroupStats } from '../shim/client';
import type { ContainerSample, ContainerStatsService } from './container_stats';
import { readProcFile } from '../sys/proc_file';

/** The interface CNI gives a pod, reported as its default one. */
const POD_INTERFACE = 'eth0';

/** One interface's counters since it came up. */
export interface InterfaceCounters {
  name: string;
  rxBytes: number;
  rxErrors: number;
  txBytes: number;
  txErrors: number;
}

export interface NetworkSample {
  /** Nanoseconds since the epoch. */
  timestamp: number;
  interfaces: InterfaceCounters[];
  /** The pod's own (eth0), else the first one. */
  defaultInterface: InterfaceCounters | null;
}

export interface PodSample {
  pod: PodRecord;
  /** Nanoseconds since the epoch. */
  timestamp: number;
  /** The pod cgroup's own readings; null once the pod stopped, or where it has none. */
  cgroup: CgroupStats | null;
  /** null for a host-network pod, or one that is not ready. */
  network: NetworkSample | null;
  containers: ContainerSample[];
}

/** /proc/net/dev: rx bytes, packets, errs... (8 fields), then tx bytes, packets, errs. */
export function parseNetDev(text: string): InterfaceCounters[] {
  const out: InterfaceCounters[] = [];
  for (const line of text.split('\n').slice(2)) {
    const m = /^\s*([^:\s]+):\s*(.*)$/.exec(line);
    if (!m || m[1] === 'lo') continue;
    const f = m[2].trim().split(/\s+/).map(Number);
    if (f.length < 16) continue;
    out.push({ name: m[1], rxBytes: f[0], rxErrors: f[2], txBytes: f[8], txErrors: f[10] });
  }
  return out;
}

export class PodStatsService {
  constructor(
    private readonly containers: ContainerStatsService,
    private readonly sandboxes: SandboxService,
  ) {}

  /** The pod cgroup's own readings from the pod's shim; null once the pod stopped. */
  private async cgroup(pod: PodRecord): Promise<CgroupStats | null> {
    const shim = pod.state === 'ready' ? this.sandboxes.shim(pod.id) : undefined;
    return (await shim?.podStats().catch(() => undefined)) ?? null; // no pod cgroup, or the shim went away
  }

  private async network(pod: PodRecord, timestamp: number): Promise<NetworkSample | null> {
    if (pod.hostNetwork || pod.state !== 'ready' || !pod.infraPid) return null;
    let text: string;
    try {
      text = await readProcFile(`/proc/${pod.infraPid}/net/dev`);
    } catch {
      return null; // the pod stopped meanwhile
    }
    const interfaces = parseNetDev(text);
    return { timestamp, interfaces, defaultInterface: interfaces.find((i) => i.name === POD_INTERFACE) ?? interfaces[0] ?? null };
  }

  /** The pod with these containers of it. */
  async sample(pod: PodRecord, containers: ContainerRecord[]): Promise<PodSample> {
    const [samples, cgroup] = await Promise.all([Promise.all(containers.map((c) => this.containers.sample(c))), this.cgroup(pod)]);
    const timestamp = Date.now() * 1e6;
    return { pod, timestamp, cgroup, network: await this.network(pod, timestamp), containers: samples };
  }
}
