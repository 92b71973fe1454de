// The isolation findings skiffd tells the cluster about, one per weakness of a container:
// what lets it reach the node or its neighbours, worded for `kubectl describe pod`.
import { Isolation, Resource, runsAsHostRoot } from '../container/isolation';

export interface Finding {
  /** An Event reason: CamelCase, stable, what operators filter on. */
  reason: string;
  message: string;
}

const RESOURCE_TEXT: Record<Resource, string> = { memory: 'no memory limit', pids: 'no pids limit', cpu: 'no cpu quota', io: 'no IO weight' };

const HOST_NAMESPACES = [
  ['pid', 'HostPIDNamespace', "shares the host's PID namespace: it sees and can signal the node's processes"],
  ['net', 'HostNetworkNamespace', "shares the host's network namespace: it can bind the node's ports and reach its loopback services"],
  ['ipc', 'HostIPCNamespace', "shares the host's IPC namespace: it can reach the node's shared memory and message queues"],
] as const;

function list(parts: string[]): string {
  return parts.length < 2 ? parts.join('') : `${parts.slice(0, -1).join(', ')} and ${parts[parts.length - 1]}`;
}

/** What isolates container `name` too little, strongest first. */
export function isolationFindings(name: string, i: Isolation): Finding[] {
  const out: Finding[] = [];
  if (i.privileged) out.push({ reason: 'Privileged', message: `Container ${name} is privileged: every capability, the host's devices, no seccomp filter` });
  if (runsAsHostRoot(i))
    out.push({ reason: 'RootOnHost', message: `Container ${name} runs as uid 0, which is root on the host: no user namespace maps it away` });
  for (const [ns, reason, text] of HOST_NAMESPACES) if (i.namespaces[ns] === 'host') out.push({ reason, message: `Container ${name} ${text}` });
  // Reports from before the flags have no list.
  const unbounded = i.unbounded ?? [];
  if (unbounded.length)
    out.push({ reason: 'UnboundedResources', message: `Container ${name} has ${list(unbounded.map((r) => RESOURCE_TEXT[r]))} of its own: it can take from the other pods on the node` });
  return out;
}
