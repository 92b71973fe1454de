// ListImages and StreamImages: every image, or those a filter's image reference names; one
// runtime handler serves every image, so a served handler in the filter narrows nothing.
import type { ImageRecord, ImageService } from '../../image/image_service';
import type { Image, ImageFilter, ListImagesRequest, StreamImagesRequest, StreamImagesResponse } from '../gen/cri';
import { ChunkBounds, ReplyCache, STREAM_CHUNK_BOUNDS, sendChunked } from '../list_stream';
import { codec, Encoded, repeatedField } from '../proto';
import type { Reply, StreamContext } from '../server';
import { requireServedHandler, toCriImage } from './convert';

const imageCodec = codec<Image>('Image');

type Images = Pick<ImageService, 'list' | 'find' | 'keptIds'>;

function selectedImages(images: Images, f: ImageFilter | null, runtimeHandler: string): Reply<Image>[] {
  requireServedHandler(f?.image ?? null, runtimeHandler, 'filter.image.runtime_handler');
  const want = f?.image?.image;
  const kept = images.keptIds();
  if (want) {
    const r = images.find(want);
    return r ? [toCriImage(r, kept)] : [];
  }
  return images.list().map((r) => toCriImage(r, kept));
}

/**
 * What a ListImages reply is made of: the image records (a changed image is a new record)
 * and, for `pinned`, the containers that use them (`inUse`: changes whenever the
 * containers do). A reply is kept while neither changed.
 */
class ImagesGeneration {
  constructor(
    readonly records: ImageRecord[],
    readonly inUse: number,
  ) {}

  same(records: ImageRecord[], inUse: number): boolean {
    return inUse === this.inUse && records.length === this.records.length && records.every((r, i) => r === this.records[i]);
  }
}

/** `inUse`: changes whenever the containers, and so the images they keep, do. */
export function listImages(images: Images, runtimeHandler: string, inUse: () => number) {
  const replies = new ReplyCache<ImageFilter | null>();
  let generation = new ImagesGeneration([], -1);
  return async (req: ListImagesRequest): Promise<Encoded> => {
    requireServedHandler(req.filter?.image ?? null, runtimeHandler, 'filter.image.runtime_handler');
    const records = images.list();
    const containers = inUse();
    if (!generation.same(records, containers)) generation = new ImagesGeneration(records, containers);
    return replies.get(generation, req.filter, () => repeatedField(1, selectedImages(images, req.filter, runtimeHandler).map(imageCodec.encode)));
  };
}

export function streamImages(images: Images, runtimeHandler: string, bounds: ChunkBounds = STREAM_CHUNK_BOUNDS) {
  return async (req: StreamImagesRequest, ctx: StreamContext<StreamImagesResponse>): Promise<void> =>
    sendChunked(ctx, selectedImages(images, req.filter, runtimeHandler).map(imageCodec.encode), bounds);
}
