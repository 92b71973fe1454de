// Test fixtures for the shim suites: a busybox rootfs from Debian's
// busybox-static, OCI bundles, and a TestPod that spawns a shim and checks on
// cleanup that it left no process, cgroup or mount behind.
import assert from 'node:assert/strict';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { ShimClient, ShimError, PodParams, PodResult, ExecProcess } from '../../src/shim/client';
import { killTestProcessesIn, removeCgroupTree, removeDir, runTempDir, testCgroup } from '../../e2e/fixtures/cleanup';

export const REPO = path.resolve(__dirname, '..', '..', '..');
export const SHIM_BINARY = path.join(REPO, 'shim', 'build', 'skiff-shim');
const BUSYBOX = '/bin/busybox';

/** The cgroup of this run's containers (/skiff-test-<pid>-<suffix>): each is a child. */
export const CGROUP_PARENT = testCgroup();

export const DEFAULT_CAPS = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID',
  'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
];
export const DEFAULT_ENV = ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'];

let sharedRootfs: string | null = null;
const tempDirs: string[] = [];

export function tempDir(prefix = 'skiff-tmp-'): string {
  const d = runTempDir(prefix);
  // Reachable by a user-namespaced container's root (an unmapped host uid).
  fs.chmodSync(d, 0o755);
  tempDirs.push(d);
  return d;
}

/** A rootfs with busybox and a symlink for every applet, users and groups. */
export function buildBusyboxRootfs(dir: string): string {
  for (const d of ['bin', 'etc', 'tmp', 'proc', 'sys', 'dev', 'root', 'home/app']) fs.mkdirSync(path.join(dir, d), { recursive: true });
  fs.chmodSync(path.join(dir, 'tmp'), 0o1777);
  fs.copyFileSync(BUSYBOX, path.join(dir, 'bin', 'busybox'));
  fs.chmodSync(path.join(dir, 'bin', 'busybox'), 0o755);
  const applets = execFileSync(BUSYBOX, ['--list']).toString().split('\n').filter((a) => a && a !== 'busybox');
  for (const a of applets) {
    const link = path.join(dir, 'bin', a);
    if (!fs.existsSync(link)) fs.symlinkSync('busybox', link);
  }
  fs.writeFileSync(
    path.join(dir, 'etc', 'passwd'),
    'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n',
  );
  fs.writeFileSync(path.join(dir, 'etc', 'group'), 'root:x:0:\ntty:x:5:\napp:x:1000:\nextra:x:2000:app\nnogroup:x:65534:\n');
  return dir;
}

/** The read-only rootfs shared by every bundle of this run. */
export function sharedBusyboxRootfs(): string {
  if (!sharedRootfs) sharedRootfs = buildBusyboxRootfs(path.join(tempDir('skiff-rootfs-'), 'rootfs'));
  return sharedRootfs;
}

export interface BundleOptions {
  id: string;
  args: string[];
  /** linux.namespaces; defaults to new pid, mount, ipc, uts, network. */
  namespaces?: { type: string; path?: string }[];
  /** A private writable copy of the rootfs instead of the shared read-only one. */
  writableRootfs?: boolean;
  /** Deep changes applied to the spec after it is built. */
  edit?: (spec: OciSpec) => void;
}

export interface OciSpec {
  ociVersion: string;
  process: ExecProcess;
  root: { path: string; readonly?: boolean };
  hostname?: string;
  mounts: { destination: string; type?: string; source?: string; options?: string[] }[];
  hooks?: Record<string, { path: string; args?: string[] }[]>;
  linux: Record<string, unknown> & { namespaces: { type: string; path?: string }[] };
}

export function defaultSpec(rootfs: string, id: string, args: string[]): OciSpec {
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args,
      env: [...DEFAULT_ENV],
      cwd: '/',
      capabilities: { bounding: [...DEFAULT_CAPS], effective: [...DEFAULT_CAPS], permitted: [...DEFAULT_CAPS] },
      noNewPrivileges: true,
    },
    root: { path: rootfs, readonly: true },
    hostname: id,
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] },
      { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777'] },
    ],
    linux: {
      namespaces: [{ type: 'pid' }, { type: 'mount' }, { type: 'ipc' }, { type: 'uts' }, { type: 'network' }],
      cgroupsPath: `${CGROUP_PARENT}/${id}`,
      resources: {},
      maskedPaths: [
        '/proc/acpi', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats',
        '/proc/sched_debug', '/proc/scsi', '/sys/firmware',
      ],
      readonlyPaths: ['/proc/asound', '/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}

/** Write a bundle dir (config.json) and return its path. */
export function makeBundle(opts: BundleOptions): string {
  const dir = tempDir('skiff-bundle-');
  let rootfs = sharedBusyboxRootfs();
  if (opts.writableRootfs) {
    rootfs = path.join(dir, 'rootfs');
    execFileSync('cp', ['-a', sharedBusyboxRootfs(), rootfs]);
  }
  const spec = defaultSpec(rootfs, opts.id, opts.args);
  if (opts.writableRootfs) spec.root.readonly = false;
  if (opts.namespaces) spec.linux.namespaces = opts.namespaces;
  if (!spec.linux.namespaces.some((n) => n.type === 'uts')) delete spec.hostname;
  opts.edit?.(spec);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(spec, null, 2));
  return dir;
}

/** Namespaces joining a pod's (pid only when the pod has one). */
export function podNamespaces(pod: PodResult): { type: string; path?: string }[] {
  const ns: { type: string; path?: string }[] = [{ type: 'mount' }];
  if (pod.namespaces.net) ns.push({ type: 'network', path: pod.namespaces.net });
  if (pod.namespaces.ipc) ns.push({ type: 'ipc', path: pod.namespaces.ipc });
  if (pod.namespaces.uts) ns.push({ type: 'uts', path: pod.namespaces.uts });
  ns.push(pod.namespaces.pid ? { type: 'pid', path: pod.namespaces.pid } : { type: 'pid' });
  return ns;
}

export function readPid(stateDir: string): number {
  return Number(fs.readFileSync(path.join(stateDir, 'shim.pid'), 'utf8'));
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

/** Every process whose ancestry reaches pid (its children, theirs, ...). */
export function descendants(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parent.set(Number(e), ppid);
    } catch {
      /* gone */
    }
  }
  const out: number[] = [];
  for (const [p] of parent) {
    for (let q = parent.get(p); q !== undefined && q > 1; q = parent.get(q)) {
      if (q === pid) {
        out.push(p);
        break;
      }
    }
  }
  return out;
}

export function mountsUnder(dir: string): string[] {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m): m is string => !!m && (m === dir || m.startsWith(dir + '/')));
}

export function cgroupDirs(rel: string): string[] {
  const out: string[] = [];
  for (const h of fs.readdirSync('/sys/fs/cgroup')) {
    const d = path.join('/sys/fs/cgroup', h, rel);
    if (fs.existsSync(d)) out.push(d);
  }
  return out;
}

/** How long waitFor waits by default: generous, as other work may load the machine. */
export const WAIT_MS = 60_000;

export async function waitFor(cond: () => boolean, what = 'condition', ms = WAIT_MS): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A shim holding one pod, for one test or suite. */
export class TestPod {
  readonly stateDir: string;
  client!: ShimClient;
  shimPid = 0;
  pod!: PodResult;

  private constructor() {
    this.stateDir = tempDir('skiff-state-');
  }

  static async start(params: PodParams = { hostname: 'testpod' }, binary = SHIM_BINARY, cgroups?: string, mountTemplateFd?: number): Promise<TestPod> {
    const t = new TestPod();
    t.client = await ShimClient.spawn({ binary, stateDir: t.stateDir, cgroups, mountTemplateFd });
    t.shimPid = readPid(t.stateDir);
    t.pod = await t.client.pod(params);
    return t;
  }

  /** Create and start a container from bundle options; returns its id. */
  async run(opts: BundleOptions & { logPath?: string; stdin?: boolean; stdinOnce?: boolean }): Promise<string> {
    const bundle = makeBundle(opts);
    await this.client.create({ id: opts.id, bundle, logPath: opts.logPath, stdin: opts.stdin, stdinOnce: opts.stdinOnce });
    await this.client.start({ id: opts.id });
    return opts.id;
  }

  /** create must fail with a message matching re (and code, when given), leaving
   * nothing: no process, cgroup, mount or container. */
  async createRefused(id: string, bundle: string, re: RegExp, code?: string): Promise<void> {
    const before = descendants(this.shimPid).length;
    await assert.rejects(this.client.create({ id, bundle }), (e: ShimError) => {
      if (code) assert.equal(e.code, code, e.message);
      assert.match(e.message, re);
      return true;
    });
    assert.equal(cgroupDirs(`${CGROUP_PARENT}/${id}`).length, 0, 'no cgroup left');
    assert.equal(descendants(this.shimPid).length, before, 'no process left');
    // Only this bundle's paths: other work on the machine may mount under /tmp meanwhile.
    const dirs = [bundle];
    try {
      const root = (JSON.parse(fs.readFileSync(path.join(bundle, 'config.json'), 'utf8')) as { root?: { path?: string } }).root?.path;
      if (typeof root === 'string') dirs.push(path.resolve(bundle, root));
    } catch {
      /* a malformed config.json: the bundle alone */
    }
    assert.deepEqual(dirs.flatMap(mountsUnder), [], 'no mount left');
    assert.equal((await this.client.list()).containers.some((c) => c.id === id), false);
  }

  /** Shut the shim down and check it left nothing: no process, no cgroup. */
  async stop(): Promise<void> {
    const pid = this.shimPid;
    const kids = pid ? descendants(pid) : [];
    try {
      if (this.client.connected) await this.client.shutdown();
    } catch {
      /* already gone */
    }
    if (pid && processAlive(pid)) process.kill(pid, 'SIGKILL');
    for (const k of kids) if (processAlive(k)) process.kill(k, 'SIGKILL');
    await waitFor(() => !processAlive(pid) && kids.every((k) => !processAlive(k)), 'shim processes to exit');
  }
}

/** rmdir a cgroup in every hierarchy (fails if a process is still in it). */
export function removeCgroup(rel: string): void {
  for (const d of cgroupDirs(rel)) fs.rmdirSync(d);
}

/** Remove what the run left, whatever a failed test left running: shims working in its
 * temp dirs, what runs in its cgroups, then the cgroups and dirs (mounts detached first). */
export function cleanupRun(): void {
  const dirs = tempDirs.splice(0);
  sharedRootfs = null;
  killTestProcessesIn(dirs);
  removeCgroupTree(CGROUP_PARENT);
  const failed = dirs.flatMap((d) => {
    try {
      removeDir(d);
      return [];
    } catch (e) {
      return [(e as Error).message];
    }
  });
  assert.deepEqual(failed, [], 'temp dirs removed');
}

/** Container cgroup leaves still present for this run (should be none). */
export function leakedCgroups(): string[] {
  const out: string[] = [];
  for (const d of cgroupDirs(CGROUP_PARENT))
    for (const leaf of fs.readdirSync(d, { withFileTypes: true })) if (leaf.isDirectory()) out.push(path.join(d, leaf.name));
  return out;
}

/** Read a CRI log file as records. */
export function readCriLog(file: string): { time: string; stream: string; tag: string; text: string }[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.length)
    .map((l) => {
      const m = /^(\S+) (stdout|stderr) ([PF]) (.*)$/s.exec(l);
      if (!m) throw new Error(`not a CRI log line: ${JSON.stringify(l)}`);
      return { time: m[1], stream: m[2], tag: m[3], text: m[4] };
    });
}

// Any run that loads a shim suite, even one file alone, removes what the run made: a
// root-level hook, registered once however many suites import this module.
after(function () {
  const leaked = leakedCgroups();
  cleanupRun();
  assert.deepEqual(leaked, [], 'container cgroups left behind');
});
