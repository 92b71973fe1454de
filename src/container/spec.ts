// CRI container config + pod + image config -> OCI runtime spec, merged the way Docker
// and containerd merge them: Entrypoint/Cmd vs command/args, Env, WorkingDir, USER,
// capabilities, mounts, devices, namespaces, resources, seccomp, AppArmor, SELinux.
import { promises as fsp, readFileSync } from 'fs';
import * as path from 'path';
import { FailedPrecondition, InvalidArgument } from '../errors';
import { MountPropagation, NamespaceMode, SecurityProfile_ProfileType, SupplementalGroupsPolicy } from '../cri/gen/cri';
import type { ContainerConfig, PodSandboxConfig, SecurityProfile } from '../cri/gen/cri';
import type { ImageConfigSummary } from '../image/image_service';
import type { LinuxDevice, LinuxDeviceCgroup, LinuxSeccomp, Mount, Spec } from './oci';
import { ociResources } from './resources';
import { parseLocalhostProfile, runtimeDefaultProfile } from './seccomp';
import { checkId, PasswdDb, resolveUser } from './user';

export const DEFAULT_CAPS = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID',
  'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
];

const CAP_NAMES = [
  'CHOWN', 'DAC_OVERRIDE', 'DAC_READ_SEARCH', 'FOWNER', 'FSETID', 'KILL', 'SETGID', 'SETUID', 'SETPCAP', 'LINUX_IMMUTABLE',
  'NET_BIND_SERVICE', 'NET_BROADCAST', 'NET_ADMIN', 'NET_RAW', 'IPC_LOCK', 'IPC_OWNER', 'SYS_MODULE', 'SYS_RAWIO', 'SYS_CHROOT',
  'SYS_PTRACE', 'SYS_PACCT', 'SYS_ADMIN', 'SYS_BOOT', 'SYS_NICE', 'SYS_RESOURCE', 'SYS_TIME', 'SYS_TTY_CONFIG', 'MKNOD', 'LEASE',
  'AUDIT_WRITE', 'AUDIT_CONTROL', 'SETFCAP', 'MAC_OVERRIDE', 'MAC_ADMIN', 'SYSLOG', 'WAKE_ALARM', 'BLOCK_SUSPEND', 'AUDIT_READ',
  'PERFMON', 'BPF', 'CHECKPOINT_RESTORE',
].map((c) => `CAP_${c}`);

/** Every capability this kernel knows (read once at start-up). */
export const ALL_CAPS: string[] = (() => {
  try {
    return CAP_NAMES.slice(0, Number(readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8').trim()) + 1);
  } catch {
    return CAP_NAMES;
  }
})();

export const DEFAULT_MASKED_PATHS = [
  '/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats',
  '/proc/sched_debug', '/proc/scsi', '/sys/firmware', '/sys/devices/virtual/powercap',
];
export const DEFAULT_READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

// The device nodes every container gets (the shim creates them) and may use.
const DEFAULT_DEVICE_RULES: LinuxDeviceCgroup[] = [
  { allow: false, access: 'rwm' },
  { allow: true, type: 'c', access: 'm' },
  { allow: true, type: 'b', access: 'm' },
  ...[[1, 3], [1, 5], [1, 7], [1, 8], [1, 9], [5, 0], [5, 1], [5, 2], [10, 200]].map(([major, minor]): LinuxDeviceCgroup => ({ allow: true, type: 'c', major, minor, access: 'rwm' })),
  { allow: true, type: 'c', major: 136, access: 'rwm' },
];

export interface PodContext {
  id: string;
  namespaces: { net?: string; ipc?: string; uts?: string; pid?: string; user?: string };
  hostNetwork: boolean;
  hostsPath: string;
  resolvConfPath: string;
  hostnamePath: string;
  /** '' when the pod shares the host's IPC namespace. */
  shmPath: string;
  cgroupParent: string;
}

export interface ContainerSpecInput {
  containerId: string;
  config: ContainerConfig;
  sandboxConfig: PodSandboxConfig;
  image: ImageConfigSummary;
  imageName: string;
  rootfsPath: string;
  passwd: PasswdDb;
  pod: PodContext;
  /** The pid namespace of the target container, for namespace mode TARGET. */
  targetPidNs?: string;
  /** The lowest oom_score_adj the host lets root set. */
  restrictOomScoreAdj: number;
  hostHasAppArmor: boolean;
  hostHasSELinux: boolean;
  /** Where relative localhost/ seccomp profiles live. */
  seccompProfileRoot?: string;
}

const normCap = (c: string) => {
  const u = c.toUpperCase();
  return u === 'ALL' ? 'ALL' : u.startsWith('CAP_') ? u : `CAP_${u}`;
};

function capabilities(add: string[], drop: string[], privileged: boolean): string[] {
  if (privileged) return [...ALL_CAPS];
  for (const c of [...add, ...drop].map(normCap)) if (c !== 'ALL' && !CAP_NAMES.includes(c)) throw new InvalidArgument(`unknown capability "${c}"`);
  const a = add.map(normCap);
  const d = drop.map(normCap);
  let caps = a.includes('ALL') ? [...ALL_CAPS] : [...DEFAULT_CAPS];
  if (d.includes('ALL')) caps = [];
  for (const c of a) if (c !== 'ALL' && !caps.includes(c)) caps.push(c);
  if (!d.includes('ALL')) caps = caps.filter((c) => !d.includes(c));
  else caps = a.filter((c) => c !== 'ALL');
  return caps.filter((c) => ALL_CAPS.includes(c));
}

/** An absolute, normalised path with no `..` component. */
function cleanAbsolute(p: string, what: string): string {
  if (!p || !p.startsWith('/')) throw new InvalidArgument(`${what} "${p}" must be an absolute path`);
  if (p.split('/').includes('..')) throw new InvalidArgument(`${what} "${p}" must not contain ".."`);
  if (p.includes('\0')) throw new InvalidArgument(`${what} contains a NUL byte`);
  return path.posix.normalize(p).replace(/(.)\/$/, '$1');
}

function mergeEnv(image: string[], cri: { key: string; value: string }[], hostname: string): string[] {
  const env = new Map<string, string>();
  for (const e of image) {
    const i = e.indexOf('=');
    if (i > 0) env.set(e.slice(0, i), e.slice(i + 1));
  }
  if (!env.has('PATH')) env.set('PATH', DEFAULT_PATH.slice(5));
  env.set('HOSTNAME', hostname);
  for (const { key, value } of cri) {
    if (!key || key.includes('=')) throw new InvalidArgument(`env key "${key}" is not valid`);
    env.set(key, value);
  }
  return [...env].map(([k, v]) => `${k}=${v}`);
}

function args(config: ContainerConfig, image: ImageConfigSummary): string[] {
  // command replaces the Entrypoint and drops Cmd; args alone replaces Cmd.
  const a = config.command.length ? [...config.command, ...config.args] : [...(image.entrypoint ?? []), ...(config.args.length ? config.args : (image.cmd ?? []))];
  if (a.length === 0) throw new InvalidArgument('no command: neither the container config nor the image names one');
  return a;
}

async function seccompFor(profile: SecurityProfile | null, legacyPath: string, caps: string[], privileged: boolean, root?: string): Promise<LinuxSeccomp | undefined> {
  if (privileged) return undefined;
  let kind: 'default' | 'unconfined' | 'localhost';
  let file = '';
  if (profile) {
    if (profile.profile_type === SecurityProfile_ProfileType.RuntimeDefault) kind = 'default';
    else if (profile.profile_type === SecurityProfile_ProfileType.Unconfined) kind = 'unconfined';
    else {
      kind = 'localhost';
      file = profile.localhost_ref;
    }
  } else if (!legacyPath || legacyPath === 'unconfined') kind = 'unconfined';
  else if (legacyPath === 'runtime/default' || legacyPath === 'docker/default') kind = 'default';
  else if (legacyPath.startsWith('localhost/')) {
    kind = 'localhost';
    file = legacyPath.slice('localhost/'.length);
  } else throw new InvalidArgument(`seccomp profile "${legacyPath}" is not runtime/default, unconfined or localhost/<path>`);
  if (kind === 'unconfined') return undefined;
  if (kind === 'default') return runtimeDefaultProfile(caps);
  if (!file) throw new InvalidArgument('seccomp: a Localhost profile needs localhost_ref');
  const abs = path.isAbsolute(file) ? file : path.join(root ?? '/var/lib/kubelet/seccomp', file);
  let text: string;
  try {
    text = await fsp.readFile(abs, 'utf8');
  } catch (e) {
    throw new InvalidArgument(`seccomp profile ${abs}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parseLocalhostProfile(text, abs, caps);
}

function apparmorFor(profile: SecurityProfile | null, legacy: string, hostHas: boolean, privileged: boolean): string | undefined {
  let kind = profile ? profile.profile_type : legacy ? (legacy === 'unconfined' ? SecurityProfile_ProfileType.Unconfined : legacy === 'runtime/default' ? SecurityProfile_ProfileType.RuntimeDefault : SecurityProfile_ProfileType.Localhost) : undefined;
  const ref = profile ? profile.localhost_ref : legacy.replace(/^localhost\//, '');
  if (kind === undefined || kind === SecurityProfile_ProfileType.Unconfined) return hostHas && kind !== undefined ? 'unconfined' : undefined;
  if (!hostHas) {
    // RuntimeDefault quietly means nothing where AppArmor is absent, as in containerd.
    if (kind === SecurityProfile_ProfileType.RuntimeDefault) return undefined;
    throw new FailedPrecondition(`AppArmor profile "${ref}" requested, but AppArmor is not enabled on this host`);
  }
  if (privileged) return undefined;
  if (kind === SecurityProfile_ProfileType.RuntimeDefault) return 'skiff-default';
  kind = SecurityProfile_ProfileType.Localhost;
  if (!ref) throw new InvalidArgument('apparmor: a Localhost profile needs localhost_ref');
  return ref;
}

/** Host device nodes under /dev (privileged containers get them all). */
async function hostDevices(dir = '/dev'): Promise<LinuxDevice[]> {
  const out: LinuxDevice[] = [];
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch {
    return out;
  }
  for (const n of names) {
    const p = path.join(dir, n);
    if (['/dev/pts', '/dev/shm', '/dev/mqueue', '/dev/fd', '/dev/console'].includes(p)) continue;
    const st = await fsp.lstat(p).catch(() => undefined);
    if (!st) continue;
    if (st.isDirectory()) out.push(...(await hostDevices(p)));
    else if (st.isCharacterDevice() || st.isBlockDevice()) out.push(deviceOf(p, p, st, ''));
  }
  return out;
}

function deviceOf(hostPath: string, containerPath: string, st: { rdev: number; mode: number; uid: number; gid: number; isCharacterDevice(): boolean }, _perm: string): LinuxDevice {
  const major = Number((BigInt(st.rdev) >> 8n) & 0xfffn) | Number((BigInt(st.rdev) >> 32n) & ~0xfffn);
  const minor = Number(BigInt(st.rdev) & 0xffn) | Number((BigInt(st.rdev) >> 12n) & ~0xffn);
  return { path: containerPath, type: st.isCharacterDevice() ? 'c' : 'b', major, minor, fileMode: st.mode & 0o777, uid: st.uid, gid: st.gid };
}

export async function buildContainerSpec(input: ContainerSpecInput): Promise<Spec> {
  const { config, pod, image } = input;
  const sc = config.linux?.security_context ?? null;
  const podSc = input.sandboxConfig.linux?.security_context ?? null;
  const privileged = !!sc?.privileged;
  if (privileged && !podSc?.privileged) throw new InvalidArgument('a privileged container needs a privileged pod sandbox');

  // User: the CRI's run_as_* win over the image's USER.
  if (sc?.run_as_group && !sc.run_as_user && !sc.run_as_username) throw new InvalidArgument('run_as_group needs run_as_user or run_as_username');
  const user = resolveUser(input.passwd, {
    uid: sc?.run_as_user ? sc.run_as_user.value : undefined,
    user: sc?.run_as_user ? undefined : sc?.run_as_username || image.user || '',
    gid: sc?.run_as_group ? sc.run_as_group.value : undefined,
  });
  for (const g of sc?.supplemental_groups ?? []) checkId('supplemental group', g);
  const strict = sc?.supplemental_groups_policy === SupplementalGroupsPolicy.Strict;
  const additionalGids = [...new Set([user.gid, ...(sc?.supplemental_groups ?? []), ...(strict ? [] : user.groups)])];

  const caps = capabilities(sc?.capabilities?.add_capabilities ?? [], sc?.capabilities?.drop_capabilities ?? [], privileged);
  const ambient = (sc?.capabilities?.add_ambient_capabilities ?? []).map(normCap).filter((c) => caps.includes(c));
  const hostname = pod.hostNetwork ? (await fsp.readFile('/proc/sys/kernel/hostname', 'utf8')).trim() : input.sandboxConfig.hostname || input.sandboxConfig.metadata?.name || '';
  const readonlyRootfs = !!sc?.readonly_rootfs;

  // Mounts: the defaults, the pod's files, then the CRI's (which win by destination).
  const criMounts: Mount[] = [];
  const taken = new Set<string>();
  for (const m of config.mounts) {
    const dst = cleanAbsolute(m.container_path, 'mount container_path');
    const src = cleanAbsolute(m.host_path, 'mount host_path');
    if (m.recursive_read_only && (!m.readonly || m.propagation !== MountPropagation.PROPAGATION_PRIVATE))
      throw new InvalidArgument(`mount ${dst}: recursive_read_only needs readonly and private propagation`);
    const prop = m.propagation === MountPropagation.PROPAGATION_BIDIRECTIONAL ? 'rshared' : m.propagation === MountPropagation.PROPAGATION_HOST_TO_CONTAINER ? 'rslave' : 'rprivate';
    const options = ['rbind', prop, m.recursive_read_only ? 'rro' : m.readonly ? 'ro' : 'rw'];
    criMounts.push({ destination: dst, type: 'bind', source: src, options });
    taken.add(dst);
  }
  const mounts: Mount[] = [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', privileged ? 'rw' : 'ro'] },
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', privileged ? 'rw' : 'ro'] },
  ];
  const ipcMode = sc?.namespace_options?.ipc ?? NamespaceMode.POD;
  if (pod.shmPath && ipcMode !== NamespaceMode.NODE) mounts.push({ destination: '/dev/shm', type: 'bind', source: pod.shmPath, options: ['rbind', 'rprivate', 'nosuid', 'nodev', 'noexec'] });
  else if (ipcMode === NamespaceMode.NODE) mounts.push({ destination: '/dev/shm', type: 'bind', source: '/dev/shm', options: ['rbind', 'rprivate'] });
  else mounts.push({ destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] });
  const podFile = (dst: string, src: string) => {
    if (!taken.has(dst)) mounts.push({ destination: dst, type: 'bind', source: src, options: ['rbind', 'rprivate', readonlyRootfs ? 'ro' : 'rw'] });
  };
  podFile('/etc/hosts', pod.hostsPath);
  podFile('/etc/resolv.conf', pod.resolvConfPath);
  podFile('/etc/hostname', pod.hostnamePath);
  const all = [...mounts.filter((m) => !taken.has(m.destination)), ...criMounts];

  // Devices.
  const devices: LinuxDevice[] = privileged ? await hostDevices() : [];
  const deviceRules: LinuxDeviceCgroup[] = privileged ? [{ allow: true, access: 'rwm' }] : [...DEFAULT_DEVICE_RULES];
  for (const d of config.devices) {
    const hostPath = cleanAbsolute(d.host_path, 'device host_path');
    const containerPath = cleanAbsolute(d.container_path || d.host_path, 'device container_path');
    const perm = d.permissions || 'rwm';
    if (!/^[rwm]{1,3}$/.test(perm)) throw new InvalidArgument(`device ${hostPath}: permissions "${perm}" must be made of r, w and m`);
    const st = await fsp.stat(hostPath).catch(() => undefined);
    if (!st || !(st.isCharacterDevice() || st.isBlockDevice())) throw new InvalidArgument(`device ${hostPath} is not a device node on this host`);
    const dev = deviceOf(hostPath, containerPath, st, perm);
    devices.push(dev);
    deviceRules.push({ allow: true, type: dev.type as 'c' | 'b', major: dev.major, minor: dev.minor, access: perm });
  }

  // Namespaces.
  const ns = sc?.namespace_options ?? null;
  const namespaces: Spec['linux']['namespaces'] = [{ type: 'mount' }];
  if (!pod.hostNetwork) namespaces.push({ type: 'network', path: pod.namespaces.net }, { type: 'uts', path: pod.namespaces.uts });
  if (ipcMode !== NamespaceMode.NODE) namespaces.push({ type: 'ipc', path: pod.namespaces.ipc });
  const pidMode = ns?.pid ?? NamespaceMode.CONTAINER;
  if (pidMode === NamespaceMode.POD) {
    if (!pod.namespaces.pid) throw new InvalidArgument('namespace_options.pid is POD but the pod has no PID namespace of its own');
    namespaces.push({ type: 'pid', path: pod.namespaces.pid });
  } else if (pidMode === NamespaceMode.CONTAINER) namespaces.push({ type: 'pid' });
  else if (pidMode === NamespaceMode.TARGET) {
    if (!input.targetPidNs) throw new InvalidArgument(`namespace_options.target_id "${ns?.target_id ?? ''}" names no running container`);
    namespaces.push({ type: 'pid', path: input.targetPidNs });
  }
  if (pod.namespaces.user) namespaces.push({ type: 'user', path: pod.namespaces.user });
  for (const n of namespaces) if ('path' in n && n.path === undefined) delete n.path;

  // Resources, oom_score_adj clamped to what the host allows.
  const res = config.linux?.resources ? ociResources(config.linux.resources, input.restrictOomScoreAdj) : {};
  const { oomScoreAdj, ...resources } = res;

  const spec: Spec = {
    ociVersion: '1.1.0',
    process: {
      terminal: config.tty,
      user: { uid: user.uid, gid: user.gid, additionalGids },
      args: args(config, image),
      env: mergeEnv(image.env ?? [], config.envs, hostname),
      cwd: config.working_dir || image.workingDir || '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps, inheritable: [], ambient },
      noNewPrivileges: !!sc?.no_new_privs,
      ...(oomScoreAdj !== undefined ? { oomScoreAdj } : {}),
    },
    root: { path: 'rootfs', readonly: readonlyRootfs },
    // A host-network container has the host's UTS namespace: its hostname is not ours to set.
    ...(pod.hostNetwork ? {} : { hostname }),
    mounts: all,
    annotations: {
      ...config.annotations,
      'io.kubernetes.cri.container-type': 'container',
      'io.kubernetes.cri.container-name': config.metadata?.name ?? '',
      'io.kubernetes.cri.sandbox-id': pod.id,
      'io.kubernetes.cri.sandbox-name': input.sandboxConfig.metadata?.name ?? '',
      'io.kubernetes.cri.sandbox-namespace': input.sandboxConfig.metadata?.namespace ?? '',
      'io.kubernetes.cri.sandbox-uid': input.sandboxConfig.metadata?.uid ?? '',
      'io.kubernetes.cri.image-name': input.imageName,
    },
    linux: {
      namespaces,
      devices,
      cgroupsPath: `${pod.cgroupParent.replace(/\/$/, '')}/skiff-${input.containerId}`,
      resources: { ...resources, devices: deviceRules },
      maskedPaths: privileged ? [] : sc?.masked_paths ?? [],
      readonlyPaths: privileged ? [] : sc?.readonly_paths ?? [],
      rootfsPropagation: criMounts.some((m) => m.options?.includes('rshared')) ? 'rshared' : criMounts.some((m) => m.options?.includes('rslave')) ? 'rslave' : 'rprivate',
    },
  };
  const seccomp = await seccompFor(sc?.seccomp ?? null, sc?.seccomp_profile_path ?? '', caps, privileged, input.seccompProfileRoot);
  if (seccomp) spec.linux.seccomp = seccomp;
  const apparmor = apparmorFor(sc?.apparmor ?? null, sc?.apparmor_profile ?? '', input.hostHasAppArmor, privileged);
  if (apparmor) spec.process.apparmorProfile = apparmor;
  const se = sc?.selinux_options;
  if (se && (se.user || se.role || se.type || se.level)) {
    if (!input.hostHasSELinux) throw new FailedPrecondition('SELinux options requested, but SELinux is not enabled on this host');
    spec.process.selinuxLabel = `${se.user || 'system_u'}:${se.role || 'system_r'}:${se.type || 'container_t'}:${se.level || 's0'}`;
  }
  return spec;
}
