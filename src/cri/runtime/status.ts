// Status: RuntimeReady, and NetworkReady with CNI's reason while it has no usable
// config; UpdateRuntimeConfig hands the pod CIDR to the default network.
import type { CniNetwork } from '../../network/cni';
import type { StatusRequest, StatusResponse, UpdateRuntimeConfigRequest } from '../gen/cri';
import type { Reply } from '../server';

export function status(cni: CniNetwork, info: () => Record<string, unknown>) {
  return async (req: StatusRequest): Promise<Reply<StatusResponse>> => {
    const net = await cni.status();
    return {
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

export function updateRuntimeConfig(cni: CniNetwork) {
  return async (req: UpdateRuntimeConfigRequest): Promise<Reply<object>> => {
    const cidr = req.runtime_config?.network_config?.pod_cidr;
    if (cidr) await cni.updatePodCidr(cidr);
    return {};
  };
}
