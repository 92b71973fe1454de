// PullImage: fetch through the registry client with the CRI credentials; the answer is
// the image id (config digest), as containerd gives it.
import type { ImageService } from '../../image/image_service';
import type { AuthConfig } from '../../image/registry';
import type { AuthConfig as CriAuth, PullImageRequest, PullImageResponse } from '../gen/cri';
import type { Reply } from '../server';
import { requiredImage } from './convert';

function toAuth(a: CriAuth | null): AuthConfig | undefined {
  if (!a) return undefined;
  const auth: AuthConfig = {};
  if (a.username) auth.username = a.username;
  if (a.password) auth.password = a.password;
  if (a.auth) auth.auth = a.auth;
  if (a.identity_token) auth.identityToken = a.identity_token;
  if (a.registry_token) auth.registryToken = a.registry_token;
  return Object.keys(auth).length ? auth : undefined;
}

export function pullImage(images: ImageService) {
  return async (req: PullImageRequest): Promise<Reply<PullImageResponse>> => {
    const r = await images.pull(requiredImage(req.image, 'image.image'), toAuth(req.auth));
    return { image_ref: r.id };
  };
}
