// Pod sandbox stats for the CRI: the sums of its containers' CPU, memory and process
// counts (kubelet puts a pod's containers under the pod's cgroup, so the sums are the
// pod's, without the few KiB of skiff's infra process), each container's own stats,
// per-interface network counters read from the pod's network namespace through
// /proc/<infra pid>/net/dev, and the pressure (PSI) of the pod cgroup itself: stall
// times do not add up over containers that stall at the same time.
import { promises as fsp } from 'fs';
import type { ContainerRecord } from '../container/container_service';
import type { NetworkInterfaceUsage, NetworkUsage, PodSandboxStats } from '../cri/gen/cri';
import type { Reply } from '../cri/server';
import type { PodRecord, SandboxService } from '../sandbox/sandbox_service';
import type { CgroupStats } from '../shim/client';
import type { ContainerStatsService } from './container_stats';
import { ioUsage, psiStats } from './pressure';

/** The interface CNI gives a pod, reported as its default one. */
const POD_INTERFACE = 'eth0';

/** /proc/net/dev: rx bytes, packets, errs... (8 fields), then tx bytes, packets, errs. */
export function parseNetDev(text: string): Reply<NetworkInterfaceUsage>[] {
  const out: Reply<NetworkInterfaceUsage>[] = [];
  for (const line of text.split('\n').slice(2)) {
    const m = /^\s*([^:\s]+):\s*(.*)$/.exec(line);
    if (!m || m[1] === 'lo') continue;
    const f = m[2].trim().split(/\s+/).map(Number);
    if (f.length < 16) continue;
    out.push({ name: m[1], rx_bytes: { value: f[0] }, rx_errors: { value: f[2] }, tx_bytes: { value: f[8] }, tx_errors: { value: f[10] } });
  }
  return out;
}

/** Sums a field over samples; null when any sample lacks it (a partial sum would mislead). */
function sum(values: ({ value?: number | null } | null | undefined)[]): { value: number } | null {
  let total = 0;
  for (const v of values) {
    if (typeof v?.value !== 'number') return null;
    total += v.value;
  }
  return { value: total };
}

export class PodStatsService {
  constructor(
    private readonly containers: ContainerStatsService,
    private readonly sandboxes: SandboxService,
  ) {}

  /** The pod cgroup's own readings from the pod's shim; undefined once the pod stopped. */
  async cgroup(pod: PodRecord): Promise<CgroupStats | undefined> {
    const shim = pod.state === 'ready' ? this.sandboxes.shim(pod.id) : undefined;
    return shim?.podStats().catch(() => undefined); // no pod cgroup, or the shim went away
  }

  async network(pod: PodRecord, ts: number): Promise<Reply<NetworkUsage> | null> {
    if (pod.hostNetwork || pod.state !== 'ready' || !pod.infraPid) return null;
    let text: string;
    try {
      text = await fsp.readFile(`/proc/${pod.infraPid}/net/dev`, 'utf8');
    } catch {
      return null; // the pod stopped meanwhile
    }
    const interfaces = parseNetDev(text);
    return { timestamp: ts, default_interface: interfaces.find((i) => i.name === POD_INTERFACE) ?? interfaces[0] ?? null, interfaces };
  }

  async stats(pod: PodRecord, containers: ContainerRecord[]): Promise<Reply<PodSandboxStats>> {
    const [samples, own] = await Promise.all([Promise.all(containers.map((c) => this.containers.sample(c))), this.cgroup(pod)]);
    const ts = Date.now() * 1e6;
    const cpus = samples.map((s) => s.stats.cpu).filter((c) => !!c);
    const mems = samples.map((s) => s.stats.memory).filter((m) => !!m);
    return {
      attributes: { id: pod.id, metadata: pod.config.metadata, labels: pod.config.labels, annotations: pod.config.annotations },
      linux: {
        cpu: {
          timestamp: ts,
          usage_core_nano_seconds: sum(cpus.map((c) => c.usage_core_nano_seconds)),
          usage_nano_cores: sum(cpus.map((c) => c.usage_nano_cores)),
          psi: psiStats(own?.psi?.cpu),
        },
        memory: {
          timestamp: ts,
          working_set_bytes: sum(mems.map((m) => m.working_set_bytes)),
          usage_bytes: sum(mems.map((m) => m.usage_bytes)),
          rss_bytes: sum(mems.map((m) => m.rss_bytes)),
          page_faults: sum(mems.map((m) => m.page_faults)),
          major_page_faults: sum(mems.map((m) => m.major_page_faults)),
          // Only meaningful when every container has a limit.
          available_bytes: mems.length ? sum(mems.map((m) => m.available_bytes)) : null,
          psi: psiStats(own?.psi?.memory),
        },
        io: own ? ioUsage(own) : null,
        network: await this.network(pod, ts),
        process: { timestamp: ts, process_count: { value: samples.reduce((n, s) => n + s.processes, 0) } },
        containers: samples.map((s) => s.stats),
      },
    };
  }
}
