// ListImages and StreamImages: every image, or those a filter's image reference names.
import type { ImageService } from '../../image/image_service';
import type { Image, ImageFilter, ListImagesRequest, ListImagesResponse, StreamImagesRequest, StreamImagesResponse } from '../gen/cri';
import { ChunkBounds, STREAM_CHUNK_BOUNDS, sendChunked } from '../list_stream';
import { codec } from '../proto';
import type { Reply, StreamContext } from '../server';
import { toCriImage } from './convert';

const imageCodec = codec<Image>('Image');

type Images = Pick<ImageService, 'list' | 'find'>;

function selectedImages(images: Images, f: ImageFilter | null): Reply<Image>[] {
  const want = f?.image?.image;
  if (want) {
    const r = images.find(want);
    return r ? [toCriImage(r)] : [];
  }
  return images.list().map(toCriImage);
}

export function listImages(images: Images) {
  return async (req: ListImagesRequest): Promise<Reply<ListImagesResponse>> => ({ images: selectedImages(images, req.filter) });
}

export function streamImages(images: Images, bounds: ChunkBounds = STREAM_CHUNK_BOUNDS) {
  return async (req: StreamImagesRequest, ctx: StreamContext<StreamImagesResponse>): Promise<void> =>
    sendChunked(ctx, selectedImages(images, req.filter).map(imageCodec.encode), bounds);
}
