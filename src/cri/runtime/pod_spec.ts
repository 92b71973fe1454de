// RunPodSandbox's config, checked field by field (errors name the field) and turned into
// the pod spec the sandbox service makes a pod of.
import * as path from 'path';
import { FailedPrecondition, InvalidArgument } from '../../errors';
import { cniPortMappings, checkPortMappings } from '../../sandbox/port_mappings';
import type { PodSpec } from '../../sandbox/sandbox_service';
import { checkSysctls } from '../../sandbox/sysctls';
import { checkPodUserNamespace, podIdMappings } from '../../sandbox/userns';
import { NamespaceMode, PodSandboxConfig } from '../gen/cri';

/** The runtime handlers skiff serves, and what the userns handler needs to know. */
export interface ServedHandlers {
  /** cri.runtime_handler (the empty name means it too). */
  default: string;
  /** cri.userns_runtime_handler: every pod gets a user namespace; '' when off. */
  userns: string;
  /** Why this kernel cannot run the userns handler's pods; '' when it can. */
  usernsUnavailable: string;
  /** The pool of host ids skiff gives the userns handler's pods: [first, end). */
  usernsPool?: { first: number; end: number };
}

/** The names an image call may give besides "": images are the same for every handler. */
export function servedHandlerNames(h: ServedHandlers): string[] {
  return h.userns ? [h.default, h.userns] : [h.default];
}

const NS_FIELD = 'config.linux.security_context.namespace_options';

/**
 * What the userns handler cannot give a user namespace of its own, refused by name. The
 * host's network namespace holds the node's loopback services and abstract unix sockets,
 * which no user namespace guards; a user namespace cannot mount the /proc of the host's
 * PID namespace nor the /dev/mqueue of its IPC namespace (both belong to the host's user
 * namespace), and Kubernetes refuses these with hostUsers: false too; privileged asks for
 * the host's devices and full capabilities over the host, which a user namespace takes
 * away.
 */
function checkUsernsHandlerPod(config: PodSandboxConfig, handler: string): void {
  const ns = config.linux?.security_context?.namespace_options;
  const refuse = (what: string, why: string) => {
    throw new InvalidArgument(`runtime handler "${handler}" runs every pod in a user namespace of its own: ${what} is refused (${why})`);
  };
  if (ns?.network === NamespaceMode.NODE) refuse(`${NS_FIELD}.network NODE (the host's network)`, "the host's loopback services and abstract unix sockets are not guarded by a user namespace");
  if (ns?.pid === NamespaceMode.NODE) refuse(`${NS_FIELD}.pid NODE (the host's PID namespace)`, "a user namespace cannot mount the host PID namespace's /proc");
  if (ns?.ipc === NamespaceMode.NODE) refuse(`${NS_FIELD}.ipc NODE (the host's IPC namespace)`, "a user namespace cannot mount the host IPC namespace's /dev/mqueue");
  if (config.linux?.security_context?.privileged) refuse('config.linux.security_context.privileged (a privileged pod)', "a user namespace gives no host devices and no capabilities over the host");
}

/** The spec of a RunPodSandbox, for one of the handlers skiff serves. */
export function podSpec(config: PodSandboxConfig | null, runtimeHandler: string, served: ServedHandlers): PodSpec {
  if (!config) throw new InvalidArgument('config is required');
  const m = config.metadata;
  if (!m || !m.name || !m.namespace || !m.uid) throw new InvalidArgument('config.metadata needs name, namespace and uid');
  const usernsHandler = !!runtimeHandler && runtimeHandler === served.userns;
  if (runtimeHandler && runtimeHandler !== served.default && !usernsHandler)
    throw new InvalidArgument(`runtime handler "${runtimeHandler}" is not configured (skiff serves ${[served.default, served.userns].filter(Boolean).map((h) => `"${h}"`).join(', ')} and the default "")`);
  if (usernsHandler && served.usernsUnavailable) throw new FailedPrecondition(`runtime handler "${runtimeHandler}": this kernel cannot give pods user namespaces with id-mapped mounts (${served.usernsUnavailable})`);
  if (usernsHandler) checkUsernsHandlerPod(config, runtimeHandler);
  const linux = config.linux;
  const ns = linux?.security_context?.namespace_options ?? null;
  const hostNetwork = ns?.network === NamespaceMode.NODE;
  const pidMode = ns?.pid ?? NamespaceMode.CONTAINER;
  const ipcMode = ns?.ipc ?? NamespaceMode.POD;
  if (pidMode === NamespaceMode.TARGET) throw new InvalidArgument('namespace_options.pid: TARGET is for containers, not pods');
  const sysctls = linux?.sysctls ?? {};
  checkSysctls(sysctls, { hostNetwork, hostIpc: ipcMode === NamespaceMode.NODE });
  if (config.log_directory && !path.isAbsolute(config.log_directory)) throw new InvalidArgument(`log_directory "${config.log_directory}" must be an absolute path`);
  const userns = ns?.userns_options ?? null;
  checkPodUserNamespace(userns);
  const requested = podIdMappings(config);
  if (requested && served.usernsPool) checkClearOfPool(requested, served.usernsPool);
  checkPortMappings(config.port_mappings);
  return {
    config,
    name: { name: m.name, namespace: m.namespace, uid: m.uid, attempt: m.attempt },
    runtimeHandler,
    hostname: config.hostname,
    hostNetwork,
    pidMode,
    ipcMode,
    userns: requested,
    // The userns handler chooses the mappings when kubelet sent none (hostUsers unset).
    usernsFromPool: usernsHandler && !requested,
    sysctls,
    dns: config.dns_config,
    portMappings: cniPortMappings(config.port_mappings),
    cgroup: { parent: linux?.cgroup_parent ?? '', resources: linux?.resources ?? null, overhead: linux?.overhead ?? null },
  };
}

/** Mappings from elsewhere (kubelet's for hostUsers: false, or a client's) must leave the
 * pool's host ids to the userns handler's pods: sharing them would share a pod's host ids
 * with another pod. */
function checkClearOfPool(maps: { uidMappings: { hostID: number; size: number }[]; gidMappings: { hostID: number; size: number }[] }, pool: { first: number; end: number }): void {
  for (const [kind, list] of [['uids', maps.uidMappings], ['gids', maps.gidMappings]] as const) {
    list.forEach((m, i) => {
      if (m.hostID < pool.end && pool.first < m.hostID + m.size)
        throw new InvalidArgument(
          `${NS_FIELD}.userns_options.${kind}[${i}]: host ids ${m.hostID}+${m.size} overlap the ids skiff gives the userns handler's pods (${pool.first} to ${pool.end - 1}, userns.first_host_id and userns.pod_ranges)`,
        );
    });
  }
}
