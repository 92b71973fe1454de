// CRI ContainerConfig + the pod's PodSandboxConfig + the image config -> the OCI runtime spec
// skiff-shim runs, merged as containerd's CRI plugin merges them (container_create_linux.go,
// opts/spec_linux.go). Pure: what it needs from the host (device numbers, host devices,
// Localhost seccomp files, volume dirs) comes in through the input.
import * as os from 'os';
import * as path from 'path';
import { FailedPrecondition, Internal, InvalidArgument } from '../errors';
import { MountPropagation, NamespaceMode, SecurityProfile_ProfileType, SupplementalGroupsPolicy } from '../cri/gen/cri';
import type { Capability, ContainerConfig, KeyValue, LinuxContainerSecurityContext, Mount as CriMount, PodSandboxConfig, SecurityProfile, SELinuxOption } from '../cri/gen/cri';
import type { ImageConfigSummary } from '../image/image_service';
import type { IdMapping, LinuxCapabilities, LinuxDevice, LinuxDeviceCgroup, LinuxNamespace, LinuxResources, Mount, Spec, User } from '../oci/runtime_spec';
import { checkIdMappings, copyIdMappings, ociIdMappings } from '../sandbox/userns';
import { deviceBindMount } from './devices';
import { APPARMOR_DEFAULT_PROFILE, formatSelinuxContext, HostLsm } from './lsm';
import { ociResources } from './resources';
import { parseLocalhostProfile, runtimeDefaultProfile, seccompChoice } from './seccomp';
import { checkId, imageSupplementalGroups, PasswdDb, resolveUser } from './user';
import { isImageMount } from './image_volumes';

/** containerd's default capability set (oci.defaultUnixCaps). */
export const DEFAULT_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID', 'CAP_SETUID', 'CAP_SETFCAP',
  'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
];

/**
 * Every capability by number (linux/capability.h), the same table as the shim's caps.c:
 * "ALL" and privileged mean these. The shim skips those the running kernel lacks, so the
 * list need not be cut to /proc/sys/kernel/cap_last_cap here.
 */
export const ALL_CAPABILITIES: readonly string[] = [
  'CHOWN', 'DAC_OVERRIDE', 'DAC_READ_SEARCH', 'FOWNER', 'FSETID', 'KILL', 'SETGID', 'SETUID', 'SETPCAP', 'LINUX_IMMUTABLE',
  'NET_BIND_SERVICE', 'NET_BROADCAST', 'NET_ADMIN', 'NET_RAW', 'IPC_LOCK', 'IPC_OWNER', 'SYS_MODULE', 'SYS_RAWIO', 'SYS_CHROOT',
  'SYS_PTRACE', 'SYS_PACCT', 'SYS_ADMIN', 'SYS_BOOT', 'SYS_NICE', 'SYS_RESOURCE', 'SYS_TIME', 'SYS_TTY_CONFIG', 'MKNOD', 'LEASE',
  'AUDIT_WRITE', 'AUDIT_CONTROL', 'SETFCAP', 'MAC_OVERRIDE', 'MAC_ADMIN', 'SYSLOG', 'WAKE_ALARM', 'BLOCK_SUSPEND', 'AUDIT_READ',
  'PERFMON', 'BPF', 'CHECKPOINT_RESTORE',
].map((c) => `CAP_${c}`);

/**
 * Capability names of a /proc/<pid>/status mask (CapEff: hex), for hostCapabilities. Bits
 * above the table (caps newer than skiff) are left out: the shim could not name them.
 */
export function capabilitiesFromMask(hex: string): string[] {
  if (!/^[0-9a-fA-F]{1,16}$/.test(hex.trim())) throw new InvalidArgument(`capability mask "${hex}" is not hexadecimal`);
  const mask = BigInt(`0x${hex.trim()}`);
  return ALL_CAPABILITIES.filter((_, bit) => (mask >> BigInt(bit)) & 1n);
}

/** containerd's default masked paths (oci.populateDefaultUnixSpec). */
export const DEFAULT_MASKED_PATHS: readonly string[] = [
  '/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats',
  '/proc/sched_debug', '/sys/firmware', '/sys/devices/virtual/powercap', '/proc/scsi',
];
export const DEFAULT_READONLY_PATHS: readonly string[] = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

export const DEFAULT_PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

// Device cgroup rules of an unprivileged container: nothing but mknod of any node and the
// devices every container has (runc's AllowedDevices; the shim adds the same set itself).
const DEFAULT_DEVICE_RULES: readonly LinuxDeviceCgroup[] = [
  { allow: false, access: 'rwm' },
  { allow: true, type: 'c', access: 'm' },
  { allow: true, type: 'b', access: 'm' },
  ...([[1, 3], [1, 5], [1, 7], [1, 8], [1, 9], [5, 0], [5, 1], [5, 2], [10, 200]] as const).map(
    ([major, minor]): LinuxDeviceCgroup => ({ allow: true, type: 'c', major, minor, access: 'rwm' }),
  ),
  { allow: true, type: 'c', major: 136, access: 'rwm' },
];

/** A host device node as the caller found it (stat of the host path). */
export interface DeviceInfo {
  type: 'c' | 'b';
  major: number;
  minor: number;
  /** st_mode; its permission bits become the node's mode in the container. */
  mode: number;
  uid?: number;
  gid?: number;
}

/** What the pod sandbox made that its containers use. */
export interface PodContext {
  /** The sandbox id (annotation io.kubernetes.cri.sandbox-id). */
  id: string;
  /** /proc/<infra>/ns/<type> of the namespaces the pod holds; absent: the pod uses the host's. */
  namespaces: { net?: string; ipc?: string; uts?: string; pid?: string; user?: string };
  hostNetwork: boolean;
  hostsPath: string;
  resolvConfPath: string;
  hostnamePath: string;
  /** The pod's /dev/shm tmpfs; '' when the pod uses the host's IPC namespace. */
  shmPath: string;
  /** The pod's cgroup (cgroupfs driver); the container's is <cgroupParent>/<containerId>. */
  cgroupParent: string;
  /** Id mappings of the pod's user namespace, when it has one. */
  userNamespace?: { uidMappings: IdMapping[]; gidMappings: IdMapping[] };
  /** Id-map every CRI bind mount that carries no mappings with the pod's (skiff chose the
   * pod's user namespace, so kubelet sent none for its volumes). */
  idmapVolumes?: boolean;
}

export interface ContainerSpecInput {
  containerId: string;
  config: ContainerConfig;
  sandboxConfig: PodSandboxConfig;
  image: ImageConfigSummary;
  /** The image reference for io.kubernetes.cri.image-name; defaults to config.image.image. */
  imageName?: string;
  /** Absolute path of the mounted rootfs (root.path). */
  rootfsPath: string;
  /** The image's /etc/passwd and /etc/group (readPasswdDb); absent: no entries. */
  passwd?: PasswdDb;
  pod: PodContext;
  /** The pid namespace of namespace_options.target_id, for pid mode TARGET. */
  targetPidNs?: string;
  /** The host's device nodes, which privileged containers get (outside a user namespace). */
  hostDevices?: LinuxDevice[];
  /** Device number and mode of a host path; undefined when it is not a device node. */
  statDevice?: (hostPath: string) => DeviceInfo | undefined;
  /** An empty host directory (made by the caller) for an image VOLUME at this container path. */
  volumeDir?: (containerPath: string) => string;
  /** The host path of the image volume (mounted by the caller, image_volumes.ts) that the
   * CRI mount of this index binds; undefined: none was mounted. */
  imageVolumeSource?: (mountIndex: number) => string | undefined;
  /** Where relative Localhost seccomp refs live (absolute refs are used as they are). */
  seccompProfileRoot?: string;
  /** The text of a Localhost seccomp profile file (see seccompChoice to know it in advance). */
  loadLocalhostProfile?: (file: string) => string;
  /** The lowest oom_score_adj this host allows: lower requests are raised to it. */
  restrictOomScoreAdj?: number;
  /** pids.max for a container whose CRI config sets none (cri.default_pids_limit); 0 or absent: none. */
  defaultPidsLimit?: number;
  /** The LSMs that enforce on this host (detectHostLsm): what is asked of one that does
   * not is ignored, or refused where ignoring it would hide a named profile. */
  lsm: HostLsm;
  /** The AppArmor profiles the kernel holds (AppArmorProfiles.loaded), which a Localhost
   * profile must be among; read by the caller where AppArmor enforces. */
  appArmorProfilesLoaded?: ReadonlySet<string>;
  /** The host's hostname, for HOSTNAME of host-network pods without one; defaults to os.hostname(). */
  hostHostname?: string;
  /**
   * The capabilities skiffd (and so the shim) holds, which "ALL" and privileged grant, as
   * containerd grants cap.Current(): the shim cannot give what it lacks. Defaults to every
   * capability (right for a runtime running as full root). See capabilitiesFromMask.
   */
  hostCapabilities?: readonly string[];
  /** Node's process.arch naming the host architecture (seccomp); defaults to process.arch. */
  arch?: string;
}

const hasNul = (s: string) => s.includes('\0');

/** p normalised, if absolute and free of ".." components, else InvalidArgument naming the field. */
function cleanAbsolute(p: string, field: string): string {
  if (!p.startsWith('/')) throw new InvalidArgument(`${field} "${p}" must be an absolute path`);
  if (hasNul(p)) throw new InvalidArgument(`${field} contains a NUL byte`);
  if (p.split('/').includes('..')) throw new InvalidArgument(`${field} "${p}" must not contain ".."`);
  const n = path.posix.normalize(p);
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}

/** containerd's WithProcessArgs: command replaces Entrypoint and drops Cmd; args alone replaces Cmd. */
function processArgs(config: ContainerConfig, image: ImageConfigSummary): string[] {
  let command = config.command;
  let args = config.args;
  if (command.length === 0) {
    if (args.length === 0) args = image.cmd ?? [];
    const entrypoint = image.entrypoint ?? [];
    // ENTRYPOINT [""] is how an image resets an inherited entrypoint.
    if (!(entrypoint.length === 1 && entrypoint[0] === '')) command = entrypoint;
  }
  const all = [...command, ...args];
  if (all.length === 0) throw new InvalidArgument('no command specified: the container config has no command or args, and the image no Entrypoint or Cmd');
  if (!all[0]) throw new InvalidArgument('the command to run is an empty string');
  if (all.some(hasNul)) throw new InvalidArgument('command and args must not contain NUL bytes');
  return all;
}

/**
 * PATH default, HOSTNAME, the image's Env, then the CRI envs, each overriding an earlier
 * value of its key in place (containerd's replaceOrAppendEnvValues); an image entry without
 * "=" unsets the key.
 */
function processEnv(imageEnv: string[], criEnvs: KeyValue[], hostname: string): string[] {
  const env = new Map<string, string>();
  const put = (entry: string) => {
    const eq = entry.indexOf('=');
    if (eq < 0) env.delete(entry);
    else if (eq > 0) env.set(entry.slice(0, eq), entry);
  };
  put(DEFAULT_PATH_ENV);
  put(`HOSTNAME=${hostname}`);
  for (const e of imageEnv) put(e);
  criEnvs.forEach(({ key, value }, i) => {
    if (!key || key.includes('=')) throw new InvalidArgument(`envs[${i}].key "${key}" must be a non-empty name without "="`);
    // cri-api 0.36 made the value bytes (the wire is the same as v1alpha2's string); it becomes UTF-8 text in config.json.
    env.set(key, `${key}=${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('utf8')}`);
  });
  const out = [...env.values()];
  if (out.some(hasNul)) throw new InvalidArgument('envs must not contain NUL bytes');
  return out;
}

/** working_dir, else the image's WorkingDir, else "/"; kept as given, since the shim resolves it inside the container. */
function processCwd(config: ContainerConfig, image: ImageConfigSummary): string {
  // An image's WorkingDir is absolute when built by any current tool; anchor it if not.
  const cwd = config.working_dir || (image.workingDir ? path.posix.join('/', image.workingDir) : '/');
  if (!cwd.startsWith('/')) throw new InvalidArgument(`working_dir "${cwd}" must be an absolute path`);
  if (hasNul(cwd)) throw new InvalidArgument('working_dir contains a NUL byte');
  return cwd;
}

/** containerd's generateUserString: run_as_username or run_as_user, with ":run_as_group". */
function criUserString(sc: LinuxContainerSecurityContext | null): string {
  if (!sc) return '';
  let user = '';
  if (sc.run_as_user) user = String(checkId('run_as_user', sc.run_as_user.value));
  if (sc.run_as_username) user = sc.run_as_username;
  const group = sc.run_as_group ? String(checkId('run_as_group', sc.run_as_group.value)) : '';
  if (!user) {
    if (group) throw new InvalidArgument(`run_as_group ${group} is set without run_as_user or run_as_username`);
    return '';
  }
  return group ? `${user}:${group}` : user;
}

/**
 * uid, gid and groups: the CRI's run_as_* win over the image's USER; the groups are the
 * primary gid, the groups the image's /etc/group gives the user (unless the policy is
 * Strict), then the CRI's supplemental_groups (containerd's WithAdditionalGIDs and
 * WithSupplementalGroups).
 */
function processUser(sc: LinuxContainerSecurityContext | null, image: ImageConfigSummary, db: PasswdDb): User {
  const spec = criUserString(sc) || image.user || '';
  const { uid, gid } = resolveUser(db, spec);
  // The user whose group memberships count: as containerd picks it, without the group part.
  const member = sc?.run_as_username || (sc?.run_as_user ? String(sc.run_as_user.value) : '') || (image.user ?? '').split(':')[0] || '0';
  const strict = sc?.supplemental_groups_policy === SupplementalGroupsPolicy.Strict;
  const fromImage = strict ? [] : imageSupplementalGroups(db, member);
  const fromCri = (sc?.supplemental_groups ?? []).map((g, i) => checkId(`supplemental_groups[${i}]`, g));
  return { uid, gid, additionalGids: [...new Set([gid, ...fromImage, ...fromCri])] };
}

function capName(name: string, field: string): string {
  const u = name.trim().toUpperCase();
  if (u === 'ALL') return u;
  const full = u.startsWith('CAP_') ? u : `CAP_${u}`;
  if (!ALL_CAPABILITIES.includes(full)) throw new InvalidArgument(`${field}: unknown capability "${name}"`);
  return full;
}

/**
 * The capability set of an unprivileged container: the defaults, "ALL" added, then "ALL"
 * dropped, then each named add, then each named drop (containerd's WithCapabilities, so
 * add ALL + drop CHOWN is everything but CHOWN, drop ALL + add NET_ADMIN is NET_ADMIN).
 */
export function containerCapabilities(c: Capability | null, all: readonly string[] = ALL_CAPABILITIES): string[] {
  if (!c) return [...DEFAULT_CAPABILITIES];
  const add = c.add_capabilities.map((n, i) => capName(n, `capabilities.add_capabilities[${i}]`));
  const drop = c.drop_capabilities.map((n, i) => capName(n, `capabilities.drop_capabilities[${i}]`));
  const caps = new Set(add.includes('ALL') ? all : DEFAULT_CAPABILITIES);
  if (drop.includes('ALL')) caps.clear();
  for (const a of add) if (a !== 'ALL') caps.add(a);
  for (const d of drop) if (d !== 'ALL') caps.delete(d);
  return [...caps];
}

function capabilitySets(sc: LinuxContainerSecurityContext | null, privileged: boolean, all: readonly string[]): LinuxCapabilities {
  const caps = privileged ? [...all] : containerCapabilities(sc?.capabilities ?? null, all);
  // Ambient capabilities must also be inheritable (containerd's WithAmbientCapabilities),
  // and the kernel only raises those in the permitted set: refuse the rest by name here.
  const ambient = privileged
    ? []
    : (sc?.capabilities?.add_ambient_capabilities ?? []).map((n, i) => {
        const field = `capabilities.add_ambient_capabilities[${i}]`;
        const c = capName(n, field);
        if (c === 'ALL') throw new InvalidArgument(`${field}: "ALL" is not allowed for ambient capabilities`);
        if (!caps.includes(c)) throw new InvalidArgument(`${field}: ${c} is not among the container's capabilities; add it to add_capabilities too`);
        return c;
      });
  return { bounding: caps, effective: [...caps], permitted: [...caps], inheritable: [...ambient], ambient };
}

/** The namespaces, joined from the pod or new, that the container's namespace options ask for. */
function namespacesFor(input: ContainerSpecInput, sc: LinuxContainerSecurityContext | null): { namespaces: LinuxNamespace[]; ipc: 'pod' | 'host' | 'private' } {
  const { pod } = input;
  const ns = sc?.namespace_options ?? null;
  const podNs = input.sandboxConfig.linux?.security_context?.namespace_options ?? null;
  const out: LinuxNamespace[] = [];

  // A container may not take a host namespace its pod does not have. Without namespace
  // options (crictl configs) a container gets a PID namespace of its own, as kubelet's default.
  const pid = ns ? ns.pid : NamespaceMode.CONTAINER;
  if (pid === NamespaceMode.POD) {
    if (!pod.namespaces.pid) throw new InvalidArgument('namespace_options.pid is POD, but the pod sandbox has no PID namespace of its own');
    out.push({ type: 'pid', path: pod.namespaces.pid });
  } else if (pid === NamespaceMode.CONTAINER) {
    out.push({ type: 'pid' });
  } else if (pid === NamespaceMode.TARGET) {
    if (!input.targetPidNs) throw new InvalidArgument(`namespace_options.target_id "${ns?.target_id ?? ''}" names no running container of this pod`);
    out.push({ type: 'pid', path: input.targetPidNs });
  } else if (pid === NamespaceMode.NODE) {
    if (podNs?.pid !== NamespaceMode.NODE) throw new InvalidArgument('namespace_options.pid is NODE, but the pod sandbox does not use the host PID namespace');
  } else throw new InvalidArgument(`namespace_options.pid: unknown mode ${String(pid)}`);

  if (ns?.network === NamespaceMode.NODE && !pod.hostNetwork)
    throw new InvalidArgument('namespace_options.network is NODE, but the pod sandbox does not use the host network');
  if (!pod.hostNetwork) {
    if (!pod.namespaces.net || !pod.namespaces.uts) throw new FailedPrecondition(`pod sandbox ${pod.id} has no network or UTS namespace to join`);
    out.push({ type: 'network', path: pod.namespaces.net });
  }

  let ipc: 'pod' | 'host' | 'private';
  const ipcMode = ns?.ipc ?? NamespaceMode.POD;
  if (ipcMode === NamespaceMode.NODE) {
    if (pod.namespaces.ipc) throw new InvalidArgument('namespace_options.ipc is NODE, but the pod sandbox does not use the host IPC namespace');
    ipc = 'host';
  } else if (ipcMode === NamespaceMode.CONTAINER) {
    out.push({ type: 'ipc' });
    ipc = 'private';
  } else if (ipcMode === NamespaceMode.POD) {
    // A pod without an IPC namespace of its own is a host-IPC pod: POD is the host's then.
    if (pod.namespaces.ipc) out.push({ type: 'ipc', path: pod.namespaces.ipc });
    ipc = pod.namespaces.ipc ? 'pod' : 'host';
  } else throw new InvalidArgument(`namespace_options.ipc: mode ${NamespaceMode[ipcMode] ?? String(ipcMode)} is not supported for containers`);

  if (!pod.hostNetwork) out.push({ type: 'uts', path: pod.namespaces.uts });
  // Always a mount namespace of its own. No cgroup namespace: the shim unshares namespaces
  // before it moves the process into the container's cgroup, so a new one would be rooted
  // at the shim's cgroup instead of the container's.
  out.push({ type: 'mount' });
  if (pod.namespaces.user) out.push({ type: 'user', path: pod.namespaces.user });
  else if (pod.userNamespace) out.push({ type: 'user' });
  return { namespaces: out, ipc };
}

/**
 * A CRI mount's uidMappings and gidMappings in OCI form: kubelet gives every volume of a
 * pod with a user namespace the pod's own, so that the volume's owner on the host is its
 * root inside. Both or neither; a mount's map need not hold container id 0.
 */
function mountIdMappings(m: CriMount, field: string): Pick<Mount, 'uidMappings' | 'gidMappings'> {
  if (!m.uidMappings.length && !m.gidMappings.length) return {};
  if (!m.uidMappings.length) throw new InvalidArgument(`${field}.uidMappings: required with gidMappings`);
  if (!m.gidMappings.length) throw new InvalidArgument(`${field}.gidMappings: required with uidMappings`);
  checkIdMappings(m.uidMappings, `${field}.uidMappings`, { rootMapped: false });
  checkIdMappings(m.gidMappings, `${field}.gidMappings`, { rootMapped: false });
  return { uidMappings: ociIdMappings(m.uidMappings), gidMappings: ociIdMappings(m.gidMappings) };
}

const PROPAGATION_OPTION: Record<MountPropagation, string> = {
  [MountPropagation.PROPAGATION_PRIVATE]: 'rprivate',
  [MountPropagation.PROPAGATION_HOST_TO_CONTAINER]: 'rslave',
  [MountPropagation.PROPAGATION_BIDIRECTIONAL]: 'rshared',
};

const depth = (p: string) => (p === '/' ? 0 : p.split('/').length - 1);

/**
 * All mounts: containerd's defaults (minus those a supplied mount replaces, and all under
 * /dev when /dev itself is supplied), the cgroup mount, then the supplied ones (CRI mounts,
 * the pod's /etc files and /dev/shm, image volumes) parents first. Also the rootfs
 * propagation a shared or slave mount needs.
 */
function mountsFor(
  input: ContainerSpecInput,
  sc: LinuxContainerSecurityContext | null,
  privileged: boolean,
  ipc: 'pod' | 'host' | 'private',
): { mounts: Mount[]; rootfsPropagation?: string } {
  const { config, pod, image } = input;
  const readonlyRootfs = !!sc?.readonly_rootfs;
  const supplied: Mount[] = [];
  // In a pod with a user namespace the files and dirs skiffd makes for it (owned by the
  // host's root) are id-mapped with the pod's mappings, so that its root owns them as in a
  // pod without one.
  const podIdmap = (): Pick<Mount, 'uidMappings' | 'gidMappings'> =>
    pod.userNamespace ? copyIdMappings(pod.userNamespace) : {};
  const volumeIdMappings = (m: CriMount, field: string) => {
    const sent = mountIdMappings(m, field);
    return sent.uidMappings || !pod.idmapVolumes ? sent : podIdmap();
  };
  let rootfsPropagation: string | undefined;

  config.mounts.forEach((m, i) => {
    const field = `mounts[${i}]`;
    const image = isImageMount(m);
    const imageSource = image ? input.imageVolumeSource?.(i) : undefined;
    if (image && !imageSource) throw new Internal(`${field}: the image volume was not mounted`);
    const destination = cleanAbsolute(m.container_path, `${field}.container_path`);
    const source = imageSource ? cleanAbsolute(imageSource, `${field} (image volume)`) : cleanAbsolute(m.host_path, `${field}.host_path`);
    const propagation = PROPAGATION_OPTION[m.propagation];
    if (!propagation) throw new InvalidArgument(`${field}.propagation: unknown mode ${String(m.propagation)}`);
    if (m.recursive_read_only && !m.readonly) throw new InvalidArgument(`${field}: recursive_read_only needs readonly`);
    if (m.recursive_read_only && m.propagation !== MountPropagation.PROPAGATION_PRIVATE)
      throw new InvalidArgument(`${field}: recursive_read_only needs propagation PROPAGATION_PRIVATE`);
    if (propagation === 'rshared') rootfsPropagation = 'rshared';
    else if (propagation === 'rslave' && rootfsPropagation !== 'rshared') rootfsPropagation = 'rslave';
    supplied.push({
      destination,
      type: 'bind',
      source,
      options: ['rbind', propagation, m.recursive_read_only ? 'rro' : m.readonly || image ? 'ro' : 'rw'],
      // An image volume's view is id-mapped already where the pod has a user namespace (an
      // overlay of id-mapped layers: the kernel cannot id-map the overlay itself), so its
      // bind carries no mappings; other mounts carry those kubelet sent, or the pod's.
      ...(image ? {} : volumeIdMappings(m, field)),
    });
  });
  const criDestinations = new Set(supplied.map((m) => m.destination));
  const podFile = (destination: string, source: string, options: string[]) => {
    if (!criDestinations.has(destination)) supplied.push({ destination, type: 'bind', source, options, ...podIdmap() });
  };
  // The pod's files follow readonly_rootfs, as containerd's extra mounts do.
  const fileMode = readonlyRootfs ? 'ro' : 'rw';
  podFile('/etc/hostname', pod.hostnamePath, ['rbind', 'rprivate', fileMode]);
  podFile('/etc/hosts', pod.hostsPath, ['rbind', 'rprivate', fileMode]);
  podFile('/etc/resolv.conf', pod.resolvConfPath, ['rbind', 'rprivate', fileMode]);
  // The pod's (or the host's) shared memory; a private IPC namespace keeps the default tmpfs.
  if (ipc === 'host') {
    if (!criDestinations.has('/dev/shm')) supplied.push({ destination: '/dev/shm', type: 'bind', source: '/dev/shm', options: ['rbind', 'rprivate', 'rw'] });
  }
  else if (ipc === 'pod' && pod.shmPath) podFile('/dev/shm', pod.shmPath, ['rbind', 'rprivate', 'nosuid', 'nodev', 'noexec', 'rw']);

  // Image VOLUMEs get an empty directory of the container's, unless a CRI mount covers
  // them; without volumeDir they stay part of the (writable) rootfs.
  if (input.volumeDir) {
    for (const v of image.volumes ?? []) {
      const destination = cleanAbsolute(path.posix.join('/', v), `image volume "${v}"`);
      if (criDestinations.has(destination) || supplied.some((m) => m.destination === destination)) continue;
      const source = input.volumeDir(destination);
      if (!path.isAbsolute(source)) throw new Internal(`volumeDir gave a relative path "${source}" for ${destination}`);
      supplied.push({ destination, type: 'bind', source, options: ['rbind', 'rprivate', 'rw'], ...podIdmap() });
    }
  }

  const suppliedDestinations = new Set(supplied.map((m) => m.destination));
  const devSupplied = suppliedDestinations.has('/dev');
  const sysMode = privileged ? 'rw' : 'ro';
  const defaults: Mount[] = [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', sysMode] },
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', sysMode] },
  ].filter((m) => !suppliedDestinations.has(m.destination) && !(devSupplied && m.destination.startsWith('/dev/')));

  // Parents before children, otherwise in the order given (a stable sort).
  supplied.sort((a, b) => depth(a.destination) - depth(b.destination));
  return { mounts: [...defaults, ...supplied], ...(rootfsPropagation ? { rootfsPropagation } : {}) };
}

/**
 * Device nodes and the device cgroup rules: CRI devices, and for privileged all of them.
 * In a user namespace the shim binds a node from its path on the host (no mknod there), so
 * a device whose container path differs from its host path is a bind of the host's node.
 */
function devicesFor(input: ContainerSpecInput, privileged: boolean, userns: boolean): { devices: LinuxDevice[]; rules: LinuxDeviceCgroup[]; binds: Mount[] } {
  const byPath = new Map<string, LinuxDevice>();
  const binds: Mount[] = [];
  const rules: LinuxDeviceCgroup[] = privileged ? [{ allow: true, access: 'rwm' }] : DEFAULT_DEVICE_RULES.map((r) => ({ ...r }));
  // In a user namespace host nodes cannot be created (only bound), so containerd gives a
  // privileged container none there.
  if (privileged && !userns) for (const d of input.hostDevices ?? []) byPath.set(d.path, { ...d });
  input.config.devices.forEach((d, i) => {
    const field = `devices[${i}]`;
    const hostPath = cleanAbsolute(d.host_path, `${field}.host_path`);
    const containerPath = d.container_path ? cleanAbsolute(d.container_path, `${field}.container_path`) : hostPath;
    const access = d.permissions || 'rwm';
    if (!/^[rwm]{1,3}$/.test(access) || new Set(access).size !== access.length)
      throw new InvalidArgument(`${field}.permissions "${d.permissions}" must be made of r, w and m`);
    if (!input.statDevice) throw new Internal(`${field}: no statDevice given to look up ${hostPath}`);
    const st = input.statDevice(hostPath);
    if (!st) throw new InvalidArgument(`${field}.host_path ${hostPath} is not a device node on this host`);
    const dev: LinuxDevice = { path: containerPath, type: st.type, major: st.major, minor: st.minor, fileMode: st.mode & 0o7777 };
    if (st.uid !== undefined) dev.uid = st.uid;
    if (st.gid !== undefined) dev.gid = st.gid;
    if (userns && containerPath !== hostPath) {
      byPath.delete(containerPath);
      binds.push(deviceBindMount(containerPath, hostPath));
    } else byPath.set(containerPath, dev);
    if (!privileged) rules.push({ allow: true, type: st.type, major: st.major, minor: st.minor, access });
  });
  return { devices: [...byPath.values()], rules, binds };
}

/** CRI masked/readonly paths when given, containerd's defaults when not, none when privileged. */
function pathList(given: string[], defaults: readonly string[], privileged: boolean, field: string): string[] {
  if (privileged) return [];
  // CRI cannot tell an empty list from an absent one; containerd takes both as "defaults".
  if (given.length === 0) return [...defaults];
  return given.map((p, i) => cleanAbsolute(p, `${field}[${i}]`));
}

/** A legacy "runtime/default" | "unconfined" | "localhost/<name>" string as a SecurityProfile. */
function legacyProfile(s: string, field: string): SecurityProfile | null {
  if (s === '') return null;
  if (s === 'runtime/default' || s === 'docker/default') return { profile_type: SecurityProfile_ProfileType.RuntimeDefault, localhost_ref: '' };
  if (s === 'unconfined') return { profile_type: SecurityProfile_ProfileType.Unconfined, localhost_ref: '' };
  if (s.startsWith('localhost/')) return { profile_type: SecurityProfile_ProfileType.Localhost, localhost_ref: s.slice('localhost/'.length) };
  throw new InvalidArgument(`${field} "${s}" is not runtime/default, unconfined or localhost/<name>`);
}

/**
 * The AppArmor profile, as containerd picks it where AppArmor enforces: unset means
 * RuntimeDefault (kubernetes#51746), which privileged containers go without; a Localhost
 * profile must be loaded. Where AppArmor is off, RuntimeDefault and Unconfined mean
 * nothing (as CRI-O takes them: the pod runs, the isolation report says unconfined) but
 * a Localhost profile is refused, as containerd refuses it: it was asked for by name.
 */
function apparmorFor(input: ContainerSpecInput, sc: LinuxContainerSecurityContext | null, privileged: boolean): string | undefined {
  const p = sc?.apparmor ?? legacyProfile(sc?.apparmor_profile ?? '', 'apparmor_profile');
  const type = p?.profile_type ?? SecurityProfile_ProfileType.RuntimeDefault;
  const ref = p?.localhost_ref.startsWith('localhost/') ? p.localhost_ref.slice('localhost/'.length) : p?.localhost_ref ?? '';
  if (type !== SecurityProfile_ProfileType.Localhost && ref) throw new InvalidArgument('apparmor.localhost_ref must only be set when profile_type is Localhost');
  switch (type) {
    case SecurityProfile_ProfileType.Unconfined:
      return undefined;
    case SecurityProfile_ProfileType.RuntimeDefault:
      return input.lsm.apparmor && !privileged ? APPARMOR_DEFAULT_PROFILE : undefined;
    case SecurityProfile_ProfileType.Localhost:
      if (!ref) throw new InvalidArgument('apparmor: a Localhost profile needs localhost_ref');
      if (!input.lsm.apparmor) throw new FailedPrecondition(`AppArmor profile "${ref}" was requested, but AppArmor is not enabled on this host`);
      if (!input.appArmorProfilesLoaded?.has(ref))
        throw new FailedPrecondition(`AppArmor profile "${ref}" is not loaded on this host (not in /sys/kernel/security/apparmor/profiles)`);
      return ref;
    default:
      throw new InvalidArgument(`apparmor.profile_type ${String(p?.profile_type)} is not RuntimeDefault, Unconfined or Localhost`);
  }
}

const hasSelinuxOptions = (o: SELinuxOption | null | undefined): o is SELinuxOption => !!o && !!(o.user || o.role || o.type || o.level);

/**
 * An MCS level of two categories from the pod's id, so pods that ask for no level are
 * kept apart by MCS as go-selinux's per-pod reservation keeps them (derived rather
 * than reserved, so nothing has to be recorded; two pods may draw the same pair).
 */
export function podMcsLevel(podId: string): string {
  let h = 2166136261;
  for (const ch of podId) h = Math.imul(h ^ ch.charCodeAt(0), 16777619) >>> 0;
  const a = h % 1024;
  let b = (h >>> 10) % 1023;
  if (b >= a) b++;
  return `s0:c${Math.min(a, b)},c${Math.max(a, b)}`;
}

/**
 * Process and mount labels where SELinux enforces and the container (or its pod) asks
 * for SELinux options; each missing part comes from the host's container contexts
 * (lxc_contexts), the level from the container, else the pod, else podMcsLevel. As
 * go-selinux's InitLabels does for containerd and CRI-O, user and level apply to the
 * mount label too. Privileged containers are left unlabelled, as containerd leaves them.
 * Without SELinux the options are ignored, as both do (go-selinux gives no labels).
 */
function selinuxFor(input: ContainerSpecInput, sc: LinuxContainerSecurityContext | null, privileged: boolean): { processLabel: string; mountLabel: string } | undefined {
  const selinux = input.lsm.selinux;
  const podOptions = input.sandboxConfig.linux?.security_context?.selinux_options;
  const o = hasSelinuxOptions(sc?.selinux_options) ? sc!.selinux_options! : podOptions;
  if (!selinux || privileged || !hasSelinuxOptions(o)) return undefined;
  const level = o.level || podOptions?.level || podMcsLevel(input.pod.id);
  const user = o.user || selinux.process.user;
  return {
    processLabel: formatSelinuxContext({ user, role: o.role || selinux.process.role, type: o.type || selinux.process.type, level }),
    mountLabel: formatSelinuxContext({ ...selinux.file, user: o.user || selinux.file.user, level }),
  };
}

/** The OCI runtime spec for one container of a pod. */
export function buildContainerSpec(input: ContainerSpecInput): Spec {
  const { config, sandboxConfig, pod, image } = input;
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(input.containerId)) throw new InvalidArgument(`container id "${input.containerId}" is not a valid id`);
  if (!path.isAbsolute(input.rootfsPath)) throw new InvalidArgument(`rootfs "${input.rootfsPath}" must be an absolute path`);
  if (!pod.cgroupParent.startsWith('/') || pod.cgroupParent.includes(':')) throw new InvalidArgument(`cgroup parent "${pod.cgroupParent}" must be an absolute cgroupfs path`);
  const sc = config.linux?.security_context ?? null;
  const privileged = !!sc?.privileged;
  if (privileged && !sandboxConfig.linux?.security_context?.privileged)
    throw new InvalidArgument('security_context.privileged: a privileged container needs a privileged pod sandbox');

  // A pod without a hostname gets the node's, as containerd gives it.
  const hostname = sandboxConfig.hostname || (input.hostHostname ?? os.hostname());
  const capabilities = capabilitySets(sc, privileged, input.hostCapabilities ?? ALL_CAPABILITIES);
  const { namespaces, ipc } = namespacesFor(input, sc);
  const userns = namespaces.some((n) => n.type === 'user');
  const { mounts, rootfsPropagation } = mountsFor(input, sc, privileged, ipc);
  const { devices, rules, binds } = devicesFor(input, privileged, userns);

  const resources: LinuxResources = { devices: rules };
  let oomScoreAdj: number | undefined;
  const criResources = config.linux?.resources ?? null;
  if (criResources) {
    // The same mapping UpdateContainerResources uses, so create and update agree.
    const mapped = ociResources(criResources, input.restrictOomScoreAdj ?? -1000);
    delete mapped.oomScoreAdj;
    Object.assign(resources, mapped);
    // containerd sets oom_score_adj whenever resources are given, 0 included.
    oomScoreAdj = Math.max(criResources.oom_score_adj, input.restrictOomScoreAdj ?? -1000);
  }
  // CRI has no pids field: a container's own limit can only come as unified pids.max, which
  // wins. Per container, as CRI-O's pids_limit was: kubelet's podPidsLimit is the pod's.
  if (input.defaultPidsLimit && !resources.unified?.['pids.max']) resources.pids = { limit: input.defaultPidsLimit };

  const spec: Spec = {
    ociVersion: '1.1.0',
    process: {
      terminal: config.tty,
      user: processUser(sc, image, input.passwd ?? { users: [], groups: [] }),
      args: processArgs(config, image),
      env: processEnv(image.env ?? [], config.envs, hostname),
      cwd: processCwd(config, image),
      capabilities,
      noNewPrivileges: !!sc?.no_new_privs,
      ...(oomScoreAdj !== undefined ? { oomScoreAdj } : {}),
    },
    root: { path: input.rootfsPath, ...(sc?.readonly_rootfs ? { readonly: true } : {}) },
    // Host-network pods use the host's UTS namespace, whose name is not ours to set.
    ...(pod.hostNetwork ? {} : { hostname }),
    // Device binds last: under the /dev the mounts make.
    mounts: [...mounts.filter((m) => !binds.some((b) => b.destination === m.destination)), ...binds],
    annotations: {
      'io.kubernetes.cri.container-type': 'container',
      'io.kubernetes.cri.container-name': config.metadata?.name ?? '',
      'io.kubernetes.cri.sandbox-id': pod.id,
      'io.kubernetes.cri.sandbox-name': sandboxConfig.metadata?.name ?? '',
      'io.kubernetes.cri.sandbox-namespace': sandboxConfig.metadata?.namespace ?? '',
      'io.kubernetes.cri.sandbox-uid': sandboxConfig.metadata?.uid ?? '',
      'io.kubernetes.cri.image-name': input.imageName ?? config.image?.image ?? '',
    },
    linux: {
      namespaces,
      devices,
      cgroupsPath: path.posix.join(pod.cgroupParent, input.containerId),
      resources,
      maskedPaths: pathList(sc?.masked_paths ?? [], DEFAULT_MASKED_PATHS, privileged, 'masked_paths'),
      readonlyPaths: pathList(sc?.readonly_paths ?? [], DEFAULT_READONLY_PATHS, privileged, 'readonly_paths'),
      ...(rootfsPropagation ? { rootfsPropagation } : {}),
    },
  };
  if (pod.userNamespace) {
    spec.linux.uidMappings = pod.userNamespace.uidMappings.map((m) => ({ ...m }));
    spec.linux.gidMappings = pod.userNamespace.gidMappings.map((m) => ({ ...m }));
  }

  // Privileged containers run without seccomp (containerd's WithPrivileged).
  if (!privileged) {
    const choice = seccompChoice(sc?.seccomp ?? null, sc?.seccomp_profile_path ?? '', input.seccompProfileRoot);
    if (choice.kind === 'runtime-default') spec.linux.seccomp = runtimeDefaultProfile(capabilities.bounding, input.arch);
    else if (choice.kind === 'localhost') {
      if (!input.loadLocalhostProfile) throw new Internal(`seccomp profile ${choice.path}: no loadLocalhostProfile given`);
      spec.linux.seccomp = parseLocalhostProfile(input.loadLocalhostProfile(choice.path), choice.path, capabilities.bounding, input.arch);
    }
  }
  const apparmor = apparmorFor(input, sc, privileged);
  if (apparmor) spec.process.apparmorProfile = apparmor;
  const selinux = selinuxFor(input, sc, privileged);
  if (selinux) {
    spec.process.selinuxLabel = selinux.processLabel;
    spec.linux.mountLabel = selinux.mountLabel;
  }
  return spec;
}
