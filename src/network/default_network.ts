// skiff's own default network: a bridge conflist written when the CNI conf dir has none,
// marked as skiff's so that it is the only config skiff ever rewrites. A new pod CIDR
// (UpdateRuntimeConfig) puts new pods on the new range; pods on the old one keep their
// bridge and gateway until they are gone, and then that bridge goes too.
//
// The bridge plugin refuses an IPv4 gateway on a bridge that already carries another
// IPv4 address ("already has an IP address different from ..."), so one bridge cannot
// serve two ranges: a change while pods use the bridge moves new pods to the next of
// skiff's bridge names (<bridge>-1 .. -9); with no pod on it, the bridge is deleted and
// the plugin makes it again with the new gateway.
import { promises as fsp } from 'fs';
import * as path from 'path';
import { FailedPrecondition, InvalidArgument } from '../errors';
import { deleteBridge, interfaceIPv4 } from '../sys/libc';
import type { Logger } from '../log';
import { writeFileAtomic } from '../store/records';
import type { CniNetwork, NetworkList } from './cni';

export const DEFAULT_CONFIG_NAME = '10-skiff-bridge.conflist';
/** The top-level conflist key that marks a file as skiff's (libcni ignores unknown keys). */
const OWNER_KEY = 'skiff';
const OWNER_MARK = {
  writtenBy: 'skiffd',
  note: 'skiffd rewrites this file when kubelet gives a new pod CIDR; without this key skiffd never touches it',
};
const RECORD_FILE = 'pod-cidr.json';
const MAX_BRIDGE_SUFFIX = 9;
const IFNAMSIZ = 16;

export interface PodCidr {
  family: 4 | 6;
  /** The network address, host bits cleared. */
  network: bigint;
  prefix: number;
  /** `address/prefix`, canonical. */
  text: string;
}

export interface DefaultNetworkOptions {
  confDir: string;
  /** Where the pod CIDR kubelet gave last is recorded (kubelet does not send it again
   * after a restart of skiffd). */
  stateDir: string;
  /** The bridge of the default network, and the stem of the names after a change. */
  bridge: string;
  defaultPodCidr: string;
  /** host-local's dataDir; undefined: its own default. */
  ipamDataDir?: string;
  /** false: skiff writes and rewrites no network config; a pod CIDR is only recorded. */
  write: boolean;
  cni: CniNetwork;
  log: Logger;
}

interface OwnConfig {
  list: NetworkList;
  bridge: string;
  ranges: string;
}

export class DefaultNetwork {
  private recorded: string | undefined;

  constructor(private readonly o: DefaultNetworkOptions) {
    o.cni.afterTearDown = () => this.dropUnusedBridgesLocked();
  }

  /** The pod CIDR recorded from UpdateRuntimeConfig, if any. */
  get podCidr(): string | undefined {
    return this.recorded;
  }

  /** Start-up: read the record; write the default network when the conf dir has no
   * config; bring skiff's own file to the recorded CIDR (a crash may have come between
   * recording it and rewriting); remove skiff's bridges that no pod uses. */
  async init(): Promise<void> {
    this.recorded = await this.readRecord();
    if (!this.o.write) return;
    await this.o.cni.withConfigExclusive(async () => {
      await fsp.mkdir(this.o.confDir, { recursive: true, mode: 0o755 });
      const own = await this.ownConfig();
      if (!own) {
        if (await this.confDirHasConfig()) return; // the operator's, or a broken one: theirs
        const cidrs = parsePodCidrs(this.recorded ?? this.o.defaultPodCidr, this.recorded ? `pod CIDR recorded in ${this.recordFile()}` : 'network.default_pod_cidr');
        await this.writeConflist(path.join(this.o.confDir, DEFAULT_CONFIG_NAME), this.o.bridge, cidrs, 'skiff');
        this.o.log.info('wrote the default CNI network', { dir: this.o.confDir, cidr: cidrText(cidrs), bridge: this.o.bridge });
        return;
      }
      if (this.recorded && own.ranges !== this.recorded) {
        try {
          await this.moveTo(own, parsePodCidrs(this.recorded, `pod CIDR recorded in ${this.recordFile()}`));
        } catch (e) {
          this.o.log.warn('the default CNI network stays on its range', { file: own.list.file, ranges: own.ranges, recorded: this.recorded, error: (e as Error).message });
        }
      }
      await this.dropUnusedBridges();
    });
  }

  /** UpdateRuntimeConfig's pod CIDR: recorded, and skiff's own network moved to it. The
   * same CIDR again changes nothing; a bad one changes nothing either. */
  async updatePodCidr(value: string): Promise<void> {
    const cidrs = parsePodCidrs(value, 'runtime_config.network_config.pod_cidr');
    const text = cidrText(cidrs);
    await this.o.cni.withConfigExclusive(async () => {
      if (text === this.recorded) return;
      const own = this.o.write ? await this.ownConfig() : undefined;
      if (!own) {
        await this.record(text);
        const active = await this.o.cni.load().catch(() => undefined);
        this.o.log.info('pod CIDR recorded; the CNI network config is not skiff\'s and is left as it is', { cidr: text, config: active?.file ?? `none in ${this.o.confDir}` });
        return;
      }
      if (own.ranges === text) {
        await this.record(text);
        return;
      }
      const bridge = await this.planBridge(own, cidrs); // refuses before anything changed
      await this.record(text);
      await this.rewrite(own, bridge, cidrs);
    });
  }

  private async moveTo(own: OwnConfig, cidrs: PodCidr[]): Promise<void> {
    await this.rewrite(own, await this.planBridge(own, cidrs), cidrs);
  }

  private async rewrite(own: OwnConfig, bridge: string, cidrs: PodCidr[]): Promise<void> {
    // No pod uses the bridge: delete it, so the plugin makes it with the new gateway.
    if (bridge === own.bridge && !(await this.attachedBridges()).has(bridge)) deleteBridge(bridge);
    await this.writeConflist(own.list.file, bridge, cidrs, own.list.name);
    this.o.log.info('moved the default CNI network to a new pod CIDR', { file: own.list.file, from: own.ranges, to: cidrText(cidrs), bridge, previousBridge: own.bridge });
    await this.dropUnusedBridges();
  }

  /** The bridge for the new range: one whose pods already have exactly this range (a
   * change back), else the current one when no pod uses it, else the first of skiff's
   * names that no pod uses. A range that overlaps one still in use on another bridge
   * would make the host's routes ambiguous: refused, before anything changed. */
  private async planBridge(own: OwnConfig, cidrs: PodCidr[]): Promise<string> {
    const attached = await this.attachedBridges();
    const text = cidrText(cidrs);
    for (const [b, ranges] of attached) if (cidrText(ranges) === text) return b;
    for (const [b, ranges] of attached)
      for (const r of ranges)
        for (const c of cidrs)
          if (overlaps(r, c)) throw new FailedPrecondition(`pod_cidr ${c.text} overlaps ${r.text}, still used by pods on bridge ${b}: remove those pods first`);
    const inUse = async (b: string) => attached.has(b) || (await hasPorts(b));
    if (!(await inUse(own.bridge))) return own.bridge;
    for (const b of this.bridgeNames()) if (b !== own.bridge && !(await inUse(b))) return b;
    throw new FailedPrecondition(`pod_cidr ${text}: pods still use every one of the bridges ${this.bridgeNames().join(', ')}`);
  }

  private async dropUnusedBridgesLocked(): Promise<void> {
    if (!this.o.write) return;
    await this.o.cni.withConfigExclusive(() => this.dropUnusedBridges()).catch((e: Error) => this.o.log.warn('could not remove an unused bridge of the default network', { error: e.message }));
  }

  /** Delete skiff's bridges that no pod uses: every one but the current, and the current
   * one too when its gateway is not the current range's (the plugin makes it again). */
  private async dropUnusedBridges(): Promise<void> {
    const own = await this.ownConfig();
    if (!own) return; // the operator's network: its bridges are not skiff's to remove
    const attached = await this.attachedBridges();
    const gateway = v4Gateway(own.ranges);
    for (const b of new Set([...this.bridgeNames(), own.bridge])) {
      if (!(await isBridge(b)) || attached.has(b) || (await hasPorts(b))) continue;
      if (b === own.bridge) {
        const address = interfaceIPv4(b);
        if (!gateway || !address || address === gateway) continue;
        this.o.log.info('deleting the default network bridge: its address is not the gateway of the pod CIDR and no pod uses it', { bridge: b, address, gateway });
      } else {
        this.o.log.info('deleting a bridge of the default network that no pod uses any more', { bridge: b });
      }
      deleteBridge(b);
    }
  }

  /** The bridges the pods' cached ADDs name, with the ranges they were given. */
  private async attachedBridges(): Promise<Map<string, PodCidr[]>> {
    const out = new Map<string, PodCidr[]>();
    for (const list of await this.o.cni.attachedLists()) {
      const b = bridgeOf(list);
      if (!b) continue;
      const ranges = out.get(b.bridge) ?? [];
      for (const text of b.ranges ? b.ranges.split(',') : []) {
        try {
          ranges.push(...parsePodCidrs(text, 'cached CNI config'));
        } catch {
          /* an operator's range skiff cannot read: no overlap check for it */
        }
      }
      out.set(b.bridge, ranges);
    }
    return out;
  }

  /** The config in use, when skiff wrote it. */
  private async ownConfig(): Promise<OwnConfig | undefined> {
    const list = await this.o.cni.load().catch(() => undefined);
    if (!list) return undefined;
    let doc: Record<string, unknown>;
    try {
      doc = JSON.parse(await fsp.readFile(list.file, 'utf8')) as Record<string, unknown>;
    } catch {
      return undefined;
    }
    const mark = doc[OWNER_KEY] as { writtenBy?: unknown } | undefined;
    const b = bridgeOf(list);
    if (mark?.writtenBy !== OWNER_MARK.writtenBy || !b) return undefined;
    return { list, bridge: b.bridge, ranges: b.ranges };
  }

  private async confDirHasConfig(): Promise<boolean> {
    return (await fsp.readdir(this.o.confDir)).some((n) => /\.(conflist|conf|json)$/.test(n));
  }

  /** `<bridge>`, then `<bridge>-1` .. `-9` (the stem shortened to fit IFNAMSIZ). */
  private bridgeNames(): string[] {
    const names = [this.o.bridge];
    for (let i = 1; i <= MAX_BRIDGE_SUFFIX; i++) names.push(`${this.o.bridge.slice(0, IFNAMSIZ - 1 - `-${i}`.length)}-${i}`);
    return names;
  }

  private async writeConflist(file: string, bridge: string, cidrs: PodCidr[], name: string): Promise<void> {
    const conf = {
      cniVersion: '1.0.0',
      name,
      [OWNER_KEY]: OWNER_MARK,
      plugins: [
        {
          type: 'bridge',
          bridge,
          isGateway: true,
          ipMasq: true,
          hairpinMode: true,
          ipam: {
            type: 'host-local',
            ranges: cidrs.map((c) => [{ subnet: c.text }]),
            routes: cidrs.map((c) => ({ dst: c.family === 4 ? '0.0.0.0/0' : '::/0' })),
            ...(this.o.ipamDataDir ? { dataDir: this.o.ipamDataDir } : {}),
          },
        },
        { type: 'portmap', capabilities: { portMappings: true }, snat: true },
      ],
    };
    await writeFileAtomic(file, JSON.stringify(conf, null, 2) + '\n', 0o644);
  }

  private recordFile(): string {
    return path.join(this.o.stateDir, RECORD_FILE);
  }

  private async readRecord(): Promise<string | undefined> {
    let text: string;
    try {
      text = await fsp.readFile(this.recordFile(), 'utf8');
    } catch {
      return undefined;
    }
    try {
      const v = (JSON.parse(text) as { podCidr?: unknown }).podCidr;
      if (typeof v === 'string') return cidrText(parsePodCidrs(v, 'podCidr'));
    } catch {
      /* reported below */
    }
    this.o.log.warn('ignoring an unreadable pod CIDR record', { file: this.recordFile() });
    return undefined;
  }

  private async record(text: string): Promise<void> {
    await fsp.mkdir(this.o.stateDir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(this.recordFile(), JSON.stringify({ podCidr: text }), 0o600);
    this.recorded = text;
  }
}

/** The bridge plugin of a config and its host-local ranges (`a,b`), if it has one. */
function bridgeOf(list: NetworkList): { bridge: string; ranges: string } | undefined {
  const p = list.plugins.find((x) => x.type === 'bridge') as { bridge?: unknown; ipam?: { ranges?: { subnet?: unknown }[][] } } | undefined;
  if (!p) return undefined;
  const ranges = (p.ipam?.ranges ?? []).map((r) => r[0]?.subnet).filter((s): s is string => typeof s === 'string');
  return { bridge: typeof p.bridge === 'string' ? p.bridge : 'cni0', ranges: ranges.join(',') };
}

async function isBridge(name: string): Promise<boolean> {
  return fsp.access(path.join('/sys/class/net', name, 'bridge')).then(() => true, () => false);
}

async function hasPorts(name: string): Promise<boolean> {
  return fsp.readdir(path.join('/sys/class/net', name, 'brif')).then((p) => p.length > 0, () => false);
}

/** The gateway host-local gives an IPv4 range (its first address), if there is one. */
function v4Gateway(ranges: string): string | undefined {
  try {
    const v4 = parsePodCidrs(ranges, 'range').find((c) => c.family === 4);
    return v4 ? formatIp(v4.network + 1n, 4) : undefined;
  } catch {
    return undefined;
  }
}

function overlaps(a: PodCidr, b: PodCidr): boolean {
  if (a.family !== b.family) return false;
  const bits = a.family === 4 ? 32 : 128;
  const p = Math.min(a.prefix, b.prefix);
  return a.network >> BigInt(bits - p) === b.network >> BigInt(bits - p);
}

const cidrText = (cidrs: PodCidr[]) => cidrs.map((c) => c.text).join(',');

/** A pod CIDR as kubelet sends it: one range, or an IPv4 and an IPv6 one separated by a
 * comma. Host bits are cleared; a range must leave room for a gateway and a pod. */
export function parsePodCidrs(value: string, field: string): PodCidr[] {
  const parts = value.split(',').map((s) => s.trim());
  if (parts.length > 2 || parts.some((s) => !s)) throw new InvalidArgument(`${field} "${value}": one CIDR, or an IPv4 and an IPv6 one separated by a comma`);
  const out = parts.map((p) => parseCidr(p, field));
  if (out.length === 2 && out[0].family === out[1].family) throw new InvalidArgument(`${field} "${value}": two IPv${out[0].family} ranges; at most one per family`);
  return out.sort((a, b) => a.family - b.family);
}

function parseCidr(s: string, field: string): PodCidr {
  const m = /^([0-9a-fA-F:.]+)\/(\d{1,3})$/.exec(s);
  const bad = (why: string) => new InvalidArgument(`${field} "${s}" is not a CIDR: ${why}`);
  if (!m) throw bad('want address/prefix');
  const family = m[1].includes(':') ? 6 : 4;
  const ip = parseIp(m[1], family);
  if (ip === undefined) throw bad(`"${m[1]}" is not an IPv${family} address`);
  const bits = family === 4 ? 32 : 128;
  const prefix = Number(m[2]);
  if (prefix > bits - 2) throw bad(`a /${prefix} leaves no room for a gateway and a pod`);
  const network = (ip >> BigInt(bits - prefix)) << BigInt(bits - prefix);
  return { family, network, prefix, text: `${formatIp(network, family)}/${prefix}` };
}

function parseIp(s: string, family: 4 | 6): bigint | undefined {
  if (family === 4) {
    const o = s.split('.');
    if (o.length !== 4 || o.some((x) => !/^\d{1,3}$/.test(x) || Number(x) > 255)) return undefined;
    return o.reduce((a, x) => (a << 8n) | BigInt(Number(x)), 0n);
  }
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const groups = (h: string) => (h ? h.split(':') : []);
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  const missing = 8 - head.length - tail.length;
  if ((halves.length === 2 ? missing < 1 : missing !== 0) || [...head, ...tail].some((g) => !/^[0-9a-fA-F]{1,4}$/.test(g))) return undefined;
  return [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...tail].reduce((a, g) => (a << 16n) | BigInt(parseInt(g, 16)), 0n);
}

function formatIp(n: bigint, family: 4 | 6): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => String((n >> s) & 0xffn)).join('.');
  const g = [...Array(8).keys()].map((i) => Number((n >> BigInt(112 - 16 * i)) & 0xffffn).toString(16));
  // The longest run of two or more zero groups becomes "::".
  let best = { at: -1, len: 1 };
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && g[j] === '0') j++;
    if (j - i > best.len) best = { at: i, len: j - i };
    i = j === i ? i + 1 : j;
  }
  return best.at < 0 ? g.join(':') : `${g.slice(0, best.at).join(':')}::${g.slice(best.at + best.len).join(':')}`;
}
