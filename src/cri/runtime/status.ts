// Status: RuntimeReady, and NetworkReady with CNI's reason while it has no usable
// config; the runtime handlers' and the runtime's features, from the kernel features
// probed at start-up.
import type { CniNetwork } from '../../network/cni';
import type { KernelFeatures } from '../../shim/features';
import type { RuntimeFeatures, RuntimeHandlerFeatures, StatusRequest, StatusResponse } from '../gen/cri';
import type { Reply } from '../server';
import type { ServedHandlers } from './pod_spec';

/** What Status tells kubelet skiff can do on this kernel. */
export function statusFeatures(kernel: KernelFeatures): { handler: RuntimeHandlerFeatures; runtime: RuntimeFeatures } {
  const userns = kernel.userNamespaces.supported;
  return {
    handler: {
      // The shim makes "rro" mounts with mount_setattr(AT_RECURSIVE), Linux 5.12+.
      recursive_read_only_mounts: kernel.recursiveReadOnlyMounts.supported,
      // The CRI's user namespaces are a user namespace and id-mapped mounts together
      // (containerd: the runtime's "user" namespace and idmap features).
      user_namespaces: userns && kernel.idmapMounts.supported,
    },
    runtime: {
      // Strict and Merge are skiff's own work on the image's /etc/group: no kernel part.
      supplemental_groups_policy: true,
      user_namespaces_host_network: userns && kernel.userNamespacesHostNetwork.supported,
    },
  };
}

/** Why this kernel cannot run pods in user namespaces with id-mapped mounts; '' when it
 * can (what the userns handler needs, and what user_namespaces promises). */
export function usernsUnavailable(kernel: KernelFeatures): string {
  const missing = (['userNamespaces', 'idmapMounts'] as const).filter((f) => !kernel[f].supported);
  return missing.map((f) => `${f}: ${kernel[f].error ?? 'unsupported'}`).join('; ');
}

/** The handlers kubelet may name: "", the default, and the userns handler where this
 * kernel can run its pods (it is not listed otherwise: its one feature would be false). */
export function status(cni: Pick<CniNetwork, 'status'>, handlers: Pick<ServedHandlers, 'default' | 'userns' | 'usernsUnavailable'>, kernel: KernelFeatures, info: () => Record<string, unknown>) {
  // Decided once: kubelet asks every few seconds, and the kernel does not change.
  const { handler, runtime } = statusFeatures(kernel);
  return async (req: StatusRequest): Promise<Reply<StatusResponse>> => {
    const net = await cni.status();
    return {
      runtime_handlers: [
        { name: '', features: handler },
        { name: handlers.default, features: handler },
        ...(handlers.userns && !handlers.usernsUnavailable ? [{ name: handlers.userns, features: handler }] : []),
      ],
      features: runtime,
      status: {
        conditions: [
          { type: 'RuntimeReady', status: true, reason: '', message: '' },
          { type: 'NetworkReady', status: net.ready, reason: net.ready ? '' : (net.reason ?? 'NetworkPluginNotReady'), message: net.ready ? '' : (net.message ?? '') },
        ],
      },
      info: req.verbose ? { config: JSON.stringify(info()), kernelFeatures: JSON.stringify(kernel) } : {},
    };
  };
}
