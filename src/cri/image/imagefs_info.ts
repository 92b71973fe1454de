// ImageFsInfo: bytes and inodes the image store uses (blobs and unpacked layers), and
// the containers' writable layers' filesystem.
import type { ImageService } from '../../image/image_service';
import type { ImageFsInfoResponse } from '../gen/cri';
import type { Reply } from '../server';

export function imageFsInfo(images: ImageService, containerFs: () => Promise<{ mountpoint: string; bytes: number; inodes: number }>) {
  return async (): Promise<Reply<ImageFsInfoResponse>> => {
    const [u, c] = await Promise.all([images.fsUsage(), containerFs()]);
    return {
      image_filesystems: [
        { timestamp: u.timestamp * 1e6, fs_id: { mountpoint: images.snapshots.root }, used_bytes: { value: u.bytes }, inodes_used: { value: u.inodes } },
      ],
      container_filesystems: [
        { timestamp: Date.now() * 1e6, fs_id: { mountpoint: c.mountpoint }, used_bytes: { value: c.bytes }, inodes_used: { value: c.inodes } },
      ],
    };
  };
}
