// [NodeConformance] specs that fail on skiff with a reason that is not skiff's to fix here
// (checked by `npm run e2e:node -- --runtimes skiff`: any other failure fails the run).
// Keyed by the spec's full name as in the JUnit report. Each fails on any runtime in this
// set-up.
const CGROUP_ROOT = 'the run gives kubelet --cgroup-root=/skiff-e2e-node/<runtime> (not the host\'s /kubepods, which other tests on the node share); the spec looks for /sys/fs/cgroup/<ctl>/kubepods/...';

export const KNOWN_FAILURES: Record<string, string> = {
  '[k8s.io] Kubelet Cgroup Manager Pod containers [NodeConformance] On scheduling a Guaranteed Pod Pod containers should have been created under the cgroup-root': CGROUP_ROOT,
  '[k8s.io] Kubelet Cgroup Manager Pod containers [NodeConformance] On scheduling a Burstable Pod Pod containers should have been created under the Burstable cgroup': CGROUP_ROOT,
  '[k8s.io] Kubelet Cgroup Manager Pod containers [NodeConformance] On scheduling a BestEffort Pod Pod containers should have been created under the BestEffort cgroup': CGROUP_ROOT,
  '[k8s.io] Kubelet Cgroup Manager QOS containers On enabling QOS cgroup hierarchy Top level QoS containers should have been created [NodeConformance]': CGROUP_ROOT,
  '[k8s.io] PrivilegedPod [NodeConformance] should enable privileged commands [LinuxOnly]': 'runs `ip link add dummy1 type dummy`; this kernel has no dummy netdev driver (the host itself answers "Unknown device type")',
};
