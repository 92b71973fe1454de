// ListImages: every image, or those a filter's image reference names.
import type { ImageService } from '../../image/image_service';
import type { ListImagesRequest, ListImagesResponse } from '../gen/cri';
import type { Reply } from '../server';
import { toCriImage } from './convert';

export function listImages(images: ImageService) {
  return async (req: ListImagesRequest): Promise<Reply<ListImagesResponse>> => {
    const want = req.filter?.image?.image;
    if (want) {
      const r = images.find(want);
      return { images: r ? [toCriImage(r)] : [] };
    }
    return { images: images.list().map(toCriImage) };
  };
}
