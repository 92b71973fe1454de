// CreateContainer, StartContainer, StopContainer, RemoveContainer, ContainerStatus,
// ListContainers and StreamContainers, UpdateContainerResources, ReopenContainerLog,
// ExecSync.
import type { ContainerRecord, ContainerService } from '../../container/container_service';
import type {
  Container, ContainerFilter, ContainerStatusRequest, ContainerStatusResponse, CreateContainerRequest, CreateContainerResponse, ExecSyncRequest,
  ExecSyncResponse, ListContainersRequest, RemoveContainerRequest, ReopenContainerLogRequest, StartContainerRequest,
  StopContainerRequest, StreamContainersRequest, StreamContainersResponse, UpdateContainerResourcesRequest,
} from '../gen/cri';
import { CachedListing, ChunkBounds, STREAM_CHUNK_BOUNDS } from '../list_stream';
import { Encoded, codec } from '../proto';
import type { Reply, StreamContext } from '../server';
import { byCreation, containerState, selectContainers, toContainer, toContainerStatus } from './convert';

const containerCodec = codec<Container>('Container');

export function createContainer(containers: ContainerService) {
  return async (req: CreateContainerRequest): Promise<Reply<CreateContainerResponse>> => ({
    container_id: (await containers.create(req.pod_sandbox_id, req.config, req.sandbox_config)).id,
  });
}

export function startContainer(containers: ContainerService) {
  return async (req: StartContainerRequest): Promise<Reply<object>> => {
    await containers.start(req.container_id);
    return {};
  };
}

export function stopContainer(containers: ContainerService) {
  return async (req: StopContainerRequest): Promise<Reply<object>> => {
    await containers.stop(req.container_id, req.timeout);
    return {};
  };
}

export function removeContainer(containers: ContainerService) {
  return async (req: RemoveContainerRequest): Promise<Reply<object>> => {
    await containers.remove(req.container_id);
    return {};
  };
}

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

/**
 * ListContainers and StreamContainers: the same filter, oldest container first, over one
 * cache of encoded containers. A container's listing changes only with its state (the
 * rest is fixed at create).
 */
export function containerLists(containers: Pick<ContainerService, 'list' | 'get'>, bounds: ChunkBounds = STREAM_CHUNK_BOUNDS) {
  const listing = new CachedListing<ContainerRecord, ContainerFilter | null>(
    {
      select: (f) => selectContainers(containers.list(), f).sort(byCreation),
      version: (r) => String(containerState(r)),
      encode: (r) => containerCodec.encode(toContainer(r)),
      live: (id) => !!containers.get(id),
    },
    bounds,
  );
  return {
    ListContainers: async (req: ListContainersRequest): Promise<Encoded> => listing.reply(req.filter),
    StreamContainers: async (req: StreamContainersRequest, ctx: StreamContext<StreamContainersResponse>): Promise<void> => listing.send(req.filter, ctx),
  };
}

export function updateContainerResources(containers: ContainerService) {
  return async (req: UpdateContainerResourcesRequest): Promise<Reply<object>> => {
    await containers.updateResources(req.container_id, req.linux);
    return {};
  };
}

export function reopenContainerLog(containers: ContainerService) {
  return async (req: ReopenContainerLogRequest): Promise<Reply<object>> => {
    await containers.reopenLog(req.container_id);
    return {};
  };
}

export function execSync(containers: ContainerService) {
  return async (req: ExecSyncRequest): Promise<Reply<ExecSyncResponse>> => {
    const r = await containers.execSync(req.container_id, req.cmd, req.timeout);
    return { stdout: r.stdout, stderr: r.stderr, exit_code: r.exitCode };
  };
}
