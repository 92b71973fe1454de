// RemoveImage: idempotent as the CRI asks: an image already gone is not an error. A pinned
// image, or one a container uses, is refused with FAILED_PRECONDITION and kept.
import type { ImageService } from '../../image/image_service';
import type { RemoveImageRequest, RemoveImageResponse } from '../gen/cri';
import type { Reply } from '../server';
import { requireServedHandler, requiredImage } from './convert';

export function removeImage(images: ImageService, runtimeHandler: string) {
  return async (req: RemoveImageRequest): Promise<Reply<RemoveImageResponse>> => {
    const name = requiredImage(req.image, 'image.image');
    requireServedHandler(req.image, runtimeHandler, 'image.runtime_handler');
    if (images.find(name)) await images.remove(name);
    return {};
  };
}
