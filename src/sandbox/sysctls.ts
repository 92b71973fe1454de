// Pod sysctls: only the namespaced ones, and only for namespaces the pod owns; values
// that could smuggle a second sysctl (CVE-2022-0811) are refused.
import { InvalidArgument } from '../errors';

const IPC_SYSCTLS = new Set(['kernel.shm_rmid_forced', 'kernel.msgmax', 'kernel.msgmnb', 'kernel.msgmni', 'kernel.sem', 'kernel.shmall', 'kernel.shmmax', 'kernel.shmmni']);

export function checkSysctls(sysctls: Record<string, string>, opts: { hostNetwork: boolean; hostIpc: boolean }): void {
  for (const [key, value] of Object.entries(sysctls)) {
    if (!/^[a-z0-9_]+(?:[./][a-z0-9_-]+)+$/i.test(key)) throw new InvalidArgument(`sysctl "${key}": not a sysctl name`);
    if (/[+=\n\0]/.test(value)) throw new InvalidArgument(`sysctl "${key}": value "${value}" must not contain "+", "=" or control characters`);
    const k = key.replace(/\//g, '.');
    const ipc = IPC_SYSCTLS.has(k) || k.startsWith('fs.mqueue.');
    const net = k.startsWith('net.');
    if (!ipc && !net) throw new InvalidArgument(`sysctl "${key}" is not namespaced; only net.*, kernel.shm*, kernel.msg*, kernel.sem and fs.mqueue.* are allowed`);
    if (ipc && opts.hostIpc) throw new InvalidArgument(`sysctl "${key}" is not allowed for a pod that shares the host's IPC namespace`);
    if (net && opts.hostNetwork) throw new InvalidArgument(`sysctl "${key}" is not allowed for a pod that shares the host's network namespace`);
  }
}
