// CNI plugin invocation for pods (CNI spec 1.0 / 0.4 conflists): ADD in order with each
// result chained as prevResult, DEL in reverse, CHECK; the result and the config used
// are cached per pod (as libcni does) so DEL after a restart of skiffd undoes exactly
// what ADD did. Set-ups share the network config; a change of it (default_network.ts)
// holds them back while it runs.
import { spawn } from 'child_process';
import { promises as fsp } from 'fs';
import * as path from 'path';
import { Internal, InvalidArgument } from '../errors';
import { failpoint } from '../failpoints';
import { SharedLock } from '../store/keyed_lock';
import { writeFileAtomic } from '../store/records';
import { readProcFile } from '../sys/proc_file';

export interface CniOptions {
  confDir: string;
  binDirs: string[];
  /** Results of ADD per pod, for DEL and CHECK later. */
  cacheDir: string;
  ifName?: string;
  pluginTimeoutMs?: number;
  /** Told of every plugin run: metrics. */
  observe?: (o: { command: string; plugin: string; seconds: number; ok: boolean }) => void;
  /** Told of what went wrong but failed nothing (a cache write done behind a set-up). */
  warn?: (msg: string) => void;
}

export interface PortMapping {
  protocol: 'tcp' | 'udp' | 'sctp';
  containerPort: number;
  hostPort: number;
  hostIp?: string;
}

export interface PodNetworkRequest {
  id: string;
  name: string;
  namespace: string;
  uid: string;
  netnsPath: string;
  portMappings?: PortMapping[];
  cgroupParent?: string;
}

export interface PodIp {
  address: string;
  family: 4 | 6;
  gateway?: string;
}

export interface NetworkResult {
  ips: PodIp[];
  raw: CniResult;
}

interface CniResult {
  cniVersion?: string;
  interfaces?: { name: string; mac?: string; sandbox?: string }[];
  ips?: { address: string; gateway?: string; interface?: number; version?: string }[];
  [k: string]: unknown;
}

type PluginConf = { type: string; capabilities?: Record<string, boolean>; [k: string]: unknown };
export interface NetworkList {
  cniVersion: string;
  name: string;
  plugins: PluginConf[];
  /** The file it came from. */
  file: string;
}

interface CacheEntry {
  list: NetworkList;
  /** Absent while the ADD is pending. */
  result?: CniResult;
  /** Written before ADD ran; the result replaces it once ADD is done. */
  pending?: boolean;
  ifName: string;
  runtimeConfig: Record<string, unknown>;
  args: string;
}

const versionAtLeast = (v: string, want: string) => {
  const a = v.split('.').map(Number);
  const b = want.split('.').map(Number);
  for (let i = 0; i < 3; i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
  return true;
};

export class CniNetwork {
  private cached: { file: string; ino: number; mtimeMs: number; list: NetworkList } | undefined;
  private readonly ifName: string;
  private readonly configLock = new SharedLock();
  /** ADD results being written to their cache entries, by pod id: the set-up does not wait
   * for them; whatever reads or removes an entry does. */
  private readonly resultWrites = new Map<string, Promise<void>>();
  /** Runs after every tear-down, outside the config lock: the default network drops
   * what no pod uses any more. */
  afterTearDown: (() => Promise<void>) | undefined;

  constructor(private readonly opts: CniOptions) {
    this.ifName = opts.ifName ?? 'eth0';
  }

  /** The config file in use: the first in lexical order (.conflist, .conf, .json),
   * parsed; cached by inode and mtime (a rewrite is a rename, so a new inode). */
  async load(): Promise<NetworkList | undefined> {
    let names: string[];
    try {
      names = (await fsp.readdir(this.opts.confDir)).filter((n) => /\.(conflist|conf|json)$/.test(n)).sort();
    } catch {
      return undefined;
    }
    for (const n of names) {
      const file = path.join(this.opts.confDir, n);
      let st;
      try {
        st = await fsp.stat(file);
      } catch {
        continue;
      }
      if (this.cached && this.cached.file === file && this.cached.ino === st.ino && this.cached.mtimeMs === st.mtimeMs) return this.cached.list;
      const list = parseNetworkConfig(await fsp.readFile(file, 'utf8'), file);
      this.cached = { file, ino: st.ino, mtimeMs: st.mtimeMs, list };
      return list;
    }
    return undefined;
  }

  private async findPlugin(type: string): Promise<string | undefined> {
    if (!/^[A-Za-z0-9_.-]+$/.test(type)) return undefined;
    for (const d of this.opts.binDirs) {
      const p = path.join(d, type);
      try {
        await fsp.access(p, 1);
        return p;
      } catch {
        /* next dir */
      }
    }
    return undefined;
  }

  async status(): Promise<{ ready: boolean; reason?: string; message?: string }> {
    let list: NetworkList | undefined;
    try {
      list = await this.load();
    } catch (e) {
      return { ready: false, reason: 'NetworkPluginNotReady', message: (e as Error).message };
    }
    if (!list) return { ready: false, reason: 'NetworkPluginNotReady', message: `no CNI network config in ${this.opts.confDir}` };
    for (const p of list.plugins) {
      if (!(await this.findPlugin(p.type))) return { ready: false, reason: 'NetworkPluginNotReady', message: `CNI plugin "${p.type}" of ${list.file} not found in ${this.opts.binDirs.join(', ')}` };
    }
    return { ready: true };
  }

  /** Run fn with no pod set-up or tear-down in flight, and none starting until it is done. */
  withConfigExclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.configLock.exclusive(fn);
  }

  /** The network configs the pods set up so far were added with (their cached ADDs). */
  async attachedLists(): Promise<NetworkList[]> {
    const out: NetworkList[] = [];
    for (const id of await this.cachedIds()) {
      const entry = await this.readCache(id);
      if (entry?.list) out.push(entry.list);
    }
    return out;
  }

  /**
   * Wait (up to the plugin timeout) until no CNI plugin that an earlier skiffd started on
   * a netns under `netnsDir` still runs: a plugin outlives a crash of skiffd, and a DEL
   * that ran before its ADD ended would leave what the ADD adds after it (portmap's
   * rules). Returns how many were waited for.
   */
  async waitForOrphanedPlugins(netnsDir: string): Promise<number> {
    const prefix = `CNI_NETNS=${path.resolve(netnsDir)}/`;
    const orphans = async () => {
      const found: number[] = [];
      for (const pid of await fsp.readdir('/proc')) {
        if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
        const env = await readProcFile(`/proc/${pid}/environ`, 'latin1').catch(() => '');
        if (env.includes('\0CNI_COMMAND=') || env.startsWith('CNI_COMMAND=')) if (env.split('\0').some((v) => v.startsWith(prefix))) found.push(Number(pid));
      }
      return found;
    };
    const first = (await orphans()).length;
    const end = Date.now() + (this.opts.pluginTimeoutMs ?? 60_000);
    for (let left = first; left > 0 && Date.now() < end; left = (await orphans()).length) await new Promise((r) => setTimeout(r, 50));
    return first;
  }

  /** Drop temp files of cache writes a crash cut short; returns how many. */
  async dropTempFiles(): Promise<number> {
    const tmp = (await fsp.readdir(this.opts.cacheDir).catch(() => [] as string[])).filter((n) => n.startsWith('.tmp-') || n.endsWith('.json.tmp'));
    for (const n of tmp) await fsp.rm(path.join(this.opts.cacheDir, n), { force: true });
    return tmp.length;
  }

  /** The ids with a cache entry: added, or (pending) an ADD was about to run. */
  async cachedIds(): Promise<string[]> {
    try {
      return (await fsp.readdir(this.opts.cacheDir)).filter((n) => /^[A-Za-z0-9_.-]+\.json$/.test(n)).map((n) => n.slice(0, -'.json'.length));
    } catch {
      return [];
    }
  }

  private cacheFile(id: string): string {
    if (!/^[A-Za-z0-9_.-]+$/.test(id)) throw new InvalidArgument(`bad pod id "${id}"`);
    return path.join(this.opts.cacheDir, `${id}.json`);
  }

  private async exec(cmd: 'ADD' | 'DEL' | 'CHECK', plugin: PluginConf, list: NetworkList, e: { id: string; netns: string; args: string; ifName: string; runtimeConfig: Record<string, unknown>; prevResult?: CniResult }): Promise<CniResult | undefined> {
    const bin = await this.findPlugin(plugin.type);
    if (!bin) throw new Internal(`CNI ${cmd} for pod ${e.id}: plugin "${plugin.type}" not found in ${this.opts.binDirs.join(', ')}`);
    const conf: Record<string, unknown> = { ...plugin, name: list.name, cniVersion: list.cniVersion };
    const caps = plugin.capabilities ?? {};
    const rc = Object.fromEntries(Object.entries(e.runtimeConfig).filter(([k]) => caps[k]));
    if (Object.keys(rc).length) conf.runtimeConfig = rc;
    delete conf.capabilities;
    if (e.prevResult) conf.prevResult = e.prevResult;
    const env = {
      PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      CNI_COMMAND: cmd,
      CNI_CONTAINERID: e.id,
      CNI_NETNS: e.netns,
      CNI_IFNAME: e.ifName,
      CNI_ARGS: e.args,
      CNI_PATH: this.opts.binDirs.join(':'),
    };
    const started = process.hrtime.bigint();
    const observe = (ok: boolean) => this.opts.observe?.({ command: cmd, plugin: plugin.type, seconds: Number(process.hrtime.bigint() - started) / 1e9, ok });
    const { code, stdout, stderr } = await run(bin, env, JSON.stringify(conf), this.opts.pluginTimeoutMs ?? 60_000).catch((err: unknown) => {
      observe(false);
      throw err;
    });
    observe(code === 0);
    if (code !== 0) {
      let msg = stderr.trim() || `exit status ${code}`;
      try {
        const err = JSON.parse(stdout) as { code?: number; msg?: string; details?: string };
        if (err.msg) msg = `${err.msg}${err.details ? `: ${err.details}` : ''}`;
      } catch {
        /* not JSON: stderr says it */
      }
      throw new Internal(`CNI ${cmd} for pod ${e.id}: plugin ${plugin.type} failed: ${msg}`);
    }
    if (cmd !== 'ADD') return undefined;
    try {
      return JSON.parse(stdout) as CniResult;
    } catch {
      throw new Internal(`CNI ADD for pod ${e.id}: plugin ${plugin.type} printed no JSON result`);
    }
  }

  /**
   * ADD the pod to the network; on failure what was added is deleted again. The cache
   * entry (what the ADD will be given) is written first; the plugins run once `ready`
   * resolves (the netns pinned, whatever else the caller makes first), so the caller can
   * make those while the entry is written. Should `ready` reject, the entry goes and its
   * error is thrown.
   */
  async setUp(pod: PodNetworkRequest, ready?: Promise<unknown>): Promise<NetworkResult> {
    // A failure of the caller's that comes while the entry is written is thrown after it.
    ready?.catch(() => {});
    return this.configLock.shared(() => this.add(pod, ready));
  }

  private async add(pod: PodNetworkRequest, ready?: Promise<unknown>): Promise<NetworkResult> {
    const list = await this.load();
    if (!list) throw new Internal(`CNI: no network config in ${this.opts.confDir}`);
    const args = `IgnoreUnknown=1;K8S_POD_NAMESPACE=${pod.namespace};K8S_POD_NAME=${pod.name};K8S_POD_INFRA_CONTAINER_ID=${pod.id};K8S_POD_UID=${pod.uid}`;
    const runtimeConfig: Record<string, unknown> = {};
    if (pod.portMappings?.length) runtimeConfig.portMappings = pod.portMappings;
    if (pod.cgroupParent) runtimeConfig.cgroupPath = pod.cgroupParent;
    const e = { id: pod.id, netns: pod.netnsPath, args, ifName: this.ifName, runtimeConfig };
    // The intent of the ADD, durably, before a plugin runs: a DEL after a crash mid-ADD
    // needs the config and runtime config (port mappings) the ADD was given.
    await this.writeCache(pod.id, { list, ifName: this.ifName, runtimeConfig, args, pending: true });
    let prev: CniResult | undefined;
    let added = false;
    try {
      failpoint('run_pod.cni_pending');
      await ready;
      for (const p of list.plugins) {
        added = true;
        prev = (await this.exec('ADD', p, list, { ...e, prevResult: prev })) ?? prev;
        failpoint('run_pod.cni_plugin');
      }
    } catch (err) {
      if (added) for (const p of [...list.plugins].reverse()) await this.exec('DEL', p, list, { ...e, prevResult: prev }).catch(() => {});
      await fsp.rm(this.cacheFile(pod.id), { force: true });
      throw err;
    }
    const result = prev ?? {};
    // The result replaces the pending entry behind the set-up, which returns at once (the
    // pod's record is written meanwhile). Not synced: should a crash of skiffd or of the
    // host lose it, the pending entry serves the DEL as well; only a CHECK after a restart
    // needs the result.
    const write = this.writeResult(pod.id, { list, result, ifName: this.ifName, runtimeConfig, args });
    this.resultWrites.set(pod.id, write);
    void write.finally(() => {
      if (this.resultWrites.get(pod.id) === write) this.resultWrites.delete(pod.id);
    });
    return { ips: podIps(result, this.ifName), raw: result };
  }

  private async writeResult(id: string, entry: CacheEntry): Promise<void> {
    const tmp = `${this.cacheFile(id)}.tmp`;
    try {
      await fsp.writeFile(tmp, JSON.stringify(entry), { mode: 0o600 });
      await fsp.rename(tmp, this.cacheFile(id));
    } catch (e) {
      await fsp.rm(tmp, { force: true }).catch(() => {});
      const msg = `CNI cache: the ADD result of pod ${id} was not kept (a CHECK after a restart of skiffd skips it): ${(e as Error).message}`;
      if (this.opts.warn) this.opts.warn(msg);
      else process.emitWarning(msg);
    }
  }

  private async writeCache(id: string, entry: CacheEntry): Promise<void> {
    await fsp.mkdir(this.opts.cacheDir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(this.cacheFile(id), JSON.stringify(entry), 0o600);
  }

  private async readCache(id: string): Promise<CacheEntry | undefined> {
    await this.resultWrites.get(id);
    try {
      return JSON.parse(await fsp.readFile(this.cacheFile(id), 'utf8')) as CacheEntry;
    } catch {
      return undefined;
    }
  }

  /** DEL in reverse order with the cached config and result; idempotent, and fine
   * when the netns is already gone. */
  async tearDown(id: string, netnsPath?: string): Promise<void> {
    await this.configLock.shared(() => this.del(id, netnsPath));
    await this.afterTearDown?.();
  }

  private async del(id: string, netnsPath?: string): Promise<void> {
    const cached = await this.readCache(id);
    const list = cached?.list ?? (await this.load().catch(() => undefined));
    if (!list) return;
    if (!cached) {
      // Nothing was ever added for this pod (or its cache is gone): DEL is still safe,
      // but only when the plugins can run.
      if (!(await this.status()).ready) return;
    }
    // Only a path that is a network namespace: a pin that is gone, or a file a crash left
    // before the bind mount was made, would fail the plugins' DEL (the IP is still
    // released without one).
    const netns = netnsPath && (await isNetns(netnsPath)) ? netnsPath : '';
    const e = { id, netns, args: cached?.args ?? 'IgnoreUnknown=1', ifName: cached?.ifName ?? this.ifName, runtimeConfig: cached?.runtimeConfig ?? {}, prevResult: cached?.result };
    for (const p of [...list.plugins].reverse()) await this.exec('DEL', p, list, e);
    await fsp.rm(this.cacheFile(id), { force: true });
  }

  async check(id: string, netnsPath: string): Promise<void> {
    const cached = await this.readCache(id);
    if (!cached || cached.pending || !versionAtLeast(cached.list.cniVersion, '0.4.0')) return;
    for (const p of cached.list.plugins)
      await this.exec('CHECK', p, cached.list, { id, netns: netnsPath, args: cached.args, ifName: cached.ifName, runtimeConfig: cached.runtimeConfig, prevResult: cached.result });
  }
}

const NSFS_MAGIC = 0x6e736673;

async function isNetns(p: string): Promise<boolean> {
  try {
    return (await fsp.statfs(p)).type === NSFS_MAGIC;
  } catch {
    return false;
  }
}

export function parseNetworkConfig(text: string, file: string): NetworkList {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new InvalidArgument(`CNI config ${file}: ${(e as Error).message}`);
  }
  const name = doc.name;
  if (typeof name !== 'string' || !name) throw new InvalidArgument(`CNI config ${file}: no "name"`);
  const cniVersion = typeof doc.cniVersion === 'string' ? doc.cniVersion : '0.4.0';
  let plugins: PluginConf[];
  if (Array.isArray(doc.plugins)) plugins = doc.plugins as PluginConf[];
  else if (typeof doc.type === 'string') plugins = [doc as PluginConf];
  else throw new InvalidArgument(`CNI config ${file}: neither "plugins" nor "type"`);
  if (plugins.length === 0 || plugins.some((p) => !p || typeof p.type !== 'string')) throw new InvalidArgument(`CNI config ${file}: every plugin needs a "type"`);
  return { cniVersion, name, plugins, file };
}

/** The pod interface's addresses (prefix dropped), IPv4 first. */
function podIps(r: CniResult, ifName: string): PodIp[] {
  const podIf = (r.interfaces ?? []).findIndex((i) => i.name === ifName && i.sandbox);
  const ips = (r.ips ?? []).filter((ip) => ip.interface === undefined || podIf < 0 || ip.interface === podIf);
  return ips.map((ip) => {
    const address = ip.address.split('/')[0];
    return { address, family: address.includes(':') ? 6 : 4, gateway: ip.gateway } as PodIp;
  });
}

function run(bin: string, env: Record<string, string>, stdin: string, timeoutMs: number): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, [], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(t);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr: signal === 'SIGKILL' ? `killed after ${timeoutMs} ms` : stderr });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(stdin);
  });
}
