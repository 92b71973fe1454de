// CreateContainer, StartContainer, StopContainer, RemoveContainer, ContainerStatus,
// ListContainers, UpdateContainerResources, ReopenContainerLog, ExecSync.
import type { ContainerRecord, ContainerService } from '../../container/container_service';
import type {
  Container, ContainerStatusRequest, ContainerStatusResponse, CreateContainerRequest, CreateContainerResponse, ExecSyncRequest, ExecSyncResponse,
  ListContainersRequest, RemoveContainerRequest, ReopenContainerLogRequest, StartContainerRequest,
  StopContainerRequest, UpdateContainerResourcesRequest,
} from '../gen/cri';
import { Encoded, EncodedItems, codec } from '../proto';
import type { Reply } from '../server';
import { containerState, matchesLabels, toContainer, toContainerStatus } from './convert';

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

export function listContainers(containers: ContainerService) {
  // A container's listing changes only with its state (the rest is fixed at create).
  const encoded = new EncodedItems<ContainerRecord>((r) => containerCodec.encode(toContainer(r)));
  return async (req: ListContainersRequest): Promise<Encoded> => {
    const f = req.filter;
    const list = containers
      .list()
      .filter((r) => !f || !f.id || r.id.startsWith(f.id))
      .filter((r) => !f || !f.pod_sandbox_id || r.podId.startsWith(f.pod_sandbox_id))
      .filter((r) => !f?.state || containerState(r) === f.state.state)
      .filter((r) => !f || matchesLabels(r.config.labels, f.label_selector))
      .sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1));
    return encoded.reply(1, list.map((r) => ({ id: r.id, version: String(containerState(r)), item: r })), (id) => !!containers.get(id));
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
