// ListContainers and StreamContainers: the same filter (id prefix, pod id prefix, state,
// labels), oldest container first, over one cache of encoded containers.
import type { ContainerService } from '../../container/container_service';
import type { Container } from '../gen/cri';
import { ChunkBounds, STREAM_CHUNK_BOUNDS } from '../list_stream';
import { codec } from '../proto';
import { containerState, recordLists, selectContainers, toContainer } from './convert';

const containerCodec = codec<Container>('Container');

export function containerLists(containers: Pick<ContainerService, 'list' | 'get' | 'generation'>, bounds: ChunkBounds = STREAM_CHUNK_BOUNDS) {
  const { list, stream } = recordLists(containers, selectContainers, containerState, (r) => containerCodec.encode(toContainer(r)), bounds);
  return { ListContainers: list, StreamContainers: stream };
}
