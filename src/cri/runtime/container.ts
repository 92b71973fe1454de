// CreateContainer, StartContainer, StopContainer, RemoveContainer, ContainerStatus,
// ListContainers and StreamContainers, UpdateContainerResources, ReopenContainerLog,
// ExecSync.
import type { ContainerRecord, ContainerService } from '../../container/container_service';
import type { ExecOutputBuffers } from '../../shim/client';
import type {
  Container, ContainerFilter, ContainerStatusRequest, ContainerStatusResponse, CreateContainerRequest, CreateContainerResponse, ExecSyncRequest,
  ListContainersRequest, RemoveContainerRequest, ReopenContainerLogRequest, StartContainerRequest,
  StopContainerRequest, StreamContainersRequest, StreamContainersResponse, UpdateContainerResourcesRequest,
} from '../gen/cri';
import { CachedListing, ChunkBounds, STREAM_CHUNK_BOUNDS } from '../list_stream';
import { ENCODED, Encoded, codec, int32Field, lengthDelimitedHead } from '../proto';
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

/**
 * An ExecSyncResponse encoded around its output: the shim client writes stdout and stderr
 * straight into one buffer laid out as the message (stdout = 1, stderr = 2, then
 * exit_code = 3), so skiffd holds the output once, not once read and once encoded. Empty
 * and zero fields are left out, as the codec leaves them.
 */
export class ExecSyncReply {
  private buf = Buffer.alloc(0);
  private end = 0;

  /** Where the shim client puts the output (ExecOutputBuffers). */
  readonly buffers: ExecOutputBuffers = (stdoutBytes, stderrBytes) => {
    const stdoutHead = bytesFieldHead(1, stdoutBytes);
    const stderrHead = bytesFieldHead(2, stderrBytes);
    this.buf = Buffer.allocUnsafe(stdoutHead.length + stdoutBytes + stderrHead.length + stderrBytes + MAX_INT32_FIELD);
    this.buf.set(stdoutHead, 0);
    let at = stdoutHead.length;
    const stdout = this.buf.subarray(at, (at += stdoutBytes));
    this.buf.set(stderrHead, at);
    at += stderrHead.length;
    const stderr = this.buf.subarray(at, (at += stderrBytes));
    this.end = at;
    return { stdout, stderr };
  };

  /** The whole message, once the output is in and the exit code known. */
  encoded(exitCode: number): Encoded {
    const tail = exitCode === 0 ? NOTHING : int32Field(3, exitCode);
    this.buf.set(tail, this.end);
    return { [ENCODED]: this.buf.subarray(0, this.end + tail.length) };
  }
}

const NOTHING = new Uint8Array(0);
// Tag and ten-byte varint: an int32 field at its longest.
const MAX_INT32_FIELD = 11;
const bytesFieldHead = (field: number, length: number) => (length === 0 ? NOTHING : lengthDelimitedHead(field, length));

export function execSync(containers: ContainerService) {
  return async (req: ExecSyncRequest): Promise<Encoded> => {
    const reply = new ExecSyncReply();
    const r = await containers.execSync(req.container_id, req.cmd, req.timeout, reply.buffers);
    return reply.encoded(r.exitCode);
  };
}
