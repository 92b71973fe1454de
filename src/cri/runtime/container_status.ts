// ContainerStatus: the container's status; with `verbose`, its pid, bundle, layers, config
// and isolation as JSON under "info".
import type { ContainerService } from '../../container/container_service';
import type { ContainerStatusRequest, ContainerStatusResponse } from '../gen/cri';
import type { Reply } from '../server';
import { toContainerStatus } from './convert';

export function containerStatus(containers: ContainerService) {
  return async (req: ContainerStatusRequest): Promise<Reply<ContainerStatusResponse>> => {
    const r = containers.mustGet(req.container_id);
    const info: Record<string, string> = {};
    if (req.verbose) {
      const isolation = await containers.isolation(r).catch(() => null);
      info.info = JSON.stringify({ pid: r.pid, bundle: r.bundle, chainIds: r.chainIds, config: r.config, isolation });
    }
    return { status: toContainerStatus(r), info };
  };
}
