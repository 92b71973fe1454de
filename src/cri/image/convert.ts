// ImageRecord -> CRI Image, as containerd reports it: id, tags, digests, size, and the
// image's USER as a uid (numeric) or a username.
import { InvalidArgument } from '../../errors';
import type { ImageRecord } from '../../image/image_service';
import type { Image } from '../gen/cri';
import type { Reply } from '../server';

export function toCriImage(r: ImageRecord): Reply<Image> {
  const user = (r.config.user ?? '').split(':')[0];
  const numeric = /^\d+$/.test(user);
  return {
    id: r.id,
    repo_tags: r.repoTags,
    repo_digests: r.repoDigests,
    size: r.size,
    uid: numeric ? { value: Number(user) } : null,
    username: numeric ? '' : user,
    spec: { image: r.id, annotations: {} },
    pinned: false,
  };
}

/** The `image.image` field every image call names; its absence is the caller's error. */
export function requiredImage(spec: { image: string } | null, field: string): string {
  const name = spec?.image?.trim();
  if (!name) throw new InvalidArgument(`${field} is required`);
  return name;
}
