// The CRI ImageService handlers over skiff's image store; `runtimeHandler` is the one
// handler skiff serves (besides the empty name).
import type { ImageService } from '../../image/image_service';
import type { ImageServiceRpc } from '../gen/cri';
import type { Handlers } from '../server';
import { imageFsInfo } from './imagefs_info';
import { listImages, streamImages } from './image_list';
import { pullImage } from './image_pull';
import { removeImage } from './image_remove';
import { imageStatus } from './image_status';

export function imageHandlers(images: ImageService, runtimeHandler: string): Handlers<ImageServiceRpc> {
  return {
    ListImages: listImages(images, runtimeHandler),
    StreamImages: streamImages(images, runtimeHandler),
    ImageStatus: imageStatus(images, runtimeHandler),
    PullImage: pullImage(images, runtimeHandler),
    RemoveImage: removeImage(images, runtimeHandler),
    ImageFsInfo: imageFsInfo(images),
  };
}
