// ListMetricDescriptors, and ListPodSandboxMetrics and StreamPodSandboxMetrics: cAdvisor's
// series (cadvisor_metrics.ts) of every ready pod and of its containers that have not
// exited. A list and its stream answer the same items.
import type { ContainerService } from '../../container/container_service';
import type { SandboxService } from '../../sandbox/sandbox_service';
import type { BlockDeviceNames } from '../../stats/block_devices';
import type { PodStatsService } from '../../stats/pod_stats';
import type { ListMetricDescriptorsResponse, ListPodSandboxMetricsResponse, PodSandboxMetrics, StreamPodSandboxMetricsResponse } from '../gen/cri';
import { ChunkBounds, STREAM_CHUNK_BOUNDS, sendChunked } from '../list_stream';
import { codec } from '../proto';
import type { Reply, StreamContext } from '../server';
import { metricDescriptors, podMetrics } from './cadvisor_metrics';

const podSandboxMetricsCodec = codec<PodSandboxMetrics>('PodSandboxMetrics');

type Containers = Pick<ContainerService, 'inPod'>;
type Pods = Pick<SandboxService, 'list'>;
type DeviceNames = Pick<BlockDeviceNames, 'name'>;

export function listMetricDescriptors() {
  return async (): Promise<Reply<ListMetricDescriptorsResponse>> => ({ descriptors: metricDescriptors() });
}

/** The metrics of every ready pod and of its containers that have not exited. */
function readyPodMetrics(pods: Pods, containers: Containers, stats: Pick<PodStatsService, 'sample'>, devices: DeviceNames): Promise<Reply<PodSandboxMetrics>[]> {
  const ready = pods.list().filter((p) => p.state === 'ready');
  return Promise.all(ready.map(async (p) => podMetrics(await stats.sample(p, containers.inPod(p.id).filter((c) => c.state !== 'exited')), devices)));
}

export function listPodSandboxMetrics(pods: Pods, containers: Containers, stats: Pick<PodStatsService, 'sample'>, devices: DeviceNames) {
  return async (): Promise<Reply<ListPodSandboxMetricsResponse>> => ({ pod_metrics: await readyPodMetrics(pods, containers, stats, devices) });
}

export function streamPodSandboxMetrics(pods: Pods, containers: Containers, stats: Pick<PodStatsService, 'sample'>, devices: DeviceNames, bounds: ChunkBounds = STREAM_CHUNK_BOUNDS) {
  return async (_req: unknown, ctx: StreamContext<StreamPodSandboxMetricsResponse>): Promise<void> =>
    sendChunked(ctx, (await readyPodMetrics(pods, containers, stats, devices)).map(podSandboxMetricsCodec.encode), bounds);
}
