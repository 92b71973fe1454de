// ListImages: every image, or those a filter's image reference names; one runtime handler
// serves every image, so a served handler in the filter narrows nothing.
import type { ImageService } from '../../image/image_service';
import type { ListImagesRequest, ListImagesResponse } from '../gen/cri';
import type { Reply } from '../server';
import { requireServedHandler, toCriImage } from './convert';

export function listImages(images: ImageService, runtimeHandler: string) {
  return async (req: ListImagesRequest): Promise<Reply<ListImagesResponse>> => {
    requireServedHandler(req.filter?.image ?? null, runtimeHandler, 'filter.image.runtime_handler');
    const want = req.filter?.image?.image;
    const kept = images.keptIds();
    if (want) {
      const r = images.find(want);
      return { images: r ? [toCriImage(r, kept)] : [] };
    }
    return { images: images.list().map((r) => toCriImage(r, kept)) };
  };
}
