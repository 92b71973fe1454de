// PullImage: fetch through the registry client with the CRI credentials; the answer is
// the image id (config digest), as containerd gives it. The request's annotations and
// runtime handler are kept with the image.
import type { ImageService } from '../../image/image_service';
import type { AuthConfig } from '../../image/registry';
import type { AuthConfig as CriAuth, PullImageRequest, PullImageResponse } from '../gen/cri';
import type { Reply } from '../server';
import { requireServedHandler, requiredImage } from './convert';

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

export function pullImage(images: ImageService, servedHandlers: readonly string[]) {
  return async (req: PullImageRequest): Promise<Reply<PullImageResponse>> => {
    const name = requiredImage(req.image, 'image.image');
    const handler = requireServedHandler(req.image, servedHandlers, 'image.runtime_handler');
    const r = await images.pull(name, toAuth(req.auth), { annotations: req.image?.annotations ?? {}, runtimeHandler: handler });
    return { image_ref: r.id };
  };
}
