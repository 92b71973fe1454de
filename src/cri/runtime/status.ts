// Status: RuntimeReady, and NetworkReady with CNI's reason while it has no usable
// config; UpdateRuntimeConfig hands the pod CIDR to the default network.
import type { CniNetwork } from '../../network/cni';
import type { DefaultNetwork } from '../../network/default_network';
import type { StatusRequest, StatusResponse, UpdateRuntimeConfigRequest } from '../gen/cri';
import type { Reply } from '../server';

export function status(cni: CniNetwork, handlerName: string, info: () => Record<string, unknown>) {
  // What each handler supports: recursive read-only mounts (the shim uses
  // mount_setattr) and pod user namespaces (the shim's pod call takes mappings).
  const features = { recursive_read_only_mounts: true, user_namespaces: true };
  return async (req: StatusRequest): Promise<Reply<StatusResponse>> => {
    const net = await cni.status();
    return {
      runtime_handlers: [
        { name: '', features },
        { name: handlerName, features },
      ],
      features: { supplemental_groups_policy: true },
      status: {
        conditions: [
          { type: 'RuntimeReady', status: true, reason: '', message: '' },
          { type: 'NetworkReady', status: net.ready, reason: net.ready ? '' : (net.reason ?? 'NetworkPluginNotReady'), message: net.ready ? '' : (net.message ?? '') },
        ],
      },
      info: req.verbose ? { config: JSON.stringify(info()) } : {},
    };
  };
}

export function updateRuntimeConfig(network: DefaultNetwork) {
  return async (req: UpdateRuntimeConfigRequest): Promise<Reply<object>> => {
    // An empty pod_cidr is kubelet saying nothing about it (no pod CIDR yet).
    const cidr = req.runtime_config?.network_config?.pod_cidr;
    if (cidr) await network.updatePodCidr(cidr);
    return {};
  };
}
