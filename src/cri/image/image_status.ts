// ImageStatus: the image, or no image (not an error) when it is unknown, as kubelet
// expects; with `verbose`, the image config and chain ids as JSON under "info".
import type { ImageService } from '../../image/image_service';
import type { ImageStatusRequest, ImageStatusResponse } from '../gen/cri';
import type { Reply } from '../server';
import { requireServedHandler, requiredImage, toCriImage } from './convert';

export function imageStatus(images: ImageService, servedHandlers: readonly string[]) {
  return async (req: ImageStatusRequest): Promise<Reply<ImageStatusResponse>> => {
    const name = requiredImage(req.image, 'image.image');
    requireServedHandler(req.image, servedHandlers, 'image.runtime_handler');
    const r = images.find(name);
    if (!r) return { image: null, info: {} };
    const info: Record<string, string> = {};
    if (req.verbose) {
      const config: unknown = JSON.parse((await images.content.read(r.id)).toString('utf8'));
      info.info = JSON.stringify({ id: r.id, chainIds: r.chainIds, size: r.size, pulledAt: new Date(r.pulledAt).toISOString(), imageSpec: config });
    }
    return { image: toCriImage(r, images.keptIds()), info };
  };
}
