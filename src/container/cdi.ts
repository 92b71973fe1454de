// CDI (Container Device Interface, cncf-tags/container-device-interface SPEC.md, versions
// 0.3.0 to 1.1.0): the spec files in the configured directories, checked as CDI's own
// registry checks them, and the fully-qualified device names a CreateContainer asks for
// (config.CDI_devices and cdi.k8s.io/* annotations) resolved to their container edits.
// Applying the edits to the OCI spec is cdi_edits.ts.
import { promises as fsp } from 'fs';
import * as path from 'path';
import { load as loadYaml } from 'js-yaml';
import { FailedPrecondition, InvalidArgument, NotFound } from '../errors';
import type { ContainerConfig } from '../cri/gen/cri';

/** The CDI spec versions skiff reads, oldest first (specs-go/version.go). */
export const CDI_VERSIONS = ['0.1.0', '0.2.0', '0.3.0', '0.4.0', '0.5.0', '0.6.0', '0.7.0', '0.8.0', '1.0.0', '1.1.0'] as const;
export const CDI_ANNOTATION_PREFIX = 'cdi.k8s.io/';
/** The hook names CDI knows (prestart is the OCI runtime spec's deprecated one). */
export const CDI_HOOK_NAMES = ['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop'] as const;
export type CdiHookName = (typeof CDI_HOOK_NAMES)[number];

export interface CdiDeviceNode {
  path: string;
  hostPath?: string;
  type?: string;
  major?: number;
  minor?: number;
  fileMode?: number;
  permissions?: string;
  uid?: number;
  gid?: number;
}
export interface CdiMount {
  hostPath: string;
  containerPath: string;
  type?: string;
  options?: string[];
}
export interface CdiHook {
  hookName: CdiHookName;
  path: string;
  args?: string[];
  env?: string[];
  timeout?: number;
}
export interface CdiEdits {
  env?: string[];
  deviceNodes?: CdiDeviceNode[];
  mounts?: CdiMount[];
  hooks?: CdiHook[];
  additionalGids?: number[];
  intelRdt?: Record<string, unknown>;
  netDevices?: { hostInterfaceName: string; name: string }[];
}

/** One spec file that loaded: its kind and devices. */
export interface CdiSpecFile {
  path: string;
  /** The index of its directory: later directories win over earlier ones. */
  priority: number;
  vendor: string;
  class: string;
  edits: CdiEdits;
  devices: Map<string, CdiEdits>;
}

/** Edits to apply for one requested device, with where they come from (for errors). */
export interface CdiEditSet {
  /** "vendor.com/gpu=0", or "vendor.com/gpu" for the spec-wide edits. */
  source: string;
  file: string;
  edits: CdiEdits;
}

// ---- names (pkg/parser) ---------------------------------------------------------

const isLetter = (c: string) => /^[A-Za-z]$/.test(c);
const isAlnum = (c: string) => /^[A-Za-z0-9]$/.test(c);

/** Why a vendor or class name is not valid, or undefined. */
function vendorOrClassError(what: string, name: string): string | undefined {
  if (!name) return `empty ${what}`;
  if (!isLetter(name[0])) return `${what} "${name}" must start with a letter`;
  if (!/^[A-Za-z0-9_.-]*$/.test(name)) return `${what} "${name}" may hold only letters, digits, "_", "-" and "."`;
  if (!isAlnum(name[name.length - 1])) return `${what} "${name}" must end with a letter or digit`;
  return undefined;
}

function deviceNameError(name: string): string | undefined {
  if (!name) return 'empty device name';
  if (!isAlnum(name[0])) return `device name "${name}" must start with a letter or digit`;
  if (!/^[A-Za-z0-9_.:-]*$/.test(name)) return `device name "${name}" may hold only letters, digits, "_", "-", "." and ":"`;
  if (!isAlnum(name[name.length - 1])) return `device name "${name}" must end with a letter or digit`;
  return undefined;
}

/** vendor, class and name of "vendor/class=name", or why it is not such a name. */
export function parseQualifiedName(device: string): { vendor: string; class: string; name: string } | { error: string } {
  const eq = device.indexOf('=');
  const slash = device.indexOf('/');
  if (device.startsWith('/') || eq <= 0 || slash <= 0 || slash > eq || eq === device.length - 1)
    return { error: 'not a fully-qualified CDI device name (vendor/class=name)' };
  const vendor = device.slice(0, slash);
  const cls = device.slice(slash + 1, eq);
  const name = device.slice(eq + 1);
  const error = vendorOrClassError('vendor', vendor) ?? vendorOrClassError('class', cls) ?? deviceNameError(name);
  return error ? { error } : { vendor, class: cls, name };
}

/**
 * The CDI devices a container asks for: config.CDI_devices, then the devices the
 * cdi.k8s.io/* annotations list (comma-separated), each name once, as containerd's WithCDI
 * collects them. A name that is not fully qualified is refused, naming where it came from.
 */
export function requestedCdiDevices(config: Pick<ContainerConfig, 'CDI_devices' | 'annotations'>): string[] {
  const out: string[] = [];
  const add = (name: string, field: string) => {
    const parsed = parseQualifiedName(name);
    if ('error' in parsed) throw new InvalidArgument(`${field}: CDI device "${name}": ${parsed.error}`);
    if (!out.includes(name)) out.push(name);
  };
  (config.CDI_devices ?? []).forEach((d, i) => add(d.name, `config.CDI_devices[${i}].name`));
  for (const key of Object.keys(config.annotations ?? {}).sort()) {
    if (!key.startsWith(CDI_ANNOTATION_PREFIX)) continue;
    for (const name of config.annotations[key].split(',')) add(name, `config.annotations["${key}"]`);
  }
  return out;
}

// ---- spec files (pkg/cdi/spec.go, container-edits.go, specs-go) ------------------------

type Json = Record<string, unknown>;

class SpecFileError extends Error {
  /** The file's vendor/class, when it got that far. */
  kind?: string;
}

function fail(where: string, what: string): never {
  throw new SpecFileError(`${where}: ${what}`);
}

/** Fields CDI does not know are an error, as its strict decoding makes them. */
function object(v: unknown, where: string, keys: readonly string[]): Json {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) fail(where, 'must be an object');
  for (const k of Object.keys(v)) if (!keys.includes(k)) fail(where, `unknown field "${k}"`);
  return v as Json;
}

function str(o: Json, key: string, where: string, required = false): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) {
    if (required) fail(`${where}.${key}`, 'required');
    return undefined;
  }
  if (typeof v !== 'string') fail(`${where}.${key}`, 'must be a string');
  return v;
}

function strings(o: Json, key: string, where: string): string[] | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) fail(`${where}.${key}`, 'must be a list of strings');
  return v as string[];
}

function int(o: Json, key: string, where: string, min: number, max: number): number | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) fail(`${where}.${key}`, `must be an integer in ${min}..${max}`);
  return v;
}

function stringMap(o: Json, key: string, where: string): Record<string, string> | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v) || !Object.values(v as Json).every((s) => typeof s === 'string'))
    fail(`${where}.${key}`, 'must be a map of strings');
  return v as Record<string, string>;
}

function list(o: Json, key: string, where: string): unknown[] {
  const v = o[key];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) fail(`${where}.${key}`, 'must be a list');
  return v;
}

function env(entries: string[] | undefined, where: string): string[] | undefined {
  entries?.forEach((e, i) => {
    if (e.indexOf('=') <= 0) fail(`${where}[${i}]`, `"${e}" is not NAME=value`);
    if (e.includes('\0')) fail(`${where}[${i}]`, 'contains a NUL byte');
  });
  return entries;
}

// Paths in the container and on the host are absolute here (CDI says so of hook paths;
// skiff's shim wants absolute mount destinations and sources).
function absolute(p: string, where: string): string {
  if (!p.startsWith('/') || p.includes('\0') || p.split('/').includes('..')) fail(where, `"${p}" must be an absolute path without ".."`);
  return p;
}

const UINT32 = 0xffffffff;
const INT64 = Number.MAX_SAFE_INTEGER;

function parseEdits(v: unknown, where: string): CdiEdits {
  const o = object(v ?? {}, where, ['env', 'deviceNodes', 'mounts', 'hooks', 'additionalGids', 'intelRdt', 'netDevices']);
  const edits: CdiEdits = {};
  const e = env(strings(o, 'env', where), `${where}.env`);
  if (e?.length) edits.env = e;
  const nodes = list(o, 'deviceNodes', where).map((n, i): CdiDeviceNode => {
    const w = `${where}.deviceNodes[${i}]`;
    const d = object(n, w, ['path', 'hostPath', 'type', 'major', 'minor', 'fileMode', 'permissions', 'uid', 'gid']);
    const node: CdiDeviceNode = { path: absolute(str(d, 'path', w, true)!, `${w}.path`) };
    const hostPath = str(d, 'hostPath', w);
    if (hostPath) node.hostPath = absolute(hostPath, `${w}.hostPath`);
    const type = str(d, 'type', w) ?? '';
    if (!['', 'b', 'c', 'u', 'p'].includes(type)) fail(`${w}.type`, `"${type}" is not b, c, u or p`);
    if (type) node.type = type;
    const major = int(d, 'major', w, -INT64, INT64);
    const minor = int(d, 'minor', w, -INT64, INT64);
    if (major !== undefined) node.major = major;
    if (minor !== undefined) node.minor = minor;
    const fileMode = int(d, 'fileMode', w, 0, UINT32);
    if (fileMode !== undefined) node.fileMode = fileMode;
    const perms = str(d, 'permissions', w) ?? '';
    if (perms !== '' && perms !== 'none' && !/^[rwm]+$/.test(perms)) fail(`${w}.permissions`, `"${perms}" must be letters of "rwm" or "none"`);
    if (perms) node.permissions = perms;
    const uid = int(d, 'uid', w, 0, UINT32);
    const gid = int(d, 'gid', w, 0, UINT32);
    if (uid !== undefined) node.uid = uid;
    if (gid !== undefined) node.gid = gid;
    return node;
  });
  if (nodes.length) edits.deviceNodes = nodes;
  const mounts = list(o, 'mounts', where).map((m, i): CdiMount => {
    const w = `${where}.mounts[${i}]`;
    const d = object(m, w, ['hostPath', 'containerPath', 'type', 'options']);
    const mount: CdiMount = {
      hostPath: absolute(str(d, 'hostPath', w, true)!, `${w}.hostPath`),
      containerPath: absolute(str(d, 'containerPath', w, true)!, `${w}.containerPath`),
    };
    const type = str(d, 'type', w);
    if (type) mount.type = type;
    const options = strings(d, 'options', w);
    if (options) mount.options = options;
    return mount;
  });
  if (mounts.length) edits.mounts = mounts;
  const hooks = list(o, 'hooks', where).map((h, i): CdiHook => {
    const w = `${where}.hooks[${i}]`;
    const d = object(h, w, ['hookName', 'path', 'args', 'env', 'timeout']);
    const hookName = str(d, 'hookName', w, true)!;
    if (!(CDI_HOOK_NAMES as readonly string[]).includes(hookName)) fail(`${w}.hookName`, `"${hookName}" is not one of ${CDI_HOOK_NAMES.join(', ')}`);
    const hook: CdiHook = { hookName: hookName as CdiHookName, path: absolute(str(d, 'path', w, true)!, `${w}.path`) };
    const args = strings(d, 'args', w);
    if (args) hook.args = args;
    const he = env(strings(d, 'env', w), `${w}.env`);
    if (he) hook.env = he;
    const timeout = int(d, 'timeout', w, 1, 0x7fffffff);
    if (timeout !== undefined) hook.timeout = timeout;
    else if (d.timeout !== undefined && d.timeout !== null) fail(`${w}.timeout`, 'must be greater than zero');
    return hook;
  });
  if (hooks.length) edits.hooks = hooks;
  const gids = list(o, 'additionalGids', where).map((g, i) => {
    if (typeof g !== 'number' || !Number.isInteger(g) || g < 0 || g > UINT32) fail(`${where}.additionalGids[${i}]`, 'must be a gid in 0..2^32-1');
    return g;
  });
  if (gids.length) edits.additionalGids = gids;
  if (o.intelRdt !== undefined && o.intelRdt !== null) {
    const r = object(o.intelRdt, `${where}.intelRdt`, ['closID', 'l3CacheSchema', 'memBwSchema', 'schemata', 'enableMonitoring']);
    const clos = str(r, 'closID', `${where}.intelRdt`) ?? '';
    if (clos !== '/' && (clos.length >= 4096 || clos === '.' || clos === '..' || /[/\n]/.test(clos))) fail(`${where}.intelRdt.closID`, `"${clos}" is not a valid CLOS name`);
    edits.intelRdt = r;
  }
  const netDevices = list(o, 'netDevices', where).map((n, i) => {
    const w = `${where}.netDevices[${i}]`;
    const d = object(n, w, ['hostInterfaceName', 'name']);
    return { hostInterfaceName: str(d, 'hostInterfaceName', w, true)!, name: str(d, 'name', w, true)! };
  });
  if (netDevices.length) edits.netDevices = netDevices;
  return edits;
}

const isEmpty = (e: CdiEdits) => Object.keys(e).length === 0;

/** The lowest CDI version whose fields the spec uses (specs-go MinimumRequiredVersion). */
function requiredVersion(kindClass: string, edits: CdiEdits[], deviceNames: string[], annotated: boolean): string {
  const rdtNew = edits.some((e) => e.intelRdt && (e.intelRdt.schemata !== undefined || e.intelRdt.enableMonitoring === true));
  if (rdtNew || edits.some((e) => e.netDevices?.length)) return '1.1.0';
  if (edits.some((e) => e.intelRdt || e.additionalGids?.length)) return '0.7.0';
  if (annotated || kindClass.includes('.')) return '0.6.0';
  if (deviceNames.some((n) => /^[0-9]/.test(n)) || edits.some((e) => e.deviceNodes?.some((d) => d.hostPath))) return '0.5.0';
  if (edits.some((e) => e.mounts?.some((m) => m.type))) return '0.4.0';
  return '0.3.0';
}

/** A spec file's text (JSON or YAML) checked and parsed; throws naming the field. */
export function parseCdiSpec(text: string, file: string, priority: number): CdiSpecFile {
  let raw: unknown;
  try {
    raw = loadYaml(text, { filename: file });
  } catch (e) {
    throw new SpecFileError(`not valid JSON or YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  if (raw === undefined || raw === null) throw new SpecFileError('empty');
  const doc = object(raw, 'spec', ['cdiVersion', 'kind', 'annotations', 'devices', 'containerEdits']);
  const version = (str(doc, 'cdiVersion', 'spec', true) ?? '').replace(/^v/, '');
  if (!(CDI_VERSIONS as readonly string[]).includes(version)) fail('cdiVersion', `"${doc.cdiVersion}" is not a CDI version skiff knows (${CDI_VERSIONS[0]} to ${CDI_VERSIONS[CDI_VERSIONS.length - 1]})`);
  const kind = str(doc, 'kind', 'spec', true)!;
  try {
    return parseSpecBody(doc, kind, version, file, priority);
  } catch (e) {
    if (e instanceof SpecFileError) e.kind = kind;
    throw e;
  }
}

function parseSpecBody(doc: Json, kind: string, version: string, file: string, priority: number): CdiSpecFile {
  const slash = kind.indexOf('/');
  if (slash <= 0 || slash === kind.length - 1) fail('kind', `"${kind}" is not vendor/class`);
  const vendor = kind.slice(0, slash);
  const cls = kind.slice(slash + 1);
  const kindError = vendorOrClassError('vendor', vendor) ?? vendorOrClassError('class', cls);
  if (kindError) fail('kind', kindError);
  let annotated = !!Object.keys(stringMap(doc, 'annotations', 'spec') ?? {}).length;
  const edits = parseEdits(doc.containerEdits, 'containerEdits');
  const devices = new Map<string, CdiEdits>();
  list(doc, 'devices', 'spec').forEach((d, i) => {
    const w = `devices[${i}]`;
    const dev = object(d, w, ['name', 'annotations', 'containerEdits']);
    const name = str(dev, 'name', w, true)!;
    const nameError = deviceNameError(name);
    if (nameError) fail(`${w}.name`, nameError);
    if (devices.has(name)) fail(`${w}.name`, `device "${name}" is defined twice`);
    if (Object.keys(stringMap(dev, 'annotations', w) ?? {}).length) annotated = true;
    const devEdits = parseEdits(dev.containerEdits, `${w}.containerEdits`);
    if (isEmpty(devEdits)) fail(`${w}.containerEdits`, `device "${name}" has no container edits`);
    devices.set(name, devEdits);
  });
  if (devices.size === 0) fail('devices', 'at least one device is required');
  const min = requiredVersion(cls, [edits, ...devices.values()], [...devices.keys()], annotated);
  if (CDI_VERSIONS.indexOf(min as (typeof CDI_VERSIONS)[number]) > CDI_VERSIONS.indexOf(version as (typeof CDI_VERSIONS)[number]))
    fail('cdiVersion', `the spec uses fields of CDI ${min} but says ${version}`);
  return { path: file, priority, vendor, class: cls, edits, devices };
}

// ---- the registry (pkg/cdi/cache.go) ----------------------------------------------

const SPEC_EXTENSIONS = ['.json', '.yaml', '.yml'];

/** What the spec dirs held when they were read. */
export interface CdiScan {
  /** Fully-qualified name -> the file that defines it (the highest priority one). */
  devices: Map<string, CdiSpecFile>;
  /** File (or dir) -> why it gave no devices, or which of its devices it lost. */
  errors: Map<string, string[]>;
  /** Files that loaded, by vendor/class kind, for errors about a device they lack. */
  kinds: Map<string, string[]>;
  /** The kind a file that did not load says it has, when it got that far. */
  brokenKinds: Map<string, string>;
  /** Devices defined twice at one priority (so by neither), with the two files. */
  conflicts: Map<string, string>;
}

/**
 * Read every spec file of the directories (later ones win a device defined in two, as
 * CDI's priorities say). A file that fails to load is recorded with its error and
 * skipped, and devices of the other files still resolve, as CDI's registry does; a device
 * defined twice at the same priority is dropped and recorded against both files.
 */
export async function scanCdiSpecDirs(dirs: readonly string[]): Promise<CdiScan> {
  const scan: CdiScan = { devices: new Map(), errors: new Map(), kinds: new Map(), brokenKinds: new Map(), conflicts: new Map() };
  const record = (file: string, msg: string) => scan.errors.set(file, [...(scan.errors.get(file) ?? []), msg]);
  for (const [priority, dir] of dirs.entries()) {
    let names: string[];
    try {
      names = (await fsp.readdir(dir)).sort();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') record(dir, `cannot read the directory: ${(e as Error).message}`);
      continue;
    }
    for (const name of names) {
      if (!SPEC_EXTENSIONS.includes(path.extname(name))) continue;
      const file = path.join(dir, name);
      let spec: CdiSpecFile;
      try {
        const st = await fsp.stat(file);
        if (!st.isFile()) continue;
        spec = parseCdiSpec(await fsp.readFile(file, 'utf8'), file, priority);
      } catch (e) {
        record(file, e instanceof SpecFileError ? e.message : `cannot read: ${(e as Error).message}`);
        if (e instanceof SpecFileError && e.kind) scan.brokenKinds.set(file, e.kind);
        continue;
      }
      const kind = `${spec.vendor}/${spec.class}`;
      scan.kinds.set(kind, [...(scan.kinds.get(kind) ?? []), file]);
      for (const dev of spec.devices.keys()) {
        const qualified = `${kind}=${dev}`;
        const other = scan.devices.get(qualified);
        if (other && other.priority === priority) {
          const msg = `device "${qualified}" is also defined in ${other.path === file ? 'the same file' : `${other.path}`}, at the same priority`;
          record(file, msg);
          record(other.path, `device "${qualified}" is also defined in ${file}, at the same priority`);
          scan.conflicts.set(qualified, `device "${qualified}" is defined in both ${other.path} and ${file}, at the same priority`);
        }
        scan.devices.set(qualified, spec);
      }
    }
  }
  for (const c of scan.conflicts.keys()) scan.devices.delete(c);
  return scan;
}

/**
 * The edits for the requested devices, in CDI's order: a file's spec-wide edits once,
 * before its first requested device's, then each device's. The spec dirs are read anew
 * for every request that names devices, so a file a driver has just written counts, with
 * no watcher to keep. An unknown device is NOT_FOUND, its message naming the files that
 * did not load far enough to tell their kind; when a file of the device's kind is broken
 * (or lost it to a conflict), FAILED_PRECONDITION with that file's error.
 */
export async function resolveCdiDevices(dirs: readonly string[], names: string[]): Promise<CdiEditSet[]> {
  if (names.length === 0) return [];
  const scan = await scanCdiSpecDirs(dirs);
  const out: CdiEditSet[] = [];
  const specsSeen = new Set<CdiSpecFile>();
  const missing: string[] = [];
  for (const name of names) {
    const spec = scan.devices.get(name);
    if (!spec) {
      missing.push(name);
      continue;
    }
    const kind = `${spec.vendor}/${spec.class}`;
    if (!specsSeen.has(spec)) {
      specsSeen.add(spec);
      if (!isEmpty(spec.edits)) out.push({ source: kind, file: spec.path, edits: spec.edits });
    }
    out.push({ source: name, file: spec.path, edits: spec.devices.get(name.slice(name.indexOf('=') + 1))! });
  }
  if (missing.length === 0) return out;
  const list = missing.map((m) => `"${m}"`).join(', ');
  const kinds = new Set(missing.map((m) => m.slice(0, m.indexOf('='))));
  // What explains it: a conflict over the device, a broken file of its kind; and files
  // whose kind is not known because they did not load that far.
  const loaded = new Set([...scan.kinds.values()].flat());
  const ofKind = missing.filter((m) => scan.conflicts.has(m)).map((m) => scan.conflicts.get(m)!);
  const unknownKind: string[] = [];
  for (const [file, errs] of scan.errors) {
    if (loaded.has(file)) continue; // its errors are conflicts, told per device
    const kind = scan.brokenKinds.get(file);
    if (kind && kinds.has(kind)) ofKind.push(`${file}: ${errs.join('; ')}`);
    else if (!kind) unknownKind.push(`${file}: ${errs.join('; ')}`);
  }
  if (ofKind.length) throw new FailedPrecondition(`unresolvable CDI devices ${list}: a spec file of their kind is broken: ${ofKind.join(' | ')}`);
  const unknownKinds = [...kinds].filter((k) => !scan.kinds.has(k));
  const why = unknownKinds.length ? `no spec file in ${dirs.join(', ')} defines the kind ${unknownKinds.map((k) => `"${k}"`).join(', ')}` : `not defined in the spec files of ${dirs.join(', ')}`;
  const note = unknownKind.length ? ` (spec files that did not load, which might: ${unknownKind.join(' | ')})` : '';
  throw new NotFound(`unresolvable CDI devices ${list}: ${why}${note}`);
}
