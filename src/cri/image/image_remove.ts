// RemoveImage: idempotent as the CRI asks: an image already gone is not an error. A pinned
// image, or one a container runs on, is refused with FAILED_PRECONDITION and kept; one that
// containers only mount as an image volume is removed (as containerd does), its layers kept
// until the last of them is removed.
import type { ImageService } from '../../image/image_service';
import type { RemoveImageRequest, RemoveImageResponse } from '../gen/cri';
import type { Reply } from '../server';
import { requireServedHandler, requiredImage } from './convert';

export function removeImage(images: ImageService, servedHandlers: readonly string[]) {
  return async (req: RemoveImageRequest): Promise<Reply<RemoveImageResponse>> => {
    const name = requiredImage(req.image, 'image.image');
    requireServedHandler(req.image, servedHandlers, 'image.runtime_handler');
    if (images.find(name)) await images.remove(name);
    return {};
  };
}
