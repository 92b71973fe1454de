// Version: the runtime's name and version, and the CRI version of the package asked.
// The reply never changes: it is encoded once per package (an empty call's cost is
// skiffd's per-call overhead, which kubelet pays on every call).
import { SKIFF_VERSION } from '../../version';
import type { VersionResponse } from '../gen/cri';
import { codec, CriPackage, Encoded, ENCODED } from '../proto';
import type { CallContext } from '../server';

const versionCodec = codec<VersionResponse>('VersionResponse');

export function version() {
  const replies = new Map<CriPackage, Encoded>();
  const reply = (pkg: CriPackage): Encoded => ({
    [ENCODED]: versionCodec.encode({
      // "version" is the kubelet-facing API version string, fixed at 0.1.0 by the CRI.
      version: '0.1.0',
      runtime_name: 'skiff',
      runtime_version: SKIFF_VERSION,
      runtime_api_version: pkg === 'runtime.v1' ? 'v1' : 'v1alpha2',
    }),
  });
  return async (_req: unknown, ctx: CallContext): Promise<Encoded> => {
    let r = replies.get(ctx.pkg);
    if (!r) replies.set(ctx.pkg, (r = reply(ctx.pkg)));
    return r;
  };
}
