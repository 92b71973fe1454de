// ImageFsInfo: the image filesystem (blobs and unpacked layers) and the containers'
// writable layers' filesystem, with one fs_id for both while they share a filesystem:
// kubelet compares the two mountpoints to decide whether the disks are split.
import type { FilesystemUsage as Usage, ImageService } from '../../image/image_service';
import type { FilesystemUsage, ImageFsInfoResponse } from '../gen/cri';
import type { Reply } from '../server';

function toCriUsage(u: Usage): Reply<FilesystemUsage> {
  return { timestamp: u.timestamp * 1e6, fs_id: { mountpoint: u.mountpoint }, used_bytes: { value: u.bytes }, inodes_used: { value: u.inodes } };
}

export function imageFsInfo(images: ImageService) {
  return async (): Promise<Reply<ImageFsInfoResponse>> => {
    const fs = await images.storageFilesystems();
    return { image_filesystems: [toCriUsage(fs.image)], container_filesystems: [toCriUsage(fs.container)] };
  };
}
