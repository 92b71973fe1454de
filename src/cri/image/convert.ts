// ImageRecord -> CRI Image, as containerd reports it: id, tags, digests, size, and the
// image's USER as a uid (numeric) or a username; beyond containerd, the spec the image was
// pulled with (annotations, runtime handler) and whether it is pinned.
import { InvalidArgument } from '../../errors';
import type { ImageRecord } from '../../image/image_service';
import type { Image, ImageSpec } from '../gen/cri';
import type { Reply } from '../server';

/** `kept`: ids of the images that must stay (ImageService.keptIds), reported pinned. */
export function toCriImage(r: ImageRecord, kept: Set<string>): Reply<Image> {
  const user = (r.config.user ?? '').split(':')[0];
  const numeric = /^\d+$/.test(user);
  return {
    id: r.id,
    repo_tags: r.repoTags,
    repo_digests: r.repoDigests,
    size: r.size,
    uid: numeric ? { value: Number(user) } : null,
    username: numeric ? '' : user,
    spec: { image: r.id, annotations: r.annotations ?? {}, runtime_handler: r.runtimeHandler ?? '' },
    pinned: kept.has(r.id),
  };
}

/** The `image.image` field every image call names; its absence is the caller's error. */
export function requiredImage(spec: { image: string } | null, field: string): string {
  const name = spec?.image?.trim();
  if (!name) throw new InvalidArgument(`${field} is required`);
  return name;
}

/**
 * An image call's ImageSpec.runtime_handler (KEP-4216) must be one skiff serves: a
 * configured handler or the empty name (the default). The CRI asks that an unknown one be
 * rejected; skiff answers as its RunPodSandbox does, and before anything is done. Every
 * handler runs the same images.
 */
export function requireServedHandler(spec: Pick<ImageSpec, 'runtime_handler'> | null, served: readonly string[], field: string): string {
  const name = spec?.runtime_handler ?? '';
  if (name && !served.includes(name)) throw new InvalidArgument(`${field} "${name}" is not configured (skiff serves ${served.map((h) => `"${h}"`).join(', ')} and the default "")`);
  return name;
}
