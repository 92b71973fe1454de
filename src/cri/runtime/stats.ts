// ContainerStats and ListContainerStats (filters: id prefix, pod id prefix, labels);
// PodSandboxStats and ListPodSandboxStats (filters: id prefix, labels);
// ListMetricDescriptors and ListPodSandboxMetrics (every ready pod).
import type { ContainerService } from '../../container/container_service';
import type { SandboxService } from '../../sandbox/sandbox_service';
import type { ContainerStatsService } from '../../stats/container_stats';
import { CriMetricsService, metricDescriptors } from '../../stats/cri_metrics';
import type { PodStatsService } from '../../stats/pod_stats';
import type {
  ContainerStatsRequest,
  ContainerStatsResponse,
  ListContainerStatsRequest,
  ListContainerStatsResponse,
  ListMetricDescriptorsResponse,
  ListPodSandboxMetricsResponse,
  ListPodSandboxStatsRequest,
  ListPodSandboxStatsResponse,
  PodSandboxStatsRequest,
  PodSandboxStatsResponse,
} from '../gen/cri';
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

export function podSandboxStats(pods: SandboxService, containers: ContainerService, stats: PodStatsService) {
  return async (req: PodSandboxStatsRequest): Promise<Reply<PodSandboxStatsResponse>> => {
    const pod = pods.mustGet(req.pod_sandbox_id);
    return { stats: await stats.stats(pod, containers.list().filter((c) => c.podId === pod.id)) };
  };
}

export function listPodSandboxStats(pods: SandboxService, containers: ContainerService, stats: PodStatsService) {
  return async (req: ListPodSandboxStatsRequest): Promise<Reply<ListPodSandboxStatsResponse>> => {
    const f = req.filter;
    const all = containers.list();
    const list = pods
      .list()
      .filter((p) => !f || !f.id || p.id.startsWith(f.id))
      .filter((p) => !f || matchesLabels(p.config.labels, f.label_selector));
    return { stats: await Promise.all(list.map((p) => stats.stats(p, all.filter((c) => c.podId === p.id)))) };
  };
}

export function listMetricDescriptors() {
  return async (): Promise<Reply<ListMetricDescriptorsResponse>> => ({ descriptors: metricDescriptors() });
}

export function listPodSandboxMetrics(pods: SandboxService, containers: ContainerService, metrics: CriMetricsService) {
  return async (): Promise<Reply<ListPodSandboxMetricsResponse>> => {
    const all = containers.list();
    const ready = pods.list().filter((p) => p.state === 'ready');
    return { pod_metrics: await Promise.all(ready.map((p) => metrics.podMetrics(p, all.filter((c) => c.podId === p.id)))) };
  };
}
