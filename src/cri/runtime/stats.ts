// ContainerStats, ListContainerStats and StreamContainerStats (filters: id prefix, pod id
// prefix, labels); PodSandboxStats, ListPodSandboxStats and StreamPodSandboxStats
// (filters: id prefix, labels); ListMetricDescriptors, and ListPodSandboxMetrics and
// StreamPodSandboxMetrics (every ready pod). A list and its stream answer the same items.
// Container and pod samples (stats/) become the CRI's ContainerStats and PodSandboxStats
// here. A pod's CPU, memory and process counts are the sums of its containers' (kubelet
// puts a pod's containers under the pod's cgroup, so the sums are the pod's, without the
// few KiB of skiff's infra process); its pressure is its own cgroup's. Pressure (PSI)
// readings become PsiStats with Total in nanoseconds; absent readings stay null: kubelet
// must not see a made-up zero stall.
import type { ContainerService } from '../../container/container_service';
import type { SandboxService } from '../../sandbox/sandbox_service';
import type { CgroupStats, Pressure, PressureLine } from '../../shim/client';
import type { BlockDeviceNames } from '../../stats/block_devices';
import type { ContainerSample, ContainerStatsService } from '../../stats/container_stats';
import type { NetworkSample, PodSample, PodStatsService } from '../../stats/pod_stats';
import type {
  ContainerStats,
  ContainerStatsFilter,
  ContainerStatsRequest,
  ContainerStatsResponse,
  IoUsage,
  ListContainerStatsRequest,
  ListContainerStatsResponse,
  ListMetricDescriptorsResponse,
  ListPodSandboxMetricsResponse,
  ListPodSandboxStatsRequest,
  ListPodSandboxStatsResponse,
  NetworkUsage,
  PodSandboxMetrics,
  PodSandboxStats,
  PodSandboxStatsFilter,
  PodSandboxStatsRequest,
  PodSandboxStatsResponse,
  PsiData,
  PsiStats,
  StreamContainerStatsRequest,
  StreamContainerStatsResponse,
  StreamPodSandboxMetricsResponse,
  StreamPodSandboxStatsRequest,
  StreamPodSandboxStatsResponse,
} from '../gen/cri';
import { ChunkBounds, STREAM_CHUNK_BOUNDS, sendChunked } from '../list_stream';
import { codec } from '../proto';
import type { Reply, StreamContext } from '../server';
import { metricDescriptors, podMetrics } from './cadvisor_metrics';
import { selectContainers, selectPods } from './convert';

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

const containerStatsCodec = codec<ContainerStats>('ContainerStats');
const podSandboxStatsCodec = codec<PodSandboxStats>('PodSandboxStats');
const podSandboxMetricsCodec = codec<PodSandboxMetrics>('PodSandboxMetrics');

type Containers = Pick<ContainerService, 'list'>;
type Pods = Pick<SandboxService, 'list'>;
type DeviceNames = Pick<BlockDeviceNames, 'name'>;

export function containerStats(containers: ContainerService, stats: ContainerStatsService) {
  return async (req: ContainerStatsRequest): Promise<Reply<ContainerStatsResponse>> => ({ stats: toContainerStats(await stats.sample(containers.mustGet(req.container_id))) });
}

/** The stats of the containers a filter selects. */
function selectedContainerStats(containers: Containers, stats: Pick<ContainerStatsService, 'sample'>, f: ContainerStatsFilter | null): Promise<Reply<ContainerStats>[]> {
  return Promise.all(selectContainers(containers.list(), f).map(async (r) => toContainerStats(await stats.sample(r))));
}

export function listContainerStats(containers: Containers, stats: Pick<ContainerStatsService, 'sample'>) {
  return async (req: ListContainerStatsRequest): Promise<Reply<ListContainerStatsResponse>> => ({ stats: await selectedContainerStats(containers, stats, req.filter) });
}

export function streamContainerStats(containers: Containers, stats: Pick<ContainerStatsService, 'sample'>, bounds: ChunkBounds = STREAM_CHUNK_BOUNDS) {
  return async (req: StreamContainerStatsRequest, ctx: StreamContext<StreamContainerStatsResponse>): Promise<void> =>
    sendChunked(ctx, (await selectedContainerStats(containers, stats, req.filter)).map(containerStatsCodec.encode), bounds);
}

export function podSandboxStats(pods: SandboxService, containers: ContainerService, stats: PodStatsService) {
  return async (req: PodSandboxStatsRequest): Promise<Reply<PodSandboxStatsResponse>> => {
    const pod = pods.mustGet(req.pod_sandbox_id);
    return { stats: toPodSandboxStats(await stats.sample(pod, containers.list().filter((c) => c.podId === pod.id))) };
  };
}

/** The stats of the pods a filter selects, each with its containers'. */
function selectedPodStats(pods: Pods, containers: Containers, stats: Pick<PodStatsService, 'sample'>, f: PodSandboxStatsFilter | null): Promise<Reply<PodSandboxStats>[]> {
  const all = containers.list();
  return Promise.all(selectPods(pods.list(), f).map(async (p) => toPodSandboxStats(await stats.sample(p, all.filter((c) => c.podId === p.id)))));
}

export function listPodSandboxStats(pods: Pods, containers: Containers, stats: Pick<PodStatsService, 'sample'>) {
  return async (req: ListPodSandboxStatsRequest): Promise<Reply<ListPodSandboxStatsResponse>> => ({ stats: await selectedPodStats(pods, containers, stats, req.filter) });
}

export function streamPodSandboxStats(pods: Pods, containers: Containers, stats: Pick<PodStatsService, 'sample'>, bounds: ChunkBounds = STREAM_CHUNK_BOUNDS) {
  return async (req: StreamPodSandboxStatsRequest, ctx: StreamContext<StreamPodSandboxStatsResponse>): Promise<void> =>
    sendChunked(ctx, (await selectedPodStats(pods, containers, stats, req.filter)).map(podSandboxStatsCodec.encode), bounds);
}

export function listMetricDescriptors() {
  return async (): Promise<Reply<ListMetricDescriptorsResponse>> => ({ descriptors: metricDescriptors() });
}

/** The metrics of every ready pod and of its containers that have not exited. */
function readyPodMetrics(pods: Pods, containers: Containers, stats: Pick<PodStatsService, 'sample'>, devices: DeviceNames): Promise<Reply<PodSandboxMetrics>[]> {
  const all = containers.list();
  const ready = pods.list().filter((p) => p.state === 'ready');
  return Promise.all(ready.map(async (p) => podMetrics(await stats.sample(p, all.filter((c) => c.podId === p.id && c.state !== 'exited')), devices)));
}

export function listPodSandboxMetrics(pods: Pods, containers: Containers, stats: Pick<PodStatsService, 'sample'>, devices: DeviceNames) {
  return async (): Promise<Reply<ListPodSandboxMetricsResponse>> => ({ pod_metrics: await readyPodMetrics(pods, containers, stats, devices) });
}

export function streamPodSandboxMetrics(pods: Pods, containers: Containers, stats: Pick<PodStatsService, 'sample'>, devices: DeviceNames, bounds: ChunkBounds = STREAM_CHUNK_BOUNDS) {
  return async (_req: unknown, ctx: StreamContext<StreamPodSandboxMetricsResponse>): Promise<void> =>
    sendChunked(ctx, (await readyPodMetrics(pods, containers, stats, devices)).map(podSandboxMetricsCodec.encode), bounds);
}
