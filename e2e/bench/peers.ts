// Which peers a benchmark measures skiff against: containerd, runc and crun binaries named
// by flags or found on $PATH, and a CRI-O the user runs, each with the version it reports
// or why it is not measured, so a result always says which peer it was taken against.
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { CriClient } from '../../src/cri/client';
import { containerdVersion, findOnPath } from '../fixtures/containerd';
import { errText, isExecutable } from './util';

/** What the command line named; undefined means "look on $PATH" (CRI-O: not measured). */
export interface PeerFlags {
  containerd?: string;
  runc?: string;
  crun?: string;
  crioSocket?: string;
}

/** A peer the run can use: a binary (CRI-O: its socket) and what it says it is. */
export interface Found {
  found: true;
  path: string;
  /** "containerd 2.1.5", "runc 1.3.6", "crun 1.8.1", "cri-o 1.31.0". */
  version: string;
}

export interface Missing {
  found: false;
  /** Why it is not measured, for the header: "crun not on $PATH". */
  why: string;
}

export type PeerBinary = Found | Missing;

export interface Peers {
  containerd: PeerBinary;
  /** The ctr of containerd's install (beside it, else on $PATH): the pull suite drives containerd with it. */
  ctr: PeerBinary;
  runc: PeerBinary;
  crun: PeerBinary;
  crio: PeerBinary;
}

/** The word that turns a peer off: `--crun none`. */
const NONE = 'none';

const FLAGS = new Map<string, keyof PeerFlags>([
  ['--containerd', 'containerd'],
  ['--runc', 'runc'],
  ['--crun', 'crun'],
  ['--crio-socket', 'crioSocket'],
]);

export const PEER_FLAGS_HELP = `peers (each suite prints the versions it measured; an absent peer is "not measured"):
  --containerd PATH    containerd binary (default: containerd on $PATH); its shim and ctr
                       are the ones beside it. 1.6+ and 2.x are supported.
  --runc PATH          runc binary, for containerd and the shim suite (default: on $PATH)
  --crun PATH          crun binary, for containerd and the shim suite (default: on $PATH)
  --crio-socket PATH   the CRI socket of a CRI-O you already run (default: none); the
                       benchmark only creates and removes its own pods there
  Any of --containerd, --runc, --crun takes "${NONE}" to leave that peer out.
`;

/** Takes the peer flags out of argv; the rest (suites, --runs) is left for the caller. A
 * flag given twice or without a value is an error (the returned string). */
export function parsePeerArgs(argv: string[]): { flags: PeerFlags; rest: string[] } | string {
  const flags: PeerFlags = {};
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(0, eq) : a;
    const key = FLAGS.get(name);
    if (!key) {
      rest.push(a);
      continue;
    }
    const value = eq > 0 ? a.slice(eq + 1) : argv[++i];
    if (value === undefined || value === '' || (eq < 0 && value.startsWith('--'))) return `${name}: expected a path`;
    if (flags[key] !== undefined) return `${name} given twice (one run measures one ${key === 'crioSocket' ? 'CRI-O' : key})`;
    flags[key] = value;
  }
  return { flags, rest };
}

/** "runc version 1.3.6\ncommit: ..." -> "runc 1.3.6"; the same for crun. */
export function parseOciRuntimeVersion(name: 'runc' | 'crun', output: string): string {
  const m = new RegExp(`^${name} version (\\S+)`).exec(output.trimStart());
  if (!m) throw new Error(`not the output of ${name} --version: ${JSON.stringify(output.slice(0, 200))}`);
  return `${name} ${m[1]}`;
}

/** The CRI Version answer of CRI-O (or any runtime): "cri-o 1.31.0". */
export function criVersionText(v: { runtime_name: string; runtime_version: string }): string {
  return `${v.runtime_name} ${v.runtime_version.replace(/^v/, '')}`;
}

/** A named binary, or `name` on $PATH, that answers `--version`. */
function findBinary(name: 'containerd' | 'runc' | 'crun', given: string | undefined, pathVar: string): PeerBinary {
  if (given === NONE) return { found: false, why: `left out (--${name} ${NONE})` };
  const bin = given === undefined ? findOnPath(name, pathVar) : path.resolve(given);
  if (!bin) return { found: false, why: `${name} not on $PATH` };
  if (!isExecutable(bin)) return { found: false, why: `${bin} is not an executable file` };
  try {
    if (name === 'containerd') return { found: true, path: bin, version: `containerd ${containerdVersion(bin).text}` };
    const out = execFileSync(bin, ['--version'], { encoding: 'utf8', timeout: 10_000 });
    return { found: true, path: bin, version: parseOciRuntimeVersion(name, out) };
  } catch (e) {
    return { found: false, why: `${bin} --version: ${errText(e).split('\n')[0]}` };
  }
}

/** ctr from containerd's own install: a 2.x ctr against a 1.6 daemon (or the reverse) is
 * not what a user of either runs. */
function findCtr(containerd: PeerBinary, pathVar: string): PeerBinary {
  if (!containerd.found) return { found: false, why: `no containerd: ${containerd.why}` };
  const beside = path.join(path.dirname(fs.realpathSync(containerd.path)), 'ctr');
  const bin = isExecutable(beside) ? beside : findOnPath('ctr', pathVar);
  if (!bin) return { found: false, why: `no ctr beside ${containerd.path} or on $PATH` };
  try {
    const out = execFileSync(bin, ['--version'], { encoding: 'utf8', timeout: 10_000 });
    const m = /^ctr\s+\S+\s+v?(\S+)/.exec(out);
    return { found: true, path: bin, version: `ctr ${m ? m[1] : out.trim()}` };
  } catch (e) {
    return { found: false, why: `${bin} --version: ${errText(e).split('\n')[0]}` };
  }
}

async function findCrio(socket: string | undefined): Promise<PeerBinary> {
  if (socket === undefined || socket === NONE) return { found: false, why: 'no --crio-socket given' };
  const client = new CriClient(path.resolve(socket));
  try {
    const v = await client.runtime('Version', {}, { timeoutMs: 5000 });
    return { found: true, path: path.resolve(socket), version: criVersionText(v) };
  } catch (e) {
    return { found: false, why: `CRI Version on ${socket}: ${errText(e)}` };
  } finally {
    client.close();
  }
}

/** The peers of this run. One the command line named that cannot be used is an error (the
 * returned string), not a run that silently leaves it out; one not on $PATH is not measured. */
export async function resolvePeers(flags: PeerFlags, pathVar = process.env.PATH ?? ''): Promise<Peers | string> {
  const containerd = findBinary('containerd', flags.containerd, pathVar);
  const peers: Peers = {
    containerd,
    ctr: findCtr(containerd, pathVar),
    runc: findBinary('runc', flags.runc, pathVar),
    crun: findBinary('crun', flags.crun, pathVar),
    crio: await findCrio(flags.crioSocket),
  };
  for (const [key, flag] of FLAGS) {
    const given = flags[flag];
    const peer = peers[flag === 'crioSocket' ? 'crio' : flag];
    if (given !== undefined && given !== NONE && !peer.found) return `${key} ${given}: ${peer.why}`;
  }
  return peers;
}

/** The pid of the process that listens on a unix socket: a running peer's daemon, for its RSS. */
export function listenerPid(socket: string): number {
  const line = fs.readFileSync('/proc/net/unix', 'utf8').split('\n').find((l) => l.endsWith(` ${socket}`));
  if (!line) throw new Error(`nothing listens on ${socket}`);
  const inode = line.trim().split(/\s+/)[6];
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`) === `socket:[${inode}]`) return Number(pid);
    } catch {
      /* gone, or not ours to read */
    }
  }
  throw new Error(`no process holds ${socket} (inode ${inode})`);
}

/** The peers one suite measured, under the names its results use ("containerd_runc"):
 * printed in its header and put in its JSON line, null for one not measured. */
export class PeerReport {
  private readonly entries = new Map<string, { version: string | null; detail: string }>();

  /** A subject made of peers, e.g. containerd with runc: measured only if all are found. */
  add(subject: string, ...parts: PeerBinary[]): boolean {
    const missing = parts.find((p): p is Missing => !p.found);
    if (missing) {
      this.notMeasured(subject, missing.why);
      return false;
    }
    const found = parts as Found[];
    this.entries.set(subject, { version: found.map((p) => p.version).join(' + '), detail: found.map((p) => p.path).join(', ') });
    return true;
  }

  /** A subject that could not run (absent, or failed to start): null in the JSON line. */
  notMeasured(subject: string, why: string): void {
    this.entries.set(subject, { version: null, detail: why });
  }

  measured(subject: string): boolean {
    return this.entries.get(subject)?.version != null;
  }

  /** The header line of one subject: "peer containerd_runc: containerd 2.1.5 + runc 1.3.6 (paths)". */
  line(subject: string): string {
    const e = this.entries.get(subject);
    if (!e) return `peer ${subject}: not measured (not a peer of this run)`;
    return e.version ? `peer ${subject}: ${e.version} (${e.detail})` : `peer ${subject}: not measured (${e.detail})`;
  }

  lines(): string[] {
    return [...this.entries.keys()].map((name) => this.line(name));
  }

  json(): Record<string, string | null> {
    return Object.fromEntries([...this.entries].map(([name, e]) => [name, e.version]));
  }
}
