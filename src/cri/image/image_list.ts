// ListImages and StreamImages: every image, or those a filter's image reference names; one
// runtime handler serves every image, so a served handler in the filter narrows nothing.
import type { ImageService } from '../../image/image_service';
import type { Image, ImageFilter, ListImagesRequest, StreamImagesRequest, StreamImagesResponse } from '../gen/cri';
import { ChunkBounds, ReplyCache, STREAM_CHUNK_BOUNDS, sendChunked } from '../list_stream';
import { codec, Encoded, repeatedField } from '../proto';
import type { Reply, StreamContext } from '../server';
import { requireServedHandler, toCriImage } from './convert';

const imageCodec = codec<Image>('Image');

type Images = Pick<ImageService, 'list' | 'find' | 'keptIds'>;

function selectedImages(images: Images, f: ImageFilter | null, servedHandlers: readonly string[]): Reply<Image>[] {
  requireServedHandler(f?.image ?? null, servedHandlers, 'filter.image.runtime_handler');
  const want = f?.image?.image;
  const kept = images.keptIds();
  if (want) {
    const r = images.find(want);
    return r ? [toCriImage(r, kept)] : [];
  }
  return images.list().map((r) => toCriImage(r, kept));
}

/**
 * ListImages. A reply is kept while the images (`generation`) and, for `pinned`, the
 * containers that use them (`inUse`: changes whenever the containers do) are the same.
 */
export function listImages(images: Images & Pick<ImageService, 'generation'>, servedHandlers: readonly string[], inUse: () => number) {
  const replies = new ReplyCache<ImageFilter | null>();
  return async (req: ListImagesRequest): Promise<Encoded> => {
    requireServedHandler(req.filter?.image ?? null, servedHandlers, 'filter.image.runtime_handler');
    return replies.get(`${images.generation}/${inUse()}`, req.filter, () => repeatedField(1, selectedImages(images, req.filter, servedHandlers).map(imageCodec.encode)));
  };
}

export function streamImages(images: Images, servedHandlers: readonly string[], bounds: ChunkBounds = STREAM_CHUNK_BOUNDS) {
  return async (req: StreamImagesRequest, ctx: StreamContext<StreamImagesResponse>): Promise<void> =>
    sendChunked(ctx, selectedImages(images, req.filter, servedHandlers).map(imageCodec.encode), bounds);
}
