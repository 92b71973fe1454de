// ListPodSandbox and StreamPodSandboxes: the same filter (id prefix, state, labels), oldest
// pod first, over one cache of encoded pods.
import type { SandboxService } from '../../sandbox/sandbox_service';
import type { PodSandbox } from '../gen/cri';
import { ChunkBounds, STREAM_CHUNK_BOUNDS } from '../list_stream';
import { codec } from '../proto';
import { podState, recordLists, selectPods, toPodSandbox } from './convert';

const podSandboxCodec = codec<PodSandbox>('PodSandbox');

export function podSandboxLists(pods: Pick<SandboxService, 'list' | 'get' | 'generation'>, bounds: ChunkBounds = STREAM_CHUNK_BOUNDS) {
  const { list, stream } = recordLists(pods, selectPods, podState, (r) => podSandboxCodec.encode(toPodSandbox(r)), bounds);
  return { ListPodSandbox: list, StreamPodSandboxes: stream };
}
