// What a node conformance run makes on the host, under its own names only, and the sweep
// that removes it: after every run, on SIGINT, and at the start of the next run when an
// earlier one was killed. Each runtime's part of the run (its daemon, kubelet and
// e2e_node.test) lives in a network namespace of its own (kubelet's fixed ports
// 10250/10255, the API server's 6443, kubelet's iptables chains, pod bridges and veths all
// live and die there), and in a mount namespace of its own where kubelet's fixed log dirs
// /var/log/pods and /var/log/containers are the runtime's own (privateLogDirs), so the
// runtimes can run side by side; every process and cgroup of a runtime's part is under
// CGROUP_ROOT/<runtime>, which its cgroup namespace shows as / (remountCgroups); files under
// WORK and SKIFFD_PREFIX*; the kernel tunables kubelet sets are put back from the ledger.
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { cgroupMounts, cgroupTree, removeCgroupTree, unmountUnder } from '../fixtures/cleanup';

/** The run's network namespaces are this name and `-<runtime>`. */
const NETNS = 'skiff-e2e-node';
/** The network namespace of a runtime's part of the run. */
export const netnsPath = (runtime: string) => `/run/netns/${NETNS}-${runtime}`;
export const WORK = '/tmp/skiff-e2e-node';
/** The test skiffd's dir prefix: short, as shim socket paths under it must fit 108 bytes. */
export const SKIFFD_PREFIX = '/tmp/skn-';
/** Every cgroup of the run is below it. */
const CGROUP_ROOT = '/skiff-e2e-node';
/** The cgroup a runtime's part of the run has, which is its runner's / (remountCgroups). */
const cgroupRootOf = (runtime: string) => `${CGROUP_ROOT}/${runtime}`;
/** The node's address, on a veth in the namespace (kubelet wants a non-loopback one). */
export const NODE_IP = '10.213.0.1';
const NODE_IFACE = 'skn-node0';
const LEDGER = path.join(WORK, 'ledger.json');
/** Host-wide sysctls kubelet sets when it does not protect kernel defaults. */
const KERNEL_TUNABLES = ['vm/overcommit_memory', 'vm/panic_on_oom', 'kernel/panic', 'kernel/panic_on_oops', 'kernel/keys/root_maxkeys', 'kernel/keys/root_maxbytes'];
/** kubelet's pod and container log dirs (fixed in kubelet 1.20). */
const KUBELET_LOG_DIRS = ['/var/log/pods', '/var/log/containers'];

interface Ledger {
  tunables: Record<string, string>;
  /** Dirs that did not exist before the run and are removed after it when empty or ours. */
  madeDirs: string[];
}

const quiet = (f: () => void) => {
  try {
    f();
  } catch {
    /* already gone */
  }
};

/** Record what the run will change, before changing it. */
export function writeLedger(): void {
  fs.mkdirSync(WORK, { recursive: true });
  const tunables: Record<string, string> = {};
  for (const t of KERNEL_TUNABLES) quiet(() => (tunables[t] = fs.readFileSync(`/proc/sys/${t}`, 'utf8').trim()));
  // The in-process API server writes its self-signed pair to /var/run/kubernetes; the log
  // dirs are mount points (privateLogDirs).
  const madeDirs = ['/var/run/kubernetes', '/var/lib/kubelet', ...KUBELET_LOG_DIRS].filter((d) => !fs.existsSync(d));
  fs.writeFileSync(LEDGER, JSON.stringify({ tunables, madeDirs } satisfies Ledger));
}

/** The network namespace a runtime's part of the run lives in: loopback up, and a veth
 * (both ends inside; no dummy driver on every kernel) with the node's address and a default route (kubelet picks the node IP there). */
export function makeNetns(runtime: string): void {
  execFileSync('ip', ['netns', 'add', path.basename(netnsPath(runtime))]);
  const inNs = (...args: string[]) => execFileSync('nsenter', [`--net=${netnsPath(runtime)}`, '--', ...args]);
  inNs('ip', 'link', 'set', 'lo', 'up');
  inNs('ip', 'link', 'add', NODE_IFACE, 'type', 'veth', 'peer', 'name', `${NODE_IFACE}p`);
  inNs('ip', 'link', 'set', `${NODE_IFACE}p`, 'up');
  inNs('ip', 'addr', 'add', `${NODE_IP}/24`, 'dev', NODE_IFACE);
  inNs('ip', 'link', 'set', NODE_IFACE, 'up');
  inNs('ip', 'route', 'add', 'default', 'via', '10.213.0.254', 'dev', NODE_IFACE);
  // Nothing answers outside: name servers unreachable at once, not after a 5 s timeout per
  // try (e2e_node.test fetches a manifest from GitHub at start, in each of its 3 processes).
  for (const [, ns] of fs.readFileSync('/etc/resolv.conf', 'utf8').matchAll(/^nameserver\s+(\d+\.\d+\.\d+\.\d+)\s*$/gm)) inNs('ip', 'route', 'add', 'unreachable', `${ns}/32`);
}

/** In a runtime's runner, which the supervisor starts in a mount namespace of its own (mounts
 * from the host propagate in, none out): kubelet's log dirs become dirs under WORK. kubelet's
 * container GC removes every pod log dir in /var/log/pods whose pod it does not know, so
 * kubelets sharing it (the other runtime's, or another test's on this host) remove each
 * other's pods' logs. The pods' runtime writes the logs in this namespace too. */
export function privateLogDirs(runtime: string): void {
  for (const d of KUBELET_LOG_DIRS) {
    const own = path.join(WORK, `logs-${runtime}`, path.basename(d));
    fs.mkdirSync(own, { recursive: true });
    fs.mkdirSync(d, { recursive: true });
    execFileSync('mount', ['--bind', own, d]);
  }
}

/** Make a cgroup in every hierarchy, delegated as a service manager delegates one: each
 * cgroup2 parent it makes below the root (which holds no process) enables for its
 * children the controllers it is offered (hugetlb here). Returns the cgroup.procs files
 * that put a process there. */
function makeCgroup(cgroup: string): string[] {
  return cgroupMounts().map((mount) => {
    let dir = mount;
    for (const part of cgroup.split('/').filter(Boolean)) {
      const parent = dir;
      const offered = path.join(parent, 'cgroup.controllers');
      if (parent !== mount && fs.existsSync(offered)) {
        const enable = fs.readFileSync(offered, 'utf8').split(/\s+/).filter(Boolean).map((c) => `+${c}`);
        if (enable.length) fs.writeFileSync(path.join(parent, 'cgroup.subtree_control'), enable.join(' '));
      }
      dir = path.join(dir, part);
      fs.mkdirSync(dir, { recursive: true });
      // A new v1 cpuset has no cpus and mems, and takes no process until it is given some.
      for (const f of ['cpuset.cpus', 'cpuset.mems']) {
        if (fs.existsSync(path.join(dir, f)) && !fs.readFileSync(path.join(dir, f), 'utf8').trim()) fs.writeFileSync(path.join(dir, f), fs.readFileSync(path.join(parent, f)));
      }
    }
    return path.join(dir, 'cgroup.procs');
  });
}

/** In a runner, the cgroups of the node's parts as e2e_node names them without systemd
 * (kubelet's --kubelet-cgroups, --system-cgroups, and --runtime-cgroups given by the
 * runner): the node's stats report each one's usage. The runner moves itself to /system
 * at once (no process may stay in the namespace's root, whose cgroup2 controllers the
 * runtime enables for its pods), the runtime's daemon to /runtime before it makes a pod,
 * and kubelet enters /kubelet through kubeletWrapper, as a service manager would put them. */
export const NODE_CGROUPS = { kubelet: '/kubelet', system: '/system', runtime: '/runtime' };

export function moveToCgroup(pid: number, cgroup: string): void {
  for (const procs of makeCgroup(cgroup)) fs.writeFileSync(procs, String(pid));
}

/** A kubelet that enters a cgroup before it runs (e2e_node runs <--k8s-bin-dir>/kubelet). */
export function kubeletWrapper(binDir: string, kubelet: string, cgroup: string): void {
  fs.mkdirSync(binDir, { recursive: true });
  fs.writeFileSync(path.join(binDir, 'kubelet'), `#!/bin/sh\n${enterCgroup(cgroup)}\nexec ${kubelet} "$@"\n`, { mode: 0o755 });
}

/** Shell commands that put the shell in a cgroup of every hierarchy. */
function enterCgroup(cgroup: string): string {
  return `set -e; ${makeCgroup(cgroup).map((f) => `echo $$ > ${f}`).join('; ')}`;
}

/** The command line of a runtime's runner: moved into the runtime's cgroup root, then in
 * the runtime's network namespace and new mount and cgroup namespaces (remountCgroups). */
export function runnerCommand(runtime: string, cmd: string[]): string[] {
  return ['sh', '-c', `${enterCgroup(cgroupRootOf(runtime))}; exec "$@"`, 'sh', 'nsenter', `--net=${netnsPath(runtime)}`, '--', 'unshare', '--mount', '--propagation', 'slave', '--cgroup', '--', ...cmd];
}

/** In a runner (runnerCommand): the cgroup hierarchies mounted anew, so that the files
 * under /sys/fs/cgroup show the runtime's cgroup root as the root. kubelet then has its
 * default cgroup root, and everything the runtime and its pods make in /kubepods is in
 * CGROUP_ROOT/<runtime>/kubepods on the host: Kubernetes' cgroup specs look for
 * /sys/fs/cgroup/<controller>/kubepods/..., and two kubelets (the other runtime's, another
 * test's on this host) each have a /kubepods of their own. */
export function remountCgroups(): void {
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [mine, theirs] = line.split(' - ');
    if (!theirs) continue;
    const [fstype, , superOptions] = theirs.split(' ');
    if (fstype !== 'cgroup' && fstype !== 'cgroup2') continue;
    const target = mine.split(' ')[4];
    execFileSync('umount', [target]);
    execFileSync('mount', ['-t', fstype, '-o', superOptions, fstype, target]);
  }
}

/** The run's network namespaces that exist (and the single one of earlier versions). */
function runNetns(): string[] {
  const names = fs.existsSync('/run/netns') ? fs.readdirSync('/run/netns') : [];
  return names.filter((n) => n === NETNS || n.startsWith(`${NETNS}-`));
}

/** Every pid in the run's network namespaces or in its cgroups (not this process). */
function runPids(): number[] {
  const pids = new Set<number>();
  for (const ns of runNetns()) {
    quiet(() => {
      for (const p of execFileSync('ip', ['netns', 'pids', ns]).toString().split(/\s+/)) if (p) pids.add(Number(p));
    });
  }
  for (const dir of cgroupTree(CGROUP_ROOT)) {
    quiet(() => {
      for (const p of fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n')) if (p) pids.add(Number(p));
    });
  }
  pids.delete(process.pid);
  return [...pids];
}

/** Remove everything a run made (idempotent; what is not there is skipped). */
export function sweep(log: (s: string) => void = () => {}): void {
  const skiffdDirs = fs.readdirSync('/tmp').filter((n) => n.startsWith(path.basename(SKIFFD_PREFIX))).map((n) => path.join('/tmp', n));
  // Processes first (several rounds: a dying shim's children, a restarting kubelet).
  for (let round = 0; round < 20; round++) {
    const pids = runPids();
    if (pids.length === 0) break;
    if (round === 0) log(`sweep: killing ${pids.length} processes of the run`);
    for (const p of pids) quiet(() => process.kill(p, 'SIGKILL'));
    execFileSync('sleep', ['0.2']);
  }
  const unmounted = [WORK, ...skiffdDirs].reduce((n, d) => n + unmountUnder(d, { quiet: true }), 0);
  if (unmounted) log(`sweep: unmounted ${unmounted} mounts`);
  removeCgroupTree(CGROUP_ROOT);
  for (const ns of runNetns()) quiet(() => execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' }));
  let ledger: Ledger | undefined;
  quiet(() => (ledger = JSON.parse(fs.readFileSync(LEDGER, 'utf8')) as Ledger));
  for (const [t, v] of Object.entries(ledger?.tunables ?? {})) quiet(() => fs.writeFileSync(`/proc/sys/${t}`, v));
  for (const d of ledger?.madeDirs ?? []) fs.rmSync(d, { recursive: true, force: true });
  for (const d of skiffdDirs) fs.rmSync(d, { recursive: true, force: true });
  // Reports stay: they are outside WORK.
  fs.rmSync(WORK, { recursive: true, force: true });
}
