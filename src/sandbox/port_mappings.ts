// A pod's port mappings, checked before anything is made (the portmap plugin would refuse
// them only once the pod's namespaces and IP exist, as an error that names no field), and
// turned into CNI's portMappings runtime config.
import { isIP } from 'net';
import { InvalidArgument } from '../errors';
import { Protocol, type PortMapping } from '../cri/gen/cri';
import type { PortMapping as CniPortMapping } from '../network/cni';

const CNI_PROTOCOL: Record<Protocol, CniPortMapping['protocol']> = { [Protocol.TCP]: 'tcp', [Protocol.UDP]: 'udp', [Protocol.SCTP]: 'sctp' };
const MAX_PORT = 65_535;

/**
 * Every mapping names a known protocol, a container port in 1-65535, a host port in
 * 0-65535 (0: none on the host, as kubelet sends for ports that only name a container
 * port) and an IP address or '' as host_ip; no host port is mapped twice on the same
 * host_ip and protocol. Else InvalidArgument naming the entry (`config.port_mappings[2].host_port`).
 */
export function checkPortMappings(mappings: PortMapping[], field = 'config.port_mappings'): void {
  const taken = new Map<string, number>();
  mappings.forEach((p, i) => {
    const at = `${field}[${i}]`;
    if (!CNI_PROTOCOL[p.protocol]) throw new InvalidArgument(`${at}.protocol: ${p.protocol} is not TCP (0), UDP (1) or SCTP (2)`);
    if (!Number.isInteger(p.container_port) || p.container_port < 1 || p.container_port > MAX_PORT)
      throw new InvalidArgument(`${at}.container_port: ${p.container_port} is not in 1-${MAX_PORT}`);
    if (!Number.isInteger(p.host_port) || p.host_port < 0 || p.host_port > MAX_PORT)
      throw new InvalidArgument(`${at}.host_port: ${p.host_port} is not 0 (no host port) or in 1-${MAX_PORT}`);
    if (p.host_ip && !isIP(p.host_ip)) throw new InvalidArgument(`${at}.host_ip: "${p.host_ip}" is not an IP address`);
    if (p.host_port === 0) return;
    const key = `${p.host_ip}|${p.host_port}|${p.protocol}`;
    const first = taken.get(key);
    if (first !== undefined)
      throw new InvalidArgument(`${at}.host_port: ${p.host_port}/${Protocol[p.protocol]} on host_ip "${p.host_ip}" is already mapped by ${field}[${first}]`);
    taken.set(key, i);
  });
}

/** The mappings that publish a host port, as the portmap plugin takes them (checked ones). */
export function cniPortMappings(mappings: PortMapping[]): CniPortMapping[] {
  return mappings
    .filter((p) => p.host_port > 0)
    .map((p) => ({ protocol: CNI_PROTOCOL[p.protocol], containerPort: p.container_port, hostPort: p.host_port, hostIp: p.host_ip || undefined }));
}
