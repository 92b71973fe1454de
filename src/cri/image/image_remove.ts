// RemoveImage: idempotent as the CRI asks: an image already gone is not an error.
import type { ImageService } from '../../image/image_service';
import type { RemoveImageRequest, RemoveImageResponse } from '../gen/cri';
import type { Reply } from '../server';
import { requiredImage } from './convert';

export function removeImage(images: ImageService) {
  return async (req: RemoveImageRequest): Promise<Reply<RemoveImageResponse>> => {
    const name = requiredImage(req.image, 'image.image');
    if (images.find(name)) await images.remove(name);
    return {};
  };
}
