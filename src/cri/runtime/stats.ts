// ContainerStats, ListContainerStats and StreamContainerStats (filters: id prefix, pod id
// prefix, labels); PodSandboxStats, ListPodSandboxStats and StreamPodSandboxStats
// (filters: id prefix, labels); ListMetricDescriptors, and ListPodSandboxMetrics and
// StreamPodSandboxMetrics (every ready pod). A list and its stream answer the same items.
import type { ContainerService } from '../../container/container_service';
import type { SandboxService } from '../../sandbox/sandbox_service';
import type { ContainerStatsService } from '../../stats/container_stats';
import { CriMetricsService, metricDescriptors } from '../../stats/cri_metrics';
import type { PodStatsService } from '../../stats/pod_stats';
import type {
  ContainerStats,
  ContainerStatsFilter,
  ContainerStatsRequest,
  ContainerStatsResponse,
  ListContainerStatsRequest,
  ListContainerStatsResponse,
  ListMetricDescriptorsResponse,
  ListPodSandboxMetricsResponse,
  ListPodSandboxStatsRequest,
  ListPodSandboxStatsResponse,
  PodSandboxMetrics,
  PodSandboxStats,
  PodSandboxStatsFilter,
  PodSandboxStatsRequest,
  PodSandboxStatsResponse,
  StreamContainerStatsRequest,
  StreamContainerStatsResponse,
  StreamPodSandboxMetricsResponse,
  StreamPodSandboxStatsRequest,
  StreamPodSandboxStatsResponse,
} from '../gen/cri';
import { ChunkBounds, STREAM_CHUNK_BOUNDS, sendChunked } from '../list_stream';
import { codec } from '../proto';
import type { Reply, StreamContext } from '../server';
import { selectContainers, selectPods } from './convert';

const containerStatsCodec = codec<ContainerStats>('ContainerStats');
const podSandboxStatsCodec = codec<PodSandboxStats>('PodSandboxStats');
const podSandboxMetricsCodec = codec<PodSandboxMetrics>('PodSandboxMetrics');

type Containers = Pick<ContainerService, 'list'>;
type Pods = Pick<SandboxService, 'list'>;

export function containerStats(containers: ContainerService, stats: ContainerStatsService) {
  return async (req: ContainerStatsRequest): Promise<Reply<ContainerStatsResponse>> => ({ stats: await stats.stats(containers.mustGet(req.container_id)) });
}

/** The stats of the containers a filter selects. */
function selectedContainerStats(containers: Containers, stats: Pick<ContainerStatsService, 'stats'>, f: ContainerStatsFilter | null): Promise<Reply<ContainerStats>[]> {
  return Promise.all(selectContainers(containers.list(), f).map((r) => stats.stats(r)));
}

export function listContainerStats(containers: Containers, stats: Pick<ContainerStatsService, 'stats'>) {
  return async (req: ListContainerStatsRequest): Promise<Reply<ListContainerStatsResponse>> => ({ stats: await selectedContainerStats(containers, stats, req.filter) });
}

export function streamContainerStats(containers: Containers, stats: Pick<ContainerStatsService, 'stats'>, bounds: ChunkBounds = STREAM_CHUNK_BOUNDS) {
  return async (req: StreamContainerStatsRequest, ctx: StreamContext<StreamContainerStatsResponse>): Promise<void> =>
    sendChunked(ctx, (await selectedContainerStats(containers, stats, req.filter)).map(containerStatsCodec.encode), bounds);
}

export function podSandboxStats(pods: SandboxService, containers: ContainerService, stats: PodStatsService) {
  return async (req: PodSandboxStatsRequest): Promise<Reply<PodSandboxStatsResponse>> => {
    const pod = pods.mustGet(req.pod_sandbox_id);
    return { stats: await stats.stats(pod, containers.list().filter((c) => c.podId === pod.id)) };
  };
}

/** The stats of the pods a filter selects, each with its containers'. */
function selectedPodStats(pods: Pods, containers: Containers, stats: Pick<PodStatsService, 'stats'>, f: PodSandboxStatsFilter | null): Promise<Reply<PodSandboxStats>[]> {
  const all = containers.list();
  return Promise.all(selectPods(pods.list(), f).map((p) => stats.stats(p, all.filter((c) => c.podId === p.id))));
}

export function listPodSandboxStats(pods: Pods, containers: Containers, stats: Pick<PodStatsService, 'stats'>) {
  return async (req: ListPodSandboxStatsRequest): Promise<Reply<ListPodSandboxStatsResponse>> => ({ stats: await selectedPodStats(pods, containers, stats, req.filter) });
}

export function streamPodSandboxStats(pods: Pods, containers: Containers, stats: Pick<PodStatsService, 'stats'>, bounds: ChunkBounds = STREAM_CHUNK_BOUNDS) {
  return async (req: StreamPodSandboxStatsRequest, ctx: StreamContext<StreamPodSandboxStatsResponse>): Promise<void> =>
    sendChunked(ctx, (await selectedPodStats(pods, containers, stats, req.filter)).map(podSandboxStatsCodec.encode), bounds);
}

export function listMetricDescriptors() {
  return async (): Promise<Reply<ListMetricDescriptorsResponse>> => ({ descriptors: metricDescriptors() });
}

/** The metrics of every ready pod. */
function readyPodMetrics(pods: Pods, containers: Containers, metrics: Pick<CriMetricsService, 'podMetrics'>): Promise<Reply<PodSandboxMetrics>[]> {
  const all = containers.list();
  const ready = pods.list().filter((p) => p.state === 'ready');
  return Promise.all(ready.map((p) => metrics.podMetrics(p, all.filter((c) => c.podId === p.id))));
}

export function listPodSandboxMetrics(pods: Pods, containers: Containers, metrics: Pick<CriMetricsService, 'podMetrics'>) {
  return async (): Promise<Reply<ListPodSandboxMetricsResponse>> => ({ pod_metrics: await readyPodMetrics(pods, containers, metrics) });
}

export function streamPodSandboxMetrics(pods: Pods, containers: Containers, metrics: Pick<CriMetricsService, 'podMetrics'>, bounds: ChunkBounds = STREAM_CHUNK_BOUNDS) {
  return async (_req: unknown, ctx: StreamContext<StreamPodSandboxMetricsResponse>): Promise<void> =>
    sendChunked(ctx, (await readyPodMetrics(pods, containers, metrics)).map(podSandboxMetricsCodec.encode), bounds);
}
