// Version: the runtime's name and version, and the CRI version of the package asked.
import { SKIFF_VERSION } from '../../version';
import type { VersionResponse } from '../gen/cri';
import type { CallContext, Reply } from '../server';

export function version() {
  return async (_req: unknown, ctx: CallContext): Promise<Reply<VersionResponse>> => ({
    // "version" is the kubelet-facing API version string, fixed at 0.1.0 by the CRI.
    version: '0.1.0',
    runtime_name: 'skiff',
    runtime_version: SKIFF_VERSION,
    runtime_api_version: ctx.pkg === 'runtime.v1' ? 'v1' : 'v1alpha2',
  });
}
