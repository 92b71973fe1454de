// RuntimeConfig: the cgroup driver kubelet must match. The shim drives cgroupfs.
import { CgroupDriver, RuntimeConfigResponse } from '../gen/cri';
import type { Reply } from '../server';

export function runtimeConfig() {
  return async (): Promise<Reply<RuntimeConfigResponse>> => ({ linux: { cgroup_driver: CgroupDriver.CGROUPFS } });
}
