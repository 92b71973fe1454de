// Registry host configuration in containerd's directory format, so node
// set-ups carry over: <configPath>/<host>/hosts.toml (or _default/) with
// "server" and [host."URL"] mirror entries, tried in file order, then the server.
import { promises as fsp } from 'fs';
import * as path from 'path';
import { parse as parseToml } from 'smol-toml';
import { InvalidArgument } from '../errors';

export type HostCapability = 'pull' | 'resolve' | 'push';

export interface RegistryHost {
  /** Where requests go: scheme://host[:port]; apiRoot is appended. */
  origin: string;
  /** The API root path: "/v2", or the configured path with override_path. */
  apiRoot: string;
  capabilities: Set<HostCapability>;
  skipVerify: boolean;
  /** PEM CA certificates to trust for this host. */
  ca: Buffer[];
  headers: Record<string, string>;
}

const ALL: HostCapability[] = ['pull', 'resolve', 'push'];

/** The default upstream of a registry name (Docker Hub's is special). */
function defaultServer(registry: string): string {
  if (registry === 'docker.io') return 'https://registry-1.docker.io';
  const host = registry.replace(/:\d+$/, '');
  // Like containerd, plain HTTP is the default only for the local machine.
  const local = host === 'localhost' || host === '127.0.0.1' || host === '[::1]';
  return `${local ? 'http' : 'https'}://${registry}`;
}

function toHost(url: string, entry: Record<string, unknown>, dir: string, where: string): Promise<RegistryHost> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new InvalidArgument(`${where}: "${url}" is not a URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new InvalidArgument(`${where}: "${url}" is not http or https`);
  const caps = (entry.capabilities as string[] | undefined) ?? ALL;
  if (!Array.isArray(caps) || caps.some((c) => !ALL.includes(c as HostCapability)))
    throw new InvalidArgument(`${where}.capabilities: want a list of "pull", "resolve", "push"`);
  const basePath = u.pathname.replace(/\/+$/, '');
  const apiRoot = entry.override_path === true ? basePath || '/' : `${basePath}/v2`;
  const caFiles = entry.ca === undefined ? [] : Array.isArray(entry.ca) ? entry.ca : [entry.ca];
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries((entry.header as Record<string, unknown> | undefined) ?? {}))
    headers[k] = Array.isArray(v) ? v.join(', ') : String(v);
  return Promise.all(
    caFiles.map((f) => {
      if (typeof f !== 'string') throw new InvalidArgument(`${where}.ca: want a file path`);
      return fsp.readFile(path.isAbsolute(f) ? f : path.join(dir, f));
    }),
  ).then((ca) => ({
    origin: u.origin,
    apiRoot,
    capabilities: new Set(caps as HostCapability[]),
    skipVerify: entry.skip_verify === true,
    ca,
    headers,
  }));
}

async function readHostsToml(dir: string): Promise<Record<string, unknown> | null> {
  try {
    return parseToml(await fsp.readFile(path.join(dir, 'hosts.toml'), 'utf8')) as Record<string, unknown>;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new InvalidArgument(`${path.join(dir, 'hosts.toml')}: ${(e as Error).message}`);
  }
}

/**
 * The hosts to try for a registry, in order: its mirrors, then its server
 * (unless the server lacks the capability asked for).
 */
export async function registryHosts(configPath: string, registry: string): Promise<RegistryHost[]> {
  let dir = path.join(configPath, registry);
  let cfg = await readHostsToml(dir);
  if (!cfg) {
    dir = path.join(configPath, '_default');
    cfg = await readHostsToml(dir);
  }
  const hosts: RegistryHost[] = [];
  const file = path.join(dir, 'hosts.toml');
  for (const [url, entry] of Object.entries((cfg?.host as Record<string, Record<string, unknown>> | undefined) ?? {}))
    hosts.push(await toHost(url, entry, dir, `${file}: host."${url}"`));
  const server = typeof cfg?.server === 'string' ? cfg.server : defaultServer(registry);
  hosts.push(await toHost(server, cfg ?? {}, dir, `${file}: server`));
  return hosts;
}
