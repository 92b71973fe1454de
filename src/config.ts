// skiffd's configuration: one typed schema with every key's default and meaning, read
// from a TOML file and overridden by flags; an unknown key or a bad value is an error
// that names it, so a typo never passes silently.
import { promises as fsp } from 'fs';
import * as path from 'path';
import { parse as parseToml } from 'smol-toml';
import { parseReference } from './image/reference';

type Kind = 'string' | 'number' | 'boolean' | 'string[]' | 'level';
interface Key {
  kind: Kind;
  default: string | number | boolean | string[];
  doc: string;
  /** Numbers: the smallest value allowed. */
  min?: number;
}

/** Every configuration key, as `section.key` (or a top-level `key`). */
export const SCHEMA = {
  root: { kind: 'string', default: '/var/lib/skiff', doc: 'persistent state: content, snapshots, metadata' },
  state: { kind: 'string', default: '/run/skiff', doc: 'runtime state: pods, bundles, netns (empty after a reboot)' },
  log_level: { kind: 'level', default: 'info', doc: 'skiffd log level: debug, info, warn, error' },
  'cri.socket': { kind: 'string', default: '/run/skiff/skiff.sock', doc: 'CRI gRPC unix socket' },
  'cri.socket_mode': { kind: 'string', default: '0660', doc: 'file mode of the CRI socket (octal)' },
  'cri.runtime_handler': { kind: 'string', default: 'skiff', doc: 'name of the runtime handler (the empty name means it too)' },
  'cri.userns_runtime_handler': { kind: 'string', default: 'skiff-userns', doc: 'name of the runtime handler that gives every pod a user namespace of its own, with host ids from the userns pool; empty turns it off' },
  'cri.cgroup_parent': { kind: 'string', default: '/kubepods', doc: 'cgroup (cgroupfs driver) for pods that name no cgroup_parent' },
  'cri.restrict_oom_score_adj': { kind: 'boolean', default: true, doc: 'clamp oom_score_adj to what the host allows instead of failing' },
  'cri.seccomp_profile_root': { kind: 'string', default: '/var/lib/kubelet/seccomp', doc: 'where relative Localhost seccomp profiles are found' },
  'cri.default_pids_limit': { kind: 'number', default: 0, min: 0, doc: "pids.max of each container whose CRI config sets none (no unified pids.max), so a fork bomb stays in its container; 0: off (kubelet's podPidsLimit bounds the pod, when set)" },
  'userns.first_host_id': { kind: 'number', default: 1073741824, min: 65536, doc: 'first host id of the pool the userns handler takes 65536-id ranges from (a multiple of 65536); keep the pool clear of /etc/subuid, /etc/subgid and kubelet\'s own range' },
  'userns.pod_ranges': { kind: 'number', default: 16384, min: 1, doc: 'ranges of 65536 host ids in the pool: the most pods of the userns handler at once' },
  'cdi.spec_dirs': { kind: 'string[]', default: ['/etc/cdi', '/var/run/cdi'], doc: 'CDI spec directories (.json, .yaml, .yml), read for each CreateContainer that names CDI devices; a device in a later directory wins over one in an earlier' },
  'shim.binary': { kind: 'string', default: '', doc: "skiff-shim path; empty: the one built beside skiffd, then $PATH" },
  'checkpoint.criu': { kind: 'string', default: '', doc: 'CRIU binary for CheckpointContainer and restores (4.x; checked with `criu check` at start-up); empty: criu on $PATH' },
  'image.config_path': { kind: 'string', default: '/etc/skiff/certs.d', doc: 'registry hosts.toml directory (containerd format)' },
  'image.unpack_binary': { kind: 'string', default: '', doc: 'skiff-unpack path (unpacks layers); empty: the one built beside skiffd, then $PATH' },
  'image.parallel_layers': { kind: 'number', default: 3, min: 1, doc: 'layers downloaded at once per pull' },
  'image.stall_timeout_s': { kind: 'number', default: 60, min: 1, doc: 'a blob download with no progress for this long fails' },
  'image.attempts': { kind: 'number', default: 3, min: 1, doc: 'tries of a registry request that fails in a way that can recover (5xx, 429, a reset, a timeout; not a refused loopback port, a certificate or an unknown name)' },
  'image.retry_window_s': { kind: 'number', default: 30, min: 0, doc: 'no new try of a failed registry request starts once this long has passed since its first' },
  'image.pinned_images': { kind: 'string[]', default: [] as string[], doc: 'image references reported pinned and never removed by RemoveImage (images containers use are kept too)' },
  'network.conf_dir': { kind: 'string', default: '/etc/cni/net.d', doc: 'CNI configuration directory' },
  'network.bin_dirs': { kind: 'string[]', default: ['/opt/cni/bin', '/usr/lib/cni'], doc: 'CNI plugin directories, searched in order' },
  'network.default_pod_cidr': { kind: 'string', default: '10.88.0.0/16', doc: 'pod CIDR of the default bridge network until kubelet gives one (UpdateRuntimeConfig)' },
  'network.write_default_config': { kind: 'boolean', default: true, doc: 'write a bridge conflist when conf_dir has none, and move it to the pod CIDR kubelet gives' },
  'network.bridge': { kind: 'string', default: 'skiff0', doc: 'bridge of the default network; after a pod CIDR change while pods use it, new pods go on <bridge>-1 .. -9' },
  'network.ipam_data_dir': { kind: 'string', default: '', doc: "host-local IPAM state dir of the default network; empty: host-local's own (/var/lib/cni/networks)" },
  'network.plugin_timeout_s': { kind: 'number', default: 60, min: 1, doc: 'a CNI plugin call that runs longer is killed' },
  'metrics.address': { kind: 'string', default: '127.0.0.1:9658', doc: 'Prometheus /metrics endpoint host:port; empty turns it off' },
  'streaming.address': { kind: 'string', default: '127.0.0.1:0', doc: 'streaming server (exec, attach, port-forward) host:port; port 0 picks a free one' },
  'streaming.tls_cert': { kind: 'string', default: '', doc: 'PEM certificate for the streaming server; empty: plain HTTP' },
  'streaming.tls_key': { kind: 'string', default: '', doc: 'PEM key for streaming.tls_cert' },
  'events.kubeconfig': { kind: 'string', default: '', doc: "kubeconfig (e.g. the kubelet's) with which skiffd posts isolation findings as Kubernetes Events on the pod; empty, or a file that is not there at start: off" },
  'debug.failpoints': { kind: 'string[]', default: [] as string[], doc: 'tests only: steps where skiffd kills itself or fails (step=kill|error, see src/failpoints.ts); also SKIFF_FAILPOINTS' },
} satisfies Record<string, Key>;

export type ConfigKey = keyof typeof SCHEMA;
type ValueOf<K extends ConfigKey> = (typeof SCHEMA)[K]['default'] extends string[] ? string[] : (typeof SCHEMA)[K]['default'] extends number ? number : (typeof SCHEMA)[K]['default'] extends boolean ? boolean : string;
export type SkiffConfig = { readonly [K in ConfigKey]: ValueOf<K> };

export class ConfigError extends Error {}

export const DEFAULT_CONFIG_FILE = '/etc/skiff/config.toml';

function coerce(key: string, spec: Key, v: unknown, from: string): string | number | boolean | string[] {
  const bad = (want: string) => new ConfigError(`${from}: "${key}" must be ${want}, got ${JSON.stringify(v)}`);
  switch (spec.kind) {
    case 'string':
      if (typeof v !== 'string') throw bad('a string');
      return v;
    case 'level':
      if (typeof v !== 'string' || !['debug', 'info', 'warn', 'error'].includes(v)) throw bad('one of debug, info, warn, error');
      return v;
    case 'boolean':
      if (typeof v === 'boolean') return v;
      if (v === 'true' || v === 'false') return v === 'true';
      throw bad('true or false');
    case 'number': {
      const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
      if (!Number.isFinite(n) || (spec.min !== undefined && n < spec.min)) throw bad(`a number${spec.min !== undefined ? ` >= ${spec.min}` : ''}`);
      return n;
    }
    case 'string[]':
      if (typeof v === 'string') return v.split(',').filter(Boolean);
      if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) throw bad('a list of strings');
      return v as string[];
  }
}

/** Flatten a parsed TOML document into `section.key` entries. */
function flatten(doc: Record<string, unknown>, file: string): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const [k, v] of Object.entries(doc)) {
    if (v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Date)) {
      for (const [k2, v2] of Object.entries(v as Record<string, unknown>)) out.set(`${k}.${k2}`, v2);
    } else out.set(k, v);
  }
  for (const k of out.keys()) if (!(k in SCHEMA)) throw new ConfigError(`${file}: unknown key "${k}"`);
  return out;
}

export interface ParsedArgs {
  configFile?: string;
  printConfig: boolean;
  help: boolean;
  overrides: Map<string, string>;
}

/** Flags: `--config FILE`, `--print-config`, and `--<key> VALUE` for every schema key
 * (`--cri.socket`, `--root`; `-` and `_` are the same). */
export function parseArgs(argv: string[]): ParsedArgs {
  const out: ParsedArgs = { printConfig: false, help: false, overrides: new Map() };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--print-config') out.printConfig = true;
    else if (a === '-h' || a === '--help') out.help = true;
    else if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = (eq > 0 ? a.slice(2, eq) : a.slice(2)).replace(/-/g, '_');
      const value = eq > 0 ? a.slice(eq + 1) : argv[++i];
      if (value === undefined) throw new ConfigError(`flag --${name} needs a value`);
      if (name === 'config') out.configFile = value;
      else if (name in SCHEMA) out.overrides.set(name, value);
      else throw new ConfigError(`unknown flag "${a}"`);
    } else throw new ConfigError(`unexpected argument "${a}"`);
  }
  return out;
}

/** The effective configuration: defaults, then the file (when it exists, or when it was
 * named explicitly), then flags. Paths in `root`/`state` derive the socket's default. */
export async function loadConfig(args: ParsedArgs): Promise<SkiffConfig> {
  const values = new Map<string, unknown>(Object.entries(SCHEMA).map(([k, s]) => [k, s.default]));
  const file = args.configFile ?? DEFAULT_CONFIG_FILE;
  let text: string | undefined;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || args.configFile) throw new ConfigError(`config file ${file}: ${(e as Error).message}`);
  }
  const explicit = new Set<string>();
  if (text !== undefined) {
    let doc: Record<string, unknown>;
    try {
      doc = parseToml(text) as Record<string, unknown>;
    } catch (e) {
      throw new ConfigError(`config file ${file}: ${(e as Error).message.split('\n')[0]}`);
    }
    for (const [k, v] of flatten(doc, file)) {
      values.set(k, coerce(k, SCHEMA[k as ConfigKey], v, file));
      explicit.add(k);
    }
  }
  for (const [k, v] of args.overrides) {
    values.set(k, coerce(k, SCHEMA[k as ConfigKey], v, `flag --${k}`));
    explicit.add(k);
  }
  // The socket lives in the state dir unless placed elsewhere on purpose.
  if (!explicit.has('cri.socket') && explicit.has('state')) values.set('cri.socket', path.join(values.get('state') as string, 'skiff.sock'));
  for (const k of ['root', 'state', 'cri.socket', 'image.config_path', 'network.conf_dir'] as const) {
    if (!path.isAbsolute(values.get(k) as string)) throw new ConfigError(`"${k}" must be an absolute path, got "${values.get(k)}"`);
  }
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$/.test(values.get('network.bridge') as string)) throw new ConfigError(`"network.bridge" must be an interface name of 1 to 15 letters, digits, "_", "." or "-", got "${values.get('network.bridge')}"`);
  const ipamDir = values.get('network.ipam_data_dir') as string;
  if (ipamDir && !path.isAbsolute(ipamDir)) throw new ConfigError(`"network.ipam_data_dir" must be an absolute path or empty, got "${ipamDir}"`);
  const metricsAddress = values.get('metrics.address') as string;
  if (metricsAddress && !/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/.test(metricsAddress)) throw new ConfigError(`"metrics.address" must be host:port or empty, got "${metricsAddress}"`);
  if (!/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/.test(values.get('streaming.address') as string)) throw new ConfigError(`"streaming.address" must be host:port, got "${values.get('streaming.address')}"`);
  if (!values.get('streaming.tls_cert') !== !values.get('streaming.tls_key')) throw new ConfigError('"streaming.tls_cert" and "streaming.tls_key" go together');
  for (const dir of values.get('cdi.spec_dirs') as string[]) if (!path.isAbsolute(dir)) throw new ConfigError(`"cdi.spec_dirs" must hold absolute paths, got "${dir}"`);
  for (const ref of values.get('image.pinned_images') as string[]) {
    try {
      parseReference(ref);
    } catch (e) {
      throw new ConfigError(`"image.pinned_images": "${ref}" is not an image reference: ${(e as Error).message}`);
    }
  }
  const pidsLimit = values.get('cri.default_pids_limit') as number;
  // The kernel's PID_MAX_LIMIT: pids.max takes no more.
  if (!Number.isSafeInteger(pidsLimit) || pidsLimit > 4_194_304) throw new ConfigError(`"cri.default_pids_limit" must be a whole number of processes from 0 (off) to 4194304, got ${pidsLimit}`);
  const kubeconfig = values.get('events.kubeconfig') as string;
  if (kubeconfig && !path.isAbsolute(kubeconfig)) throw new ConfigError(`"events.kubeconfig" must be an absolute path or empty, got "${kubeconfig}"`);
  checkUsernsPool(values);
  if (!/^0?[0-7]{3}$/.test(values.get('cri.socket_mode') as string)) throw new ConfigError(`"cri.socket_mode" must be an octal mode like 0660`);
  return Object.freeze(Object.fromEntries(values)) as SkiffConfig;
}

/** The userns handler's name is its own, and its pool a whole number of 65536-id ranges
 * inside the 32-bit id space (2^32-1 is no id). */
function checkUsernsPool(values: Map<string, unknown>): void {
  const handler = values.get('cri.userns_runtime_handler') as string;
  if (handler && handler === values.get('cri.runtime_handler')) throw new ConfigError(`"cri.userns_runtime_handler" must differ from "cri.runtime_handler" ("${handler}")`);
  if (handler && !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(handler)) throw new ConfigError(`"cri.userns_runtime_handler" must be a DNS label like a RuntimeClass handler, got "${handler}"`);
  const first = values.get('userns.first_host_id') as number;
  const ranges = values.get('userns.pod_ranges') as number;
  if (!Number.isInteger(first) || first % 65536 !== 0) throw new ConfigError(`"userns.first_host_id" must be a multiple of 65536, got ${first}`);
  if (!Number.isInteger(ranges)) throw new ConfigError(`"userns.pod_ranges" must be a whole number, got ${ranges}`);
  if (first + ranges * 65536 > 2 ** 32 - 1) throw new ConfigError(`the userns pool (${ranges} ranges of 65536 from ${first}) passes the last host id, 2^32-2`);
}

/** The configuration as TOML, each key with its meaning: `skiffd --print-config`. */
export function printConfig(cfg: SkiffConfig): string {
  const sections = new Map<string, string[]>();
  for (const [k, spec] of Object.entries(SCHEMA) as [ConfigKey, Key][]) {
    const dot = k.indexOf('.');
    const section = dot < 0 ? '' : k.slice(0, dot);
    const name = dot < 0 ? k : k.slice(dot + 1);
    const lines = sections.get(section) ?? [];
    lines.push(`# ${spec.doc} (default ${JSON.stringify(spec.default)})`, `${name} = ${JSON.stringify(cfg[k])}`);
    sections.set(section, lines);
  }
  const out: string[] = [];
  for (const [s, lines] of sections) out.push(...(s ? ['', `[${s}]`] : []), ...lines);
  return out.join('\n') + '\n';
}
