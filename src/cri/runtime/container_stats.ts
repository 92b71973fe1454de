// ContainerStats, ListContainerStats and StreamContainerStats (filters: id prefix, pod id
// prefix, labels): each container's sample (stats/) as CRI ContainerStats. A list and its
// stream answer the same items.
import type { ContainerService } from '../../container/container_service';
import type { ContainerStatsService } from '../../stats/container_stats';
import type { ContainerStats, ContainerStatsFilter, ContainerStatsRequest, ContainerStatsResponse, ListContainerStatsRequest, ListContainerStatsResponse, StreamContainerStatsRequest, StreamContainerStatsResponse } from '../gen/cri';
import { ChunkBounds, STREAM_CHUNK_BOUNDS, sendChunked } from '../list_stream';
import { codec } from '../proto';
import type { Reply, StreamContext } from '../server';
import { selectContainers } from './convert';
import { toContainerStats } from './stats';

const containerStatsCodec = codec<ContainerStats>('ContainerStats');

type Containers = Pick<ContainerService, 'list'>;

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
