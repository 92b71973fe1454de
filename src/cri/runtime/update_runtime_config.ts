// UpdateRuntimeConfig: the pod CIDR kubelet hands over goes to the default network.
import type { DefaultNetwork } from '../../network/default_network';
import type { UpdateRuntimeConfigRequest } from '../gen/cri';
import type { Reply } from '../server';

export function updateRuntimeConfig(network: DefaultNetwork) {
  return async (req: UpdateRuntimeConfigRequest): Promise<Reply<object>> => {
    // An empty pod_cidr is kubelet saying nothing about it (no pod CIDR yet).
    const cidr = req.runtime_config?.network_config?.pod_cidr;
    if (cidr) await network.updatePodCidr(cidr);
    return {};
  };
}
