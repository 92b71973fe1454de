// RunPodSandbox's config, checked field by field (errors name the field) and turned into
// the pod spec the sandbox service makes a pod of.
import * as path from 'path';
import { InvalidArgument } from '../../errors';
import { cniPortMappings, checkPortMappings } from '../../sandbox/port_mappings';
import type { PodSpec } from '../../sandbox/sandbox_service';
import { checkSysctls } from '../../sandbox/sysctls';
import { checkPodUserNamespace, podIdMappings } from '../../sandbox/userns';
import { NamespaceMode, PodSandboxConfig } from '../gen/cri';

/** The spec of a RunPodSandbox; `served` is the runtime handler skiff serves besides "". */
export function podSpec(config: PodSandboxConfig | null, runtimeHandler: string, served: string): PodSpec {
  if (!config) throw new InvalidArgument('config is required');
  const m = config.metadata;
  if (!m || !m.name || !m.namespace || !m.uid) throw new InvalidArgument('config.metadata needs name, namespace and uid');
  if (runtimeHandler && runtimeHandler !== served) throw new InvalidArgument(`runtime handler "${runtimeHandler}" is not configured (skiff serves "${served}" and the default "")`);
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
  checkPortMappings(config.port_mappings);
  return {
    config,
    name: { name: m.name, namespace: m.namespace, uid: m.uid, attempt: m.attempt },
    runtimeHandler,
    hostname: config.hostname,
    hostNetwork,
    pidMode,
    ipcMode,
    userns: podIdMappings(config),
    sysctls,
    dns: config.dns_config,
    portMappings: cniPortMappings(config.port_mappings),
    cgroup: { parent: linux?.cgroup_parent ?? '', resources: linux?.resources ?? null, overhead: linux?.overhead ?? null },
  };
}
