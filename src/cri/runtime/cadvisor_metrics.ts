// ListMetricDescriptors and ListPodSandboxMetrics' series: pod and container metrics under
// cAdvisor's names and labels, for kubelet's /metrics/cadvisor when it takes them from the
// runtime (feature gate PodAndContainerStatsFromCRI) instead of running cAdvisor. kubelet
// builds a Prometheus descriptor from each MetricDescriptor once and pairs every Metric's
// label_values with its label_keys, so every series here carries exactly its keys.
// Pressure (PSI) and block IO series come from the container's cgroup and, for the pod's
// own series (container ""), from the pod cgroup; a series whose source the host lacks is
// left out, never sent as zero.
import type { ContainerRecord } from '../../container/container_service';
import type { BlockDeviceIo, CgroupStats, Pressure } from '../../shim/client';
import type { BlockDeviceNames } from '../../stats/block_devices';
import type { InterfaceCounters, PodSample } from '../../stats/pod_stats';
import { MetricType } from '../gen/cri';
import type { ContainerMetrics, Metric, MetricDescriptor, PodSandboxMetrics } from '../gen/cri';
import type { Reply } from '../server';

/** cAdvisor's labels on a container series, as kubelet's /metrics/cadvisor shows them. */
const LABELS = ['container', 'id', 'image', 'name', 'namespace', 'pod'];
const NET_LABELS = [...LABELS, 'interface'];
const DEVICE_LABELS = [...LABELS, 'device'];

interface Def {
  help: string;
  type: MetricType;
  labels: string[];
}

const CONTAINER: Record<string, Def & { value: (s: CgroupStats, r: ContainerRecord) => number | null }> = {
  container_cpu_usage_seconds_total: { help: 'Cumulative cpu time consumed in seconds.', type: MetricType.COUNTER, labels: LABELS, value: (s) => Math.floor(s.cpu.usageNs / 1e9) },
  container_cpu_user_seconds_total: { help: 'Cumulative user cpu time consumed in seconds.', type: MetricType.COUNTER, labels: LABELS, value: (s) => Math.floor(s.cpu.userNs / 1e9) },
  container_cpu_system_seconds_total: { help: 'Cumulative system cpu time consumed in seconds.', type: MetricType.COUNTER, labels: LABELS, value: (s) => Math.floor(s.cpu.systemNs / 1e9) },
  container_memory_usage_bytes: { help: 'Current memory usage in bytes, including all memory regardless of when it was accessed', type: MetricType.GAUGE, labels: LABELS, value: (s) => s.memory.usageBytes },
  container_memory_working_set_bytes: { help: 'Current working set in bytes.', type: MetricType.GAUGE, labels: LABELS, value: (s) => s.memory.workingSetBytes },
  container_memory_rss: { help: 'Size of RSS in bytes.', type: MetricType.GAUGE, labels: LABELS, value: (s) => s.memory.rssBytes },
  container_memory_cache: { help: 'Number of bytes of page cache memory.', type: MetricType.GAUGE, labels: LABELS, value: (s) => s.memory.cacheBytes },
  container_memory_swap: { help: 'Container swap usage in bytes.', type: MetricType.GAUGE, labels: LABELS, value: (s) => s.swap?.usageBytes ?? null },
  container_oom_events_total: { help: 'Count of out of memory events observed for the container', type: MetricType.COUNTER, labels: LABELS, value: (s) => s.memory.oomKills },
  container_spec_memory_limit_bytes: { help: 'Memory limit for the container.', type: MetricType.GAUGE, labels: LABELS, value: (s) => s.memory.limitBytes ?? 0 },
  container_processes: { help: 'Number of processes running inside the container.', type: MetricType.GAUGE, labels: LABELS, value: (s) => s.pids.current },
  container_start_time_seconds: { help: 'Start time of the container since unix epoch in seconds.', type: MetricType.GAUGE, labels: LABELS, value: (_s, r) => Math.floor(r.startedAt / 1e9) },
};

const NETWORK: Record<string, Def & { field: keyof Omit<InterfaceCounters, 'name'> }> = {
  container_network_receive_bytes_total: { help: 'Cumulative count of bytes received', type: MetricType.COUNTER, labels: NET_LABELS, field: 'rxBytes' },
  container_network_transmit_bytes_total: { help: 'Cumulative count of bytes transmitted', type: MetricType.COUNTER, labels: NET_LABELS, field: 'txBytes' },
  container_network_receive_errors_total: { help: 'Cumulative count of errors encountered while receiving', type: MetricType.COUNTER, labels: NET_LABELS, field: 'rxErrors' },
  container_network_transmit_errors_total: { help: 'Cumulative count of errors encountered while transmitting', type: MetricType.COUNTER, labels: NET_LABELS, field: 'txErrors' },
};

/** cAdvisor's PSI counters: "waiting" is the some line, "stalled" the full one. */
const PRESSURE: Record<string, Def & { resource: 'cpu' | 'memory' | 'io'; line: 'some' | 'full' }> = {
  container_pressure_cpu_stalled_seconds_total: { help: 'Total time duration no tasks in the container could make progress due to CPU congestion.', type: MetricType.COUNTER, labels: LABELS, resource: 'cpu', line: 'full' },
  container_pressure_cpu_waiting_seconds_total: { help: 'Total time duration tasks in the container have waited due to CPU congestion.', type: MetricType.COUNTER, labels: LABELS, resource: 'cpu', line: 'some' },
  container_pressure_memory_stalled_seconds_total: { help: 'Total time duration no tasks in the container could make progress due to memory congestion.', type: MetricType.COUNTER, labels: LABELS, resource: 'memory', line: 'full' },
  container_pressure_memory_waiting_seconds_total: { help: 'Total time duration tasks in the container have waited due to memory congestion.', type: MetricType.COUNTER, labels: LABELS, resource: 'memory', line: 'some' },
  container_pressure_io_stalled_seconds_total: { help: 'Total time duration no tasks in the container could make progress due to IO congestion.', type: MetricType.COUNTER, labels: LABELS, resource: 'io', line: 'full' },
  container_pressure_io_waiting_seconds_total: { help: 'Total time duration tasks in the container have waited due to IO congestion.', type: MetricType.COUNTER, labels: LABELS, resource: 'io', line: 'some' },
};

/** cAdvisor's block IO counters per device (from io.stat on v2, blkio throttle files on v1). */
const BLOCK_IO: Record<string, Def & { field: keyof Omit<BlockDeviceIo, 'major' | 'minor'> }> = {
  container_fs_reads_bytes_total: { help: 'Cumulative count of bytes read', type: MetricType.COUNTER, labels: DEVICE_LABELS, field: 'readBytes' },
  container_fs_reads_total: { help: 'Cumulative count of reads completed', type: MetricType.COUNTER, labels: DEVICE_LABELS, field: 'reads' },
  container_fs_writes_bytes_total: { help: 'Cumulative count of bytes written', type: MetricType.COUNTER, labels: DEVICE_LABELS, field: 'writeBytes' },
  container_fs_writes_total: { help: 'Cumulative count of writes completed', type: MetricType.COUNTER, labels: DEVICE_LABELS, field: 'writes' },
};

const FS_USAGE = 'container_fs_usage_bytes';
const FS_DEF: Def = { help: 'Number of bytes that are consumed by the container on this filesystem.', type: MetricType.GAUGE, labels: DEVICE_LABELS };

export function metricDescriptors(): Reply<MetricDescriptor>[] {
  const all: [string, Def][] = [...Object.entries(CONTAINER), ...Object.entries(NETWORK), ...Object.entries(PRESSURE), ...Object.entries(BLOCK_IO), [FS_USAGE, FS_DEF]];
  return all.map(([name, d]) => ({ name, help: d.help, label_keys: d.labels }));
}

/** A pressure total in whole seconds, as cAdvisor's container_pressure_* counters (CRI values are integers). */
export function pressureSeconds(p: Pressure | null | undefined, line: 'some' | 'full'): number | null {
  const l = p?.[line];
  return l ? Math.floor(l.totalUs / 1e6) : null;
}

type MetricOf = (name: string, type: MetricType, labels: string[], value: number) => Reply<Metric>;
type DeviceNames = Pick<BlockDeviceNames, 'name'>;

/** Pressure and per-device IO series of one cgroup's readings. Devices sysfs cannot name
 * are left out: two unnamed ones would make duplicate series, which fail a scrape. */
async function cgroupSeries(s: CgroupStats, labels: string[], metric: MetricOf, devices: DeviceNames): Promise<Reply<Metric>[]> {
  const out: Reply<Metric>[] = [];
  for (const [name, d] of Object.entries(PRESSURE)) {
    const v = pressureSeconds(s.psi?.[d.resource], d.line);
    if (v !== null) out.push(metric(name, d.type, labels, v));
  }
  for (const dev of s.io?.devices ?? []) {
    const device = await devices.name(dev.major, dev.minor);
    if (device) for (const [name, d] of Object.entries(BLOCK_IO)) out.push(metric(name, d.type, [...labels, device], dev[d.field]));
  }
  return out;
}

/** The series of a pod and of the containers sampled with it; devices are named through `devices`. */
export async function podMetrics(sample: PodSample, devices: DeviceNames): Promise<Reply<PodSandboxMetrics>> {
  const { pod, timestamp } = sample;
  const m = pod.config.metadata;
  const base = (container: string, id: string, image: string, name: string) => [container, id, image, name, m?.namespace ?? '', m?.name ?? ''];
  const metric: MetricOf = (name, type, labels, value) => ({ name, timestamp, metric_type: type, label_values: labels, value: { value: Math.max(0, Math.round(value)) } });

  const podLabels = base('', pod.cgroupParent, '', pod.id);
  const podSeries: Reply<Metric>[] = sample.cgroup ? await cgroupSeries(sample.cgroup, podLabels, metric, devices) : [];
  for (const i of sample.network?.interfaces ?? [])
    for (const [name, d] of Object.entries(NETWORK)) podSeries.push(metric(name, d.type, [...podLabels, i.name], i[d.field]));

  const containerMetrics: Reply<ContainerMetrics>[] = await Promise.all(
    sample.containers.map(async (s) => {
      const c = s.container;
      const labels = base(c.config.metadata?.name ?? '', `${pod.cgroupParent}/${c.id}`, c.config.image?.image || c.imageRef, c.id);
      const out: Reply<Metric>[] = [];
      if (s.cgroup) {
        for (const [name, d] of Object.entries(CONTAINER)) {
          const v = d.value(s.cgroup, c);
          if (v !== null) out.push(metric(name, d.type, labels, v));
        }
        out.push(...(await cgroupSeries(s.cgroup, labels, metric, devices)));
      }
      const layer = s.writableLayer;
      if (layer) out.push(metric(FS_USAGE, FS_DEF.type, [...labels, layer.mountpoint], layer.bytes));
      return { container_id: c.id, metrics: out };
    }),
  );
  return { pod_sandbox_id: pod.id, metrics: podSeries, container_metrics: containerMetrics };
}
