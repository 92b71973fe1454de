// [NodeConformance] specs that fail on skiff with a reason that is not skiff's to fix here
// (checked by `npm run e2e:node -- --runtimes skiff`: any other failure fails the run).
// Keyed by the spec's full name as in the JUnit report.
export const KNOWN_FAILURES: Record<string, string> = {
  // Fails on containerd too.
  '[k8s.io] PrivilegedPod [NodeConformance] should enable privileged commands [LinuxOnly]': 'runs `ip link add dummy1 type dummy`; this kernel has no dummy netdev driver (the host itself answers "Unknown device type")',
  // Passes on containerd.
  '[k8s.io] Summary API [NodeConformance] when querying /stats/summary should report resource usage through the stats api':
    "kubelet 1.20's CRI stats provider takes a container's memory usage, RSS and page faults and a pod's network stats from its built-in cAdvisor, which knows docker's, containerd's (through its socket) and CRI-O's containers only; for skiff's they stay empty (newer kubelets take them from the CRI: PodAndContainerStatsFromCRI)",
};
