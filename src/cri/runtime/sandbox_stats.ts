// PodSandboxStats, ListPodSandboxStats and StreamPodSandboxStats (filters: id prefix,
// labels): each pod's sample with its containers' (stats/) as CRI PodSandboxStats. A list
// and its stream answer the same items.
import type { ContainerService } from '../../container/container_service';
import type { SandboxService } from '../../sandbox/sandbox_service';
import type { PodStatsService } from '../../stats/pod_stats';
import type { ListPodSandboxStatsRequest, ListPodSandboxStatsResponse, PodSandboxStats, PodSandboxStatsFilter, PodSandboxStatsRequest, PodSandboxStatsResponse, StreamPodSandboxStatsRequest, StreamPodSandboxStatsResponse } from '../gen/cri';
import { ChunkBounds, STREAM_CHUNK_BOUNDS, sendChunked } from '../list_stream';
import { codec } from '../proto';
import type { Reply, StreamContext } from '../server';
import { selectPods } from './convert';
import { toPodSandboxStats } from './stats';

const podSandboxStatsCodec = codec<PodSandboxStats>('PodSandboxStats');

type Containers = Pick<ContainerService, 'inPod'>;
type Pods = Pick<SandboxService, 'list'>;

export function podSandboxStats(pods: SandboxService, containers: ContainerService, stats: PodStatsService) {
  return async (req: PodSandboxStatsRequest): Promise<Reply<PodSandboxStatsResponse>> => {
    const pod = pods.mustGet(req.pod_sandbox_id);
    return { stats: toPodSandboxStats(await stats.sample(pod, containers.inPod(pod.id))) };
  };
}

/** The stats of the pods a filter selects, each with its containers'. */
function selectedPodStats(pods: Pods, containers: Containers, stats: Pick<PodStatsService, 'sample'>, f: PodSandboxStatsFilter | null): Promise<Reply<PodSandboxStats>[]> {
  return Promise.all(selectPods(pods.list(), f).map(async (p) => toPodSandboxStats(await stats.sample(p, containers.inPod(p.id)))));
}

export function listPodSandboxStats(pods: Pods, containers: Containers, stats: Pick<PodStatsService, 'sample'>) {
  return async (req: ListPodSandboxStatsRequest): Promise<Reply<ListPodSandboxStatsResponse>> => ({ stats: await selectedPodStats(pods, containers, stats, req.filter) });
}

export function streamPodSandboxStats(pods: Pods, containers: Containers, stats: Pick<PodStatsService, 'sample'>, bounds: ChunkBounds = STREAM_CHUNK_BOUNDS) {
  return async (req: StreamPodSandboxStatsRequest, ctx: StreamContext<StreamPodSandboxStatsResponse>): Promise<void> =>
    sendChunked(ctx, (await selectedPodStats(pods, containers, stats, req.filter)).map(podSandboxStatsCodec.encode), bounds);
}
