// The files a pod's containers share: /etc/hosts, /etc/resolv.conf and /etc/hostname,
// written as containerd writes them.
import { promises as fsp } from 'fs';
import * as os from 'os';
import { InvalidArgument } from '../errors';

const DEFAULT_HOSTS = `127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
fe00::0\tip6-localnet
ff00::0\tip6-mcastprefix
ff02::1\tip6-allnodes
ff02::2\tip6-allrouters
`;

/** A pod's DNS settings (CRI's DNSConfig). */
export interface DnsSettings {
  servers: string[];
  searches: string[];
  options: string[];
}

/** resolv.conf from the pod's dns_config, or the host's when it names nothing. */
export async function resolvConf(dns: DnsSettings | null, hostResolvConf = '/etc/resolv.conf'): Promise<string> {
  if (!dns || (dns.servers.length === 0 && dns.searches.length === 0 && dns.options.length === 0)) {
    try {
      return await fsp.readFile(hostResolvConf, 'utf8');
    } catch {
      return '';
    }
  }
  const bad = [...dns.servers, ...dns.searches, ...dns.options].find((v) => /[\s\n]/.test(v.trim()) || v.includes('\n'));
  if (bad !== undefined) throw new InvalidArgument(`dns_config: "${bad}" contains whitespace`);
  const lines: string[] = [];
  if (dns.searches.length) lines.push(`search ${dns.searches.join(' ')}`);
  for (const s of dns.servers) lines.push(`nameserver ${s}`);
  if (dns.options.length) lines.push(`options ${dns.options.join(' ')}`);
  return lines.join('\n') + '\n';
}

/** /etc/hosts: the host's for host-network pods, a loopback-only one otherwise. */
export async function hostsFile(hostNetwork: boolean, hostHosts = '/etc/hosts'): Promise<string> {
  if (!hostNetwork) return DEFAULT_HOSTS;
  try {
    return await fsp.readFile(hostHosts, 'utf8');
  } catch {
    return DEFAULT_HOSTS;
  }
}

export function hostnameFile(hostname: string, hostNetwork: boolean): string {
  return `${hostNetwork ? os.hostname() : hostname}\n`;
}
