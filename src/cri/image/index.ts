// The CRI ImageService handlers over skiff's image store.
import type { ImageService } from '../../image/image_service';
import type { ImageServiceRpc } from '../gen/cri';
import type { Handlers } from '../server';
import { imageFsInfo } from './imagefs_info';
import { listImages } from './image_list';
import { pullImage } from './image_pull';
import { removeImage } from './image_remove';
import { imageStatus } from './image_status';

export function imageHandlers(images: ImageService): Handlers<ImageServiceRpc> {
  return {
    ListImages: listImages(images),
    ImageStatus: imageStatus(images),
    PullImage: pullImage(images),
    RemoveImage: removeImage(images),
    ImageFsInfo: imageFsInfo(images),
  };
}
