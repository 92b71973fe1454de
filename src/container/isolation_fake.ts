// Isolation reports for unit tests: a container confined by its pod, unless told otherwise.
import type { Isolation } from './isolation';

export function fakeIsolation(over: Partial<Isolation> = {}): Isolation {
  return {
    namespaces: { mnt: 'private', pid: 'private', net: 'pod', ipc: 'pod', uts: 'pod', user: 'host', cgroup: 'host' },
    observed: true,
    limits: { cpus: 1, memoryBytes: 1 << 30, pids: 100 },
    unbounded: [],
    extraCapabilities: [],
    seccomp: 'filtered',
    lsm: { apparmor: null, selinux: null },
    lsmUnconfined: true,
    noNewPrivileges: false,
    privileged: false,
    readOnlyRootfs: false,
    maskedPaths: [],
    uid: 1000,
    uid0IsHostRoot: true,
    ...over,
  };
}
