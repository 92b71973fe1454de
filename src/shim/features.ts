// The kernel features skiff-shim can use, from `skiff-shim --features` (see
// api/shim/PROTOCOL.md): probed once when skiffd starts, reported in the CRI Status.
import { execFile } from 'child_process';

export interface KernelFeature {
  supported: boolean;
  /** Why not: the call that failed and its errno. */
  error?: string;
}

export const KERNEL_FEATURES = ['recursiveReadOnlyMounts', 'userNamespaces', 'idmapMounts', 'userNamespacesHostNetwork'] as const;
export type KernelFeatureName = (typeof KERNEL_FEATURES)[number];
export type KernelFeatures = Record<KernelFeatureName, KernelFeature>;

/** Every feature unsupported, for the same reason. */
function noneSupported(error: string): KernelFeatures {
  return Object.fromEntries(KERNEL_FEATURES.map((name) => [name, { supported: false, error }])) as KernelFeatures;
}

/** The shim's JSON line; a feature missing from it or malformed counts as unsupported. */
export function parseKernelFeatures(stdout: string): KernelFeatures {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout);
  } catch {
    return noneSupported(`skiff-shim --features printed no JSON: ${JSON.stringify(stdout.slice(0, 200))}`);
  }
  const out = noneSupported('not reported by skiff-shim --features');
  for (const name of KERNEL_FEATURES) {
    const f = (parsed as Record<string, { supported?: unknown; error?: unknown } | undefined> | null)?.[name];
    if (f && typeof f.supported === 'boolean') out[name] = { supported: f.supported, ...(typeof f.error === 'string' ? { error: f.error } : {}) };
  }
  return out;
}

/** Run `skiff-shim --features` and read its answer. A probe that cannot run reports
 * every feature unsupported: a kernel is never told it has what was not checked. */
export function probeKernelFeatures(shimBinary: string): Promise<KernelFeatures> {
  return new Promise((resolve) => {
    execFile(shimBinary, ['--features'], { timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) resolve(noneSupported(`skiff-shim --features failed: ${stderr.trim() || err.message}`));
      else resolve(parseKernelFeatures(stdout));
    });
  });
}
