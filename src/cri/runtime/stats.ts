// Container and pod samples (stats/) as the CRI's ContainerStats and PodSandboxStats, for
// the stats calls (container_stats.ts, sandbox_stats.ts). A pod's CPU, memory and process
// counts are the sums of its containers' (kubelet puts a pod's containers under the pod's
// cgroup, so the sums are the pod's, without the few KiB of skiff's infra process); its
// pressure is its own cgroup's. Pressure (PSI) readings become PsiStats with Total in
// nanoseconds; absent readings stay null: kubelet must not see a made-up zero stall.
import type { CgroupStats, Pressure, PressureLine } from '../../shim/client';
import type { ContainerSample } from '../../stats/container_stats';
import type { NetworkSample, PodSample } from '../../stats/pod_stats';
import type { ContainerStats, IoUsage, NetworkUsage, PodSandboxStats, PsiData, PsiStats } from '../gen/cri';
import type { Reply } from '../server';

function psiData(l: PressureLine): Reply<PsiData> {
  return { Total: l.totalUs * 1000, Avg10: l.avg10, Avg60: l.avg60, Avg300: l.avg300 };
}

/** PsiStats of one resource; null without a reading, Full null where the file has no "full" line. */
export function psiStats(p: Pressure | null | undefined): Reply<PsiStats> | null {
  if (!p) return null;
  return { Some: psiData(p.some), Full: p.full ? psiData(p.full) : null };
}

/** IoUsage carries only io pressure: null where the cgroup has none. */
export function ioUsage(s: CgroupStats): Reply<IoUsage> | null {
  const psi = psiStats(s.psi?.io);
  return psi ? { timestamp: s.timestamp, psi } : null;
}

export function toContainerStats(sample: ContainerSample): Reply<ContainerStats> {
  const r = sample.container;
  const out: Reply<ContainerStats> = {
    attributes: { id: r.id, metadata: r.config.metadata, labels: r.config.labels, annotations: r.config.annotations },
  };
  const layer = sample.writableLayer;
  if (layer) out.writable_layer = { timestamp: layer.timestamp, fs_id: { mountpoint: layer.mountpoint }, used_bytes: { value: layer.bytes }, inodes_used: { value: layer.inodes } };
  const s = sample.cgroup;
  if (!s) return out;
  out.cpu = {
    timestamp: s.timestamp,
    usage_core_nano_seconds: { value: s.cpu.usageNs },
    usage_nano_cores: sample.cpuNanoCores !== null ? { value: sample.cpuNanoCores } : null,
    psi: psiStats(s.psi?.cpu),
  };
  const m = s.memory;
  out.memory = {
    timestamp: s.timestamp,
    working_set_bytes: { value: m.workingSetBytes },
    usage_bytes: { value: m.usageBytes },
    rss_bytes: { value: m.rssBytes },
    page_faults: { value: m.pageFaults },
    major_page_faults: { value: m.majorPageFaults },
    available_bytes: m.limitBytes !== null ? { value: Math.max(0, m.limitBytes - m.workingSetBytes) } : null,
    psi: psiStats(s.psi?.memory),
  };
  out.io = ioUsage(s);
  if (s.swap)
    out.swap = {
      timestamp: s.timestamp,
      swap_usage_bytes: { value: s.swap.usageBytes },
      swap_available_bytes: s.swap.limitBytes !== null ? { value: Math.max(0, s.swap.limitBytes - s.swap.usageBytes) } : null,
    };
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

function toNetworkUsage(n: NetworkSample): Reply<NetworkUsage> {
  const usage = (i: NetworkSample['interfaces'][number]) => ({ name: i.name, rx_bytes: { value: i.rxBytes }, rx_errors: { value: i.rxErrors }, tx_bytes: { value: i.txBytes }, tx_errors: { value: i.txErrors } });
  return { timestamp: n.timestamp, default_interface: n.defaultInterface && usage(n.defaultInterface), interfaces: n.interfaces.map(usage) };
}

export function toPodSandboxStats(sample: PodSample): Reply<PodSandboxStats> {
  const { pod, timestamp: ts, cgroup: own } = sample;
  const containers = sample.containers.map(toContainerStats);
  const cpus = containers.map((s) => s.cpu).filter((c) => !!c);
  const mems = containers.map((s) => s.memory).filter((m) => !!m);
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
      network: sample.network && toNetworkUsage(sample.network),
      process: { timestamp: ts, process_count: { value: sample.containers.reduce((n, s) => n + (s.cgroup?.pids.current ?? 0), 0) } },
      containers,
    },
  };
}
