// ContainerStats and ListContainerStats (filters: id prefix, pod id prefix, labels).
import type { ContainerService } from '../../container/container_service';
import type { ContainerStatsService } from '../../stats/container_stats';
import type { ContainerStatsRequest, ContainerStatsResponse, ListContainerStatsRequest, ListContainerStatsResponse } from '../gen/cri';
import type { Reply } from '../server';
import { matchesLabels } from './convert';

export function containerStats(containers: ContainerService, stats: ContainerStatsService) {
  return async (req: ContainerStatsRequest): Promise<Reply<ContainerStatsResponse>> => ({ stats: await stats.stats(containers.mustGet(req.container_id)) });
}

export function listContainerStats(containers: ContainerService, stats: ContainerStatsService) {
  return async (req: ListContainerStatsRequest): Promise<Reply<ListContainerStatsResponse>> => {
    const f = req.filter;
    const list = containers
      .list()
      .filter((r) => !f || !f.id || r.id.startsWith(f.id))
      .filter((r) => !f || !f.pod_sandbox_id || r.podId.startsWith(f.pod_sandbox_id))
      .filter((r) => !f || matchesLabels(r.config.labels, f.label_selector));
    return { stats: await Promise.all(list.map((r) => stats.stats(r))) };
  };
}
