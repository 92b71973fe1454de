import assert from 'node:assert/strict';
import { FailedPrecondition, Internal, InvalidArgument } from '../errors';
import { MountPropagation, NamespaceMode, SecurityProfile_ProfileType, SupplementalGroupsPolicy } from '../cri/gen/cri';
import type { ContainerConfig, LinuxContainerResources, LinuxContainerSecurityContext, Mount as CriMount, NamespaceOption, PodSandboxConfig, SELinuxOption } from '../cri/gen/cri';
import type { ImageConfigSummary } from '../image/image_service';
import type { LinuxDevice, Mount, Spec } from '../oci/runtime_spec';
import {
  ALL_CAPABILITIES, buildContainerSpec, capabilitiesFromMask, ContainerSpecInput, DEFAULT_CAPABILITIES, DEFAULT_MASKED_PATHS, DEFAULT_PATH_ENV,
  DEFAULT_READONLY_PATHS,
} from './spec';
import { parseGroup, parsePasswd } from './user';
import { APPARMOR_DEFAULT_PROFILE, HostLsm, NO_LSM, parseSelinuxContext } from './lsm';

// ---- fixtures: CRI messages as the decoder gives them (every scalar and list present) ----

function securityContext(over: Partial<LinuxContainerSecurityContext> = {}): LinuxContainerSecurityContext {
  return {
    capabilities: null, privileged: false, namespace_options: null, selinux_options: null, run_as_user: null, run_as_group: null,
    run_as_username: '', readonly_rootfs: false, supplemental_groups: [], supplemental_groups_policy: SupplementalGroupsPolicy.Merge,
    no_new_privs: false, masked_paths: [], readonly_paths: [], seccomp: null, apparmor: null, apparmor_profile: '', seccomp_profile_path: '',
    ...over,
  };
}

function nsOptions(over: Partial<NamespaceOption> = {}): NamespaceOption {
  return { network: NamespaceMode.POD, pid: NamespaceMode.CONTAINER, ipc: NamespaceMode.POD, target_id: '', userns_options: null, ...over };
}

function resources(over: Partial<LinuxContainerResources> = {}): LinuxContainerResources {
  return {
    cpu_period: 0, cpu_quota: 0, cpu_shares: 0, memory_limit_in_bytes: 0, oom_score_adj: 0, cpuset_cpus: '', cpuset_mems: '',
    hugepage_limits: [], unified: {}, memory_swap_limit_in_bytes: 0, ...over,
  };
}

function criMount(over: Partial<CriMount>): CriMount {
  return {
    container_path: '/data', host_path: '/srv/data', readonly: false, selinux_relabel: false, propagation: MountPropagation.PROPAGATION_PRIVATE,
    uidMappings: [], gidMappings: [], recursive_read_only: false, image: null, image_sub_path: '', ...over,
  };
}

function containerConfig(over: Partial<ContainerConfig> = {}, sc?: Partial<LinuxContainerSecurityContext>): ContainerConfig {
  return {
    metadata: { name: 'app', attempt: 0 },
    image: { image: 'busybox:latest', annotations: {}, user_specified_image: '', runtime_handler: '', image_ref: '' },
    command: [], args: [], working_dir: '', envs: [], mounts: [], devices: [], labels: {}, annotations: {}, log_path: '',
    stdin: false, stdin_once: false, tty: false,
    linux: sc ? { resources: null, security_context: securityContext(sc) } : null,
    windows: null, CDI_devices: [], stop_signal: 0,
    ...over,
  };
}

function sandboxConfig(podSc: { privileged?: boolean; pid?: NamespaceMode; ipc?: NamespaceMode; network?: NamespaceMode; selinux_options?: SELinuxOption } = {}): PodSandboxConfig {
  return {
    metadata: { name: 'web-0', uid: 'uid-1', namespace: 'default', attempt: 0 },
    hostname: 'web-0', log_directory: '', dns_config: null, port_mappings: [], labels: {}, annotations: {},
    linux: {
      cgroup_parent: '/kubepods/pod1', sysctls: {}, overhead: null, resources: null,
      security_context: {
        namespace_options: nsOptions({ pid: podSc.pid ?? NamespaceMode.CONTAINER, ipc: podSc.ipc ?? NamespaceMode.POD, network: podSc.network ?? NamespaceMode.POD }),
        selinux_options: podSc.selinux_options ?? null, run_as_user: null, run_as_group: null, readonly_rootfs: false, supplemental_groups: [],
        supplemental_groups_policy: SupplementalGroupsPolicy.Merge, privileged: !!podSc.privileged, seccomp: null, apparmor: null, seccomp_profile_path: '',
      },
    },
    windows: null,
  };
}

const IMAGE: ImageConfigSummary = { entrypoint: ['/bin/ep'], cmd: ['serve'], env: ['PATH=/image/bin', 'LANG=C'], workingDir: '/srv', user: '' };
const PASSWD = {
  users: parsePasswd('root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\nother:x:1001:1001::/:/bin/sh\n'),
  groups: parseGroup('app:x:1000:app\nstaff:x:50:app,other\nvideo:x:44:app\nwheel:x:10:root\n'),
};
const ID = 'c'.repeat(64);

function input(over: Partial<ContainerSpecInput> = {}): ContainerSpecInput {
  return {
    containerId: ID,
    config: containerConfig(),
    sandboxConfig: sandboxConfig(),
    image: IMAGE,
    rootfsPath: `/run/skiff/containers/${ID}/rootfs`,
    passwd: PASSWD,
    pod: {
      id: 'p'.repeat(64),
      namespaces: { net: '/proc/42/ns/net', ipc: '/proc/42/ns/ipc', uts: '/proc/42/ns/uts' },
      hostNetwork: false,
      hostsPath: '/run/skiff/pods/p/hosts',
      resolvConfPath: '/run/skiff/pods/p/resolv.conf',
      hostnamePath: '/run/skiff/pods/p/hostname',
      shmPath: '/run/skiff/pods/p/shm',
      cgroupParent: '/kubepods/pod1',
    },
    lsm: NO_LSM,
    hostHostname: 'node-1',
    arch: 'x64',
    ...over,
  };
}

const build = (over: Partial<ContainerSpecInput> = {}) => buildContainerSpec(input(over));
const withSc = (sc: Partial<LinuxContainerSecurityContext>, over: Partial<ContainerConfig> = {}, rest: Partial<ContainerSpecInput> = {}) =>
  build({ config: containerConfig(over, sc), ...rest });
const mountAt = (s: Spec, dest: string): Mount | undefined => s.mounts.find((m) => m.destination === dest);
const is = (cls: new (...a: never[]) => Error, re: RegExp) => (e: unknown) => e instanceof cls && re.test((e as Error).message);

// ---- tests ----

describe('container spec: process', () => {
  const argsOf = (image: ImageConfigSummary, command: string[], args: string[]) => build({ image, config: containerConfig({ command, args }) }).process.args;

  it('merges command/args with Entrypoint/Cmd as containerd does', () => {
    const img = { entrypoint: ['/ep', '-x'], cmd: ['c1', 'c2'] };
    assert.deepEqual(argsOf(img, [], []), ['/ep', '-x', 'c1', 'c2'], 'image only');
    assert.deepEqual(argsOf(img, [], ['a1']), ['/ep', '-x', 'a1'], 'args replace Cmd only');
    assert.deepEqual(argsOf(img, ['/cmd'], []), ['/cmd'], 'command replaces Entrypoint and drops Cmd');
    assert.deepEqual(argsOf(img, ['/cmd'], ['a1']), ['/cmd', 'a1']);
    assert.deepEqual(argsOf({ cmd: ['sh'] }, [], []), ['sh'], 'Cmd without Entrypoint');
    assert.deepEqual(argsOf({ cmd: ['sh'] }, [], ['top']), ['top']);
    assert.deepEqual(argsOf({ entrypoint: [''], cmd: ['c1'] }, [], []), ['c1'], 'ENTRYPOINT [""] resets the entrypoint');
    assert.deepEqual(argsOf({ entrypoint: ['/ep'] }, [], []), ['/ep']);
    assert.throws(() => argsOf({}, [], []), is(InvalidArgument, /no command specified/));
    assert.throws(() => argsOf({}, [''], []), is(InvalidArgument, /empty string/));
  });

  it('builds Env: PATH default, HOSTNAME, image env, CRI envs overriding by key', () => {
    const env = (image: string[], cri: [string, string][]) =>
      build({ image: { cmd: ['x'], env: image }, config: containerConfig({ envs: cri.map(([key, value]) => ({ key, value: Buffer.from(value) })) }) }).process.env;
    assert.deepEqual(env([], []), [DEFAULT_PATH_ENV, 'HOSTNAME=web-0']);
    assert.deepEqual(env(['PATH=/img', 'A=1', 'B=2'], [['A', '3'], ['C', 'x=y']]), ['PATH=/img', 'HOSTNAME=web-0', 'A=3', 'B=2', 'C=x=y']);
    assert.deepEqual(env(['A=1', 'A'], [['HOSTNAME', 'mine']]), [DEFAULT_PATH_ENV, 'HOSTNAME=mine'], 'an entry without "=" unsets');
    assert.throws(() => env([], [['', 'v']]), is(InvalidArgument, /envs\[0\].key/));
    assert.throws(() => env([], [['A=B', 'v']]), is(InvalidArgument, /envs\[0\].key "A=B"/));
  });

  it('sets cwd from working_dir, else the image, else /', () => {
    assert.equal(build({ config: containerConfig({ working_dir: '/work/' }) }).process.cwd, '/work/');
    assert.equal(build({ image: { cmd: ['x'], workingDir: 'app' } }).process.cwd, '/app');
    assert.equal(build().process.cwd, '/srv');
    assert.equal(build({ image: { cmd: ['x'] } }).process.cwd, '/');
    assert.throws(() => build({ config: containerConfig({ working_dir: 'rel' }) }), is(InvalidArgument, /working_dir "rel" must be an absolute path/));
  });

  it('takes terminal from tty and no_new_privs, with no rlimits', () => {
    const s = withSc({ no_new_privs: true }, { tty: true });
    assert.equal(s.process.terminal, true);
    assert.equal(s.process.noNewPrivileges, true);
    assert.equal(s.process.rlimits, undefined);
    assert.equal(build().process.noNewPrivileges, false);
  });
});

describe('container spec: user', () => {
  const userOf = (imageUser: string, sc?: Partial<LinuxContainerSecurityContext>) =>
    build({ image: { cmd: ['x'], user: imageUser }, config: containerConfig({}, sc) }).process.user;

  it("resolves the image's USER by name, uid and user:group", () => {
    assert.deepEqual(userOf(''), { uid: 0, gid: 0, additionalGids: [0, 10] });
    assert.deepEqual(userOf('app'), { uid: 1000, gid: 1000, additionalGids: [1000, 50, 44] });
    assert.deepEqual(userOf('1000'), { uid: 1000, gid: 1000, additionalGids: [1000, 50, 44] });
    assert.deepEqual(userOf('app:staff'), { uid: 1000, gid: 50, additionalGids: [50, 44] });
    assert.deepEqual(userOf('1234:4321'), { uid: 1234, gid: 4321, additionalGids: [4321] });
  });

  it('lets run_as_user / run_as_username / run_as_group win over the image', () => {
    assert.deepEqual(userOf('app', { run_as_user: { value: 1001 } }), { uid: 1001, gid: 1001, additionalGids: [1001, 50] });
    assert.deepEqual(userOf('app', { run_as_username: 'other', run_as_user: { value: 5 } }), { uid: 1001, gid: 1001, additionalGids: [1001, 50] });
    assert.deepEqual(userOf('app', { run_as_user: { value: 0 }, run_as_group: { value: 7 } }), { uid: 0, gid: 7, additionalGids: [7, 10] });
    assert.deepEqual(userOf('', { run_as_user: { value: 1000 }, supplemental_groups: [5000, 50] }), { uid: 1000, gid: 1000, additionalGids: [1000, 50, 44, 5000] });
    assert.deepEqual(
      userOf('app', { supplemental_groups: [5000], supplemental_groups_policy: SupplementalGroupsPolicy.Strict }),
      { uid: 1000, gid: 1000, additionalGids: [1000, 5000] },
      'Strict: no groups from /etc/group',
    );
  });

  it('refuses unknown names, a group without a user, and ids above 2^31-1', () => {
    assert.throws(() => userOf('ghost'), is(InvalidArgument, /user "ghost" not found/));
    assert.throws(() => userOf('', { run_as_username: 'ghost' }), is(InvalidArgument, /user "ghost" not found/));
    assert.throws(() => userOf('app', { run_as_group: { value: 5 } }), is(InvalidArgument, /run_as_group 5 is set without run_as_user/));
    assert.throws(() => userOf('', { run_as_user: { value: 2 ** 31 } }), is(InvalidArgument, /run_as_user 2147483648 is out of range/));
    assert.throws(() => userOf('', { run_as_user: { value: 2 ** 32 } }), is(InvalidArgument, /out of range/));
    assert.throws(() => userOf('', { run_as_user: { value: -1 } }), is(InvalidArgument, /run_as_user -1 is out of range/));
    assert.throws(() => userOf('', { run_as_user: { value: 0 }, run_as_group: { value: 2 ** 31 } }), is(InvalidArgument, /run_as_group/));
    assert.throws(() => userOf('4294967296'), is(InvalidArgument, /uid 4294967296 is out of range/));
    assert.throws(() => userOf('', { supplemental_groups: [2 ** 31] }), is(InvalidArgument, /supplemental_groups\[0\]/));
  });

  it('works without a passwd db for numeric users', () => {
    const s = build({ passwd: undefined, image: { cmd: ['x'], user: '1000' } });
    assert.deepEqual(s.process.user, { uid: 1000, gid: 0, additionalGids: [0] });
  });
});

describe('container spec: capabilities and privileged', () => {
  const capsOf = (add: string[], drop: string[], ambient: string[] = []) =>
    withSc({ capabilities: { add_capabilities: add, drop_capabilities: drop, add_ambient_capabilities: ambient } }).process.capabilities!;

  it("gives containerd's default set, none inheritable or ambient", () => {
    const c = build().process.capabilities!;
    assert.deepEqual(c.bounding, [...DEFAULT_CAPABILITIES]);
    assert.deepEqual(c.effective, c.bounding);
    assert.deepEqual(c.permitted, c.bounding);
    assert.deepEqual(c.inheritable, []);
    assert.deepEqual(c.ambient, []);
    assert.equal(DEFAULT_CAPABILITIES.length, 14);
  });

  it('adds and drops by name with or without CAP_, and ALL', () => {
    assert.deepEqual(capsOf(['NET_ADMIN', 'cap_sys_time'], ['MKNOD', 'CAP_KILL']).bounding, [
      ...DEFAULT_CAPABILITIES.filter((c) => c !== 'CAP_MKNOD' && c !== 'CAP_KILL'), 'CAP_NET_ADMIN', 'CAP_SYS_TIME',
    ]);
    assert.deepEqual(capsOf(['NET_ADMIN'], ['ALL']).bounding, ['CAP_NET_ADMIN']);
    assert.deepEqual(capsOf(['ALL'], ['CHOWN']).bounding, ALL_CAPABILITIES.filter((c) => c !== 'CAP_CHOWN'));
    assert.deepEqual(capsOf([], ['all']).bounding, []);
    assert.throws(() => capsOf(['NET_WIZARD'], []), is(InvalidArgument, /add_capabilities\[0\]: unknown capability "NET_WIZARD"/));
    assert.throws(() => capsOf([], ['CAP_BOGUS']), is(InvalidArgument, /drop_capabilities\[0\]/));
  });

  it('makes ambient capabilities inheritable too, and only from the set', () => {
    const c = capsOf(['NET_BIND_SERVICE'], [], ['NET_BIND_SERVICE']);
    assert.deepEqual(c.ambient, ['CAP_NET_BIND_SERVICE']);
    assert.deepEqual(c.inheritable, ['CAP_NET_BIND_SERVICE']);
    assert.throws(() => capsOf([], [], ['SYS_ADMIN']), is(InvalidArgument, /CAP_SYS_ADMIN is not among the container's capabilities/));
  });

  it('grants only the capabilities the runtime holds for ALL and privileged', () => {
    const held = capabilitiesFromMask('000001fffeffffff');
    assert.equal(held.length, 40);
    assert.ok(!held.includes('CAP_SYS_RESOURCE') && held.includes('CAP_SYS_ADMIN') && held.includes('CAP_CHECKPOINT_RESTORE'));
    assert.deepEqual(capabilitiesFromMask('0000000000003000'), ['CAP_NET_ADMIN', 'CAP_NET_RAW']);
    assert.throws(() => capabilitiesFromMask('xyz'), is(InvalidArgument, /not hexadecimal/));
    const all = withSc({ capabilities: { add_capabilities: ['ALL'], drop_capabilities: [], add_ambient_capabilities: [] } }, {}, { hostCapabilities: held });
    assert.deepEqual(all.process.capabilities!.bounding, held);
    const priv = withSc({ privileged: true }, {}, { hostCapabilities: held, sandboxConfig: sandboxConfig({ privileged: true }) });
    assert.deepEqual(priv.process.capabilities!.permitted, held);
  });

  it('refuses a privileged container in an unprivileged pod', () => {
    assert.throws(() => withSc({ privileged: true }), is(InvalidArgument, /needs a privileged pod sandbox/));
  });

  it('gives a privileged container everything: caps, host devices, rw sysfs/cgroup, no masks, no seccomp', () => {
    const hostDevices: LinuxDevice[] = [{ path: '/dev/sda', type: 'b', major: 8, minor: 0, fileMode: 0o660, uid: 0, gid: 6 }];
    const s = withSc(
      { privileged: true, capabilities: { add_capabilities: [], drop_capabilities: ['ALL'], add_ambient_capabilities: [] }, seccomp: { profile_type: SecurityProfile_ProfileType.RuntimeDefault, localhost_ref: '' } },
      {},
      { sandboxConfig: sandboxConfig({ privileged: true }), hostDevices },
    );
    assert.deepEqual(s.process.capabilities!.bounding, [...ALL_CAPABILITIES], 'drops are ignored when privileged');
    assert.deepEqual(s.linux.devices, hostDevices);
    assert.deepEqual(s.linux.resources!.devices, [{ allow: true, access: 'rwm' }]);
    assert.deepEqual(s.linux.maskedPaths, []);
    assert.deepEqual(s.linux.readonlyPaths, []);
    assert.deepEqual(mountAt(s, '/sys')!.options, ['nosuid', 'noexec', 'nodev', 'rw']);
    assert.deepEqual(mountAt(s, '/sys/fs/cgroup')!.options, ['nosuid', 'noexec', 'nodev', 'relatime', 'rw']);
    assert.equal(s.linux.seccomp, undefined);
  });

  it("uses containerd's masked and read-only paths unless the CRI gives lists", () => {
    const s = build();
    assert.deepEqual(s.linux.maskedPaths, [...DEFAULT_MASKED_PATHS]);
    assert.ok(s.linux.maskedPaths!.includes('/proc/kcore') && s.linux.maskedPaths!.includes('/sys/firmware'));
    assert.deepEqual(s.linux.readonlyPaths, [...DEFAULT_READONLY_PATHS]);
    assert.deepEqual(mountAt(s, '/sys')!.options, ['nosuid', 'noexec', 'nodev', 'ro']);
    const given = withSc({ masked_paths: ['/proc/kcore', '/proc/x/'], readonly_paths: ['/proc/sys'] });
    assert.deepEqual(given.linux.maskedPaths, ['/proc/kcore', '/proc/x']);
    assert.deepEqual(given.linux.readonlyPaths, ['/proc/sys']);
    assert.throws(() => withSc({ masked_paths: ['/proc/../etc'] }), is(InvalidArgument, /masked_paths\[0\]/));
  });
});

describe('container spec: mounts', () => {
  const withMounts = (mounts: CriMount[], sc?: Partial<LinuxContainerSecurityContext>) => build({ config: containerConfig({ mounts }, sc) });

  it('has the default mounts in order, then the pod files and /dev/shm', () => {
    const s = build();
    assert.deepEqual(
      s.mounts.map((m) => [m.destination, m.type, m.source]),
      [
        ['/proc', 'proc', 'proc'],
        ['/dev', 'tmpfs', 'tmpfs'],
        ['/dev/pts', 'devpts', 'devpts'],
        ['/dev/mqueue', 'mqueue', 'mqueue'],
        ['/sys', 'sysfs', 'sysfs'],
        ['/sys/fs/cgroup', 'cgroup', 'cgroup'],
        ['/etc/hostname', 'bind', '/run/skiff/pods/p/hostname'],
        ['/etc/hosts', 'bind', '/run/skiff/pods/p/hosts'],
        ['/etc/resolv.conf', 'bind', '/run/skiff/pods/p/resolv.conf'],
        ['/dev/shm', 'bind', '/run/skiff/pods/p/shm'],
      ],
    );
    assert.deepEqual(mountAt(s, '/etc/hosts')!.options, ['rbind', 'rprivate', 'rw']);
    assert.deepEqual(mountAt(s, '/dev/shm')!.options, ['rbind', 'rprivate', 'nosuid', 'nodev', 'noexec', 'rw']);
    assert.deepEqual(mountAt(s, '/sys/fs/cgroup')!.options, ['nosuid', 'noexec', 'nodev', 'relatime', 'ro']);
    assert.equal(s.linux.rootfsPropagation, undefined);
  });

  it('maps each propagation and sets the rootfs propagation it needs', () => {
    const s = withMounts([
      criMount({ container_path: '/a', host_path: '/h/a' }),
      criMount({ container_path: '/b', host_path: '/h/b', propagation: MountPropagation.PROPAGATION_HOST_TO_CONTAINER, readonly: true }),
    ]);
    assert.deepEqual(mountAt(s, '/a'), { destination: '/a', type: 'bind', source: '/h/a', options: ['rbind', 'rprivate', 'rw'] });
    assert.deepEqual(mountAt(s, '/b'), { destination: '/b', type: 'bind', source: '/h/b', options: ['rbind', 'rslave', 'ro'] });
    assert.equal(s.linux.rootfsPropagation, 'rslave');
    const shared = withMounts([
      criMount({ container_path: '/c', host_path: '/h/c', propagation: MountPropagation.PROPAGATION_BIDIRECTIONAL }),
      criMount({ container_path: '/d', host_path: '/h/d', propagation: MountPropagation.PROPAGATION_HOST_TO_CONTAINER }),
    ]);
    assert.deepEqual(mountAt(shared, '/c')!.options, ['rbind', 'rshared', 'rw']);
    assert.equal(shared.linux.rootfsPropagation, 'rshared', 'rshared is not downgraded by a later rslave');
  });

  it('makes recursive_read_only mounts rro, only when readonly and private', () => {
    const s = withMounts([criMount({ readonly: true, recursive_read_only: true })]);
    assert.deepEqual(mountAt(s, '/data')!.options, ['rbind', 'rprivate', 'rro']);
    assert.throws(() => withMounts([criMount({ recursive_read_only: true })]), is(InvalidArgument, /mounts\[0\]: recursive_read_only needs readonly/));
    assert.throws(
      () => withMounts([criMount({ readonly: true, recursive_read_only: true, propagation: MountPropagation.PROPAGATION_HOST_TO_CONTAINER })]),
      is(InvalidArgument, /recursive_read_only needs propagation PROPAGATION_PRIVATE/),
    );
  });

  it('refuses relative paths and ".." components', () => {
    assert.throws(() => withMounts([criMount({ container_path: 'data' })]), is(InvalidArgument, /mounts\[0\].container_path "data" must be an absolute path/));
    assert.throws(() => withMounts([criMount({ host_path: 'srv/data' })]), is(InvalidArgument, /mounts\[0\].host_path "srv\/data" must be an absolute path/));
    assert.throws(() => withMounts([criMount({ host_path: '/srv/../etc' })]), is(InvalidArgument, /host_path "\/srv\/..\/etc" must not contain "\.\."/));
    assert.throws(() => withMounts([criMount({ container_path: '/x/../../etc' })]), is(InvalidArgument, /container_path .* must not contain/));
    assert.throws(() => withMounts([criMount({ container_path: '' })]), is(InvalidArgument, /container_path "" must be an absolute path/));
  });

  it("makes a CRI mount with uid and gid mappings an id-mapped bind mount, and refuses bad mappings naming the field", () => {
    const kubelets = [{ container_id: 0, host_id: 310000, length: 65536 }];
    const s = withMounts([criMount({ uidMappings: kubelets, gidMappings: [{ container_id: 0, host_id: 320000, length: 65536 }] })]);
    assert.deepEqual(mountAt(s, '/data'), {
      destination: '/data', type: 'bind', source: '/srv/data', options: ['rbind', 'rprivate', 'rw'],
      uidMappings: [{ containerID: 0, hostID: 310000, size: 65536 }], gidMappings: [{ containerID: 0, hostID: 320000, size: 65536 }],
    });
    // A mount's map is the file system's: it need not hold container id 0.
    const partial = [{ container_id: 1000, host_id: 1000, length: 1 }];
    assert.deepEqual(mountAt(withMounts([criMount({ uidMappings: partial, gidMappings: partial })]), '/data')?.uidMappings, [{ containerID: 1000, hostID: 1000, size: 1 }]);
    assert.throws(() => withMounts([criMount({ uidMappings: kubelets })]), is(InvalidArgument, /^mounts\[0\]\.gidMappings: required with uidMappings$/));
    assert.throws(() => withMounts([criMount({ gidMappings: kubelets })]), is(InvalidArgument, /^mounts\[0\]\.uidMappings: required with gidMappings$/));
    const overlapping = [{ container_id: 0, host_id: 310000, length: 100 }, { container_id: 50, host_id: 400000, length: 10 }];
    assert.throws(() => withMounts([criMount({ uidMappings: overlapping, gidMappings: kubelets })]), is(InvalidArgument, /mounts\[0\]\.uidMappings: \[0\] and \[1\] overlap in their container ids/));
    const overflow = [{ container_id: 0, host_id: 2 ** 32 - 10, length: 10 }];
    assert.throws(() => withMounts([criMount({ uidMappings: kubelets, gidMappings: overflow })]), is(InvalidArgument, /mounts\[0\]\.gidMappings\[0\]: host ids \d+\+10 overflow 2\^32/));
    assert.throws(() => withMounts([criMount({ uidMappings: [{ container_id: 0, host_id: 1, length: 0 }], gidMappings: kubelets })]), is(InvalidArgument, /mounts\[0\]\.uidMappings\[0\]\.length must be at least 1/));
  });

  it('lets a CRI mount replace a pod file or a default, and a /dev mount replace all under /dev', () => {
    const s = withMounts([criMount({ container_path: '/etc/hosts', host_path: '/my/hosts' }), criMount({ container_path: '/sys/fs/cgroup', host_path: '/cg' })]);
    assert.deepEqual(s.mounts.filter((m) => m.destination === '/etc/hosts').map((m) => m.source), ['/my/hosts']);
    assert.deepEqual(s.mounts.filter((m) => m.destination === '/sys/fs/cgroup').map((m) => m.type), ['bind']);
    const dev = withMounts([criMount({ container_path: '/dev', host_path: '/dev' })]);
    assert.deepEqual(dev.mounts.filter((m) => m.destination.startsWith('/dev')).map((m) => [m.destination, m.source]), [
      ['/dev', '/dev'],
      ['/dev/shm', '/run/skiff/pods/p/shm'],
    ]);
  });

  it('sorts supplied mounts parents first', () => {
    const s = withMounts([criMount({ container_path: '/a/b/c', host_path: '/h/1' }), criMount({ container_path: '/a', host_path: '/h/2' }), criMount({ container_path: '/a/b', host_path: '/h/3' })]);
    const order = s.mounts.map((m) => m.destination).filter((d) => d.startsWith('/a'));
    assert.deepEqual(order, ['/a', '/a/b', '/a/b/c']);
  });

  it('makes the pod files read-only with a read-only rootfs', () => {
    const s = withSc({ readonly_rootfs: true });
    assert.equal(s.root.readonly, true);
    for (const f of ['/etc/hosts', '/etc/resolv.conf', '/etc/hostname']) assert.deepEqual(mountAt(s, f)!.options, ['rbind', 'rprivate', 'ro'], f);
    assert.equal(build().root.readonly, undefined);
    assert.equal(build().root.path, `/run/skiff/containers/${ID}/rootfs`);
  });

  it('gives image volumes a directory of the caller, unless a CRI mount covers them', () => {
    const image = { cmd: ['x'], volumes: ['/var/lib/data', '/cache', 'rel'] };
    const made: string[] = [];
    const s = build({
      image,
      config: containerConfig({ mounts: [criMount({ container_path: '/cache', host_path: '/h/cache' })] }),
      volumeDir: (p) => (made.push(p), `/var/lib/skiff/volumes/${ID}${p}`),
    });
    assert.deepEqual(made, ['/var/lib/data', '/rel']);
    assert.deepEqual(mountAt(s, '/var/lib/data'), { destination: '/var/lib/data', type: 'bind', source: `/var/lib/skiff/volumes/${ID}/var/lib/data`, options: ['rbind', 'rprivate', 'rw'] });
    assert.equal(mountAt(s, '/cache')!.source, '/h/cache');
    assert.equal(mountAt(build({ image }), '/var/lib/data'), undefined, 'without volumeDir the rootfs keeps them');
  });
  it('binds an image volume (KEP-4639) read-only from where the caller mounted it, and not id-mapped (an overlay cannot be) even where kubelet sends mappings', () => {
    const image = { image: 'sha256:' + 'a'.repeat(64), annotations: {}, user_specified_image: 'tools:1', runtime_handler: '', image_ref: '' };
    const mounts = [criMount({ container_path: '/tools', host_path: '', readonly: true, image }), criMount({ container_path: '/data' })];
    const source = (i: number) => (i === 0 ? '/run/skiff/containers/c/image-volumes/0/bin' : undefined);
    const s = build({ config: containerConfig({ mounts }), imageVolumeSource: source });
    assert.deepEqual(mountAt(s, '/tools'), { destination: '/tools', type: 'bind', source: '/run/skiff/containers/c/image-volumes/0/bin', options: ['rbind', 'rprivate', 'ro'] });
    assert.deepEqual(mountAt(s, '/data')?.source, '/srv/data', 'a host path mount beside it is unchanged');
    const kubelets = [{ host_id: 100000, container_id: 0, length: 65536 }];
    const mapped = build({ config: containerConfig({ mounts: mounts.map((m) => ({ ...m, uidMappings: kubelets, gidMappings: kubelets })) }), imageVolumeSource: source });
    const idmap = [{ containerID: 0, hostID: 100000, size: 65536 }];
    assert.deepEqual(mountAt(mapped, '/tools'), mountAt(s, '/tools'), 'the image volume is not id-mapped');
    assert.deepEqual(mountAt(mapped, '/data')?.uidMappings, idmap, 'a host path mount beside it is');
    assert.throws(() => build({ config: containerConfig({ mounts }) }), is(Internal, /mounts\[0\]: the image volume was not mounted/));
  });
});

describe('container spec: devices', () => {
  const statDevice = (p: string) => (p === '/dev/fuse' ? { type: 'c' as const, major: 10, minor: 229, mode: 0o20666, uid: 0, gid: 0 } : undefined);
  const withDevices = (devices: ContainerConfig['devices']) => build({ config: containerConfig({ devices }), statDevice });

  it('adds a host device with its numbers, mode and a cgroup rule of its permissions', () => {
    const s = withDevices([{ host_path: '/dev/fuse', container_path: '/dev/myfuse', permissions: 'rw' }]);
    assert.deepEqual(s.linux.devices, [{ path: '/dev/myfuse', type: 'c', major: 10, minor: 229, fileMode: 0o666, uid: 0, gid: 0 }]);
    const rules = s.linux.resources!.devices!;
    assert.deepEqual(rules[0], { allow: false, access: 'rwm' });
    assert.deepEqual(rules[rules.length - 1], { allow: true, type: 'c', major: 10, minor: 229, access: 'rw' });
    assert.ok(rules.some((r) => r.allow && r.major === 1 && r.minor === 3), '/dev/null stays allowed');
    assert.equal(withDevices([{ host_path: '/dev/fuse', container_path: '', permissions: '' }]).linux.devices![0].path, '/dev/fuse');
  });

  it('refuses non-devices, bad permissions and relative paths', () => {
    assert.throws(() => withDevices([{ host_path: '/etc/passwd', container_path: '', permissions: '' }]), is(InvalidArgument, /devices\[0\].host_path \/etc\/passwd is not a device node/));
    assert.throws(() => withDevices([{ host_path: '/dev/fuse', container_path: '', permissions: 'rwx' }]), is(InvalidArgument, /permissions "rwx"/));
    assert.throws(() => withDevices([{ host_path: 'dev/fuse', container_path: '', permissions: '' }]), is(InvalidArgument, /must be an absolute path/));
    assert.throws(
      () => build({ config: containerConfig({ devices: [{ host_path: '/dev/fuse', container_path: '', permissions: '' }] }) }),
      is(Internal, /no statDevice/),
    );
  });
});

describe('container spec: namespaces', () => {
  const nsOf = (s: Spec) => s.linux.namespaces.map((n) => (n.path ? `${n.type}=${n.path}` : n.type));
  const withNs = (o: Partial<NamespaceOption>, rest: Partial<ContainerSpecInput> = {}) => withSc({ namespace_options: nsOptions(o) }, {}, rest);

  it("joins the pod's network, IPC and UTS namespaces and gets its own PID and mount namespaces", () => {
    assert.deepEqual(nsOf(build()), ['pid', 'network=/proc/42/ns/net', 'ipc=/proc/42/ns/ipc', 'uts=/proc/42/ns/uts', 'mount']);
    assert.equal(build().hostname, 'web-0');
    assert.equal(build().linux.cgroupsPath, `/kubepods/pod1/${ID}`);
  });

  it('joins the pod PID namespace for POD and the target for TARGET', () => {
    const pod = { ...input().pod, namespaces: { ...input().pod.namespaces, pid: '/proc/42/ns/pid' } };
    assert.equal(nsOf(withNs({ pid: NamespaceMode.POD }, { pod }))[0], 'pid=/proc/42/ns/pid');
    assert.throws(() => withNs({ pid: NamespaceMode.POD }), is(InvalidArgument, /pid is POD, but the pod sandbox has no PID namespace/));
    assert.equal(nsOf(withNs({ pid: NamespaceMode.TARGET, target_id: 'abc' }, { targetPidNs: '/proc/77/ns/pid' }))[0], 'pid=/proc/77/ns/pid');
    assert.throws(() => withNs({ pid: NamespaceMode.TARGET, target_id: 'abc' }), is(InvalidArgument, /target_id "abc" names no running container/));
  });

  it('uses the host PID namespace only in a host-PID pod', () => {
    const s = withNs({ pid: NamespaceMode.NODE }, { sandboxConfig: sandboxConfig({ pid: NamespaceMode.NODE }) });
    assert.ok(!s.linux.namespaces.some((n) => n.type === 'pid'));
    assert.throws(() => withNs({ pid: NamespaceMode.NODE }), is(InvalidArgument, /pid is NODE, but the pod sandbox does not use the host PID/));
  });

  it('leaves network and UTS to the host for host-network pods, with the host name in HOSTNAME', () => {
    const pod = { ...input().pod, hostNetwork: true, namespaces: { ipc: '/proc/42/ns/ipc' } };
    const sb = sandboxConfig({ network: NamespaceMode.NODE });
    sb.hostname = '';
    const s = withNs({ network: NamespaceMode.NODE }, { pod, sandboxConfig: sb });
    assert.deepEqual(nsOf(s), ['pid', 'ipc=/proc/42/ns/ipc', 'mount']);
    assert.equal(s.hostname, undefined);
    assert.ok(s.process.env.includes('HOSTNAME=node-1'));
    assert.throws(() => withNs({ network: NamespaceMode.NODE }), is(InvalidArgument, /network is NODE, but the pod sandbox does not use the host network/));
  });

  it('handles IPC modes with the matching /dev/shm', () => {
    const hostIpcPod = { ...input().pod, namespaces: { net: '/proc/42/ns/net', uts: '/proc/42/ns/uts' }, shmPath: '' };
    const host = withNs({ ipc: NamespaceMode.NODE }, { pod: hostIpcPod });
    assert.ok(!host.linux.namespaces.some((n) => n.type === 'ipc'));
    assert.deepEqual(mountAt(host, '/dev/shm'), { destination: '/dev/shm', type: 'bind', source: '/dev/shm', options: ['rbind', 'rprivate', 'rw'] });
    assert.throws(() => withNs({ ipc: NamespaceMode.NODE }), is(InvalidArgument, /ipc is NODE, but the pod sandbox does not use the host IPC/));
    const priv = withNs({ ipc: NamespaceMode.CONTAINER });
    assert.ok(priv.linux.namespaces.some((n) => n.type === 'ipc' && !n.path));
    assert.deepEqual(mountAt(priv, '/dev/shm'), { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] });
  });

  it("joins the pod's user namespace with its id mappings", () => {
    const userNamespace = { uidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }], gidMappings: [{ containerID: 0, hostID: 200000, size: 65536 }] };
    const pod = { ...input().pod, namespaces: { ...input().pod.namespaces, user: '/proc/42/ns/user' }, userNamespace };
    const s = build({ pod, sandboxConfig: sandboxConfig({ privileged: true }), config: containerConfig({}, { privileged: true }), hostDevices: [{ path: '/dev/sda', type: 'b', major: 8, minor: 0 }] });
    assert.ok(nsOf(s).includes('user=/proc/42/ns/user'));
    assert.deepEqual(s.linux.uidMappings, userNamespace.uidMappings);
    assert.deepEqual(s.linux.gidMappings, userNamespace.gidMappings);
    assert.deepEqual(s.linux.devices, [], 'no host devices inside a user namespace');
  });

  it("binds a device from its host path in a user namespace when its container path differs (the shim binds nodes from their path)", () => {
    const userNamespace = { uidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }], gidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }] };
    const pod = { ...input().pod, namespaces: { ...input().pod.namespaces, user: '/proc/42/ns/user' }, userNamespace };
    const statDevice = (p: string) => (p === '/dev/fuse' ? { type: 'c' as const, major: 10, minor: 229, mode: 0o20666, uid: 0, gid: 0 } : undefined);
    const devices = [{ host_path: '/dev/fuse', container_path: '/dev/myfuse', permissions: 'rw' }, { host_path: '/dev/fuse', container_path: '', permissions: 'r' }];
    const s = build({ pod, config: containerConfig({ devices }), statDevice });
    assert.deepEqual(s.linux.devices, [{ path: '/dev/fuse', type: 'c', major: 10, minor: 229, fileMode: 0o666, uid: 0, gid: 0 }], 'the same path: bound by the shim');
    assert.deepEqual(s.mounts[s.mounts.length - 1], { destination: '/dev/myfuse', type: 'bind', source: '/dev/fuse', options: ['bind', 'rprivate', 'rw'] });
    assert.ok(s.mounts.findIndex((m) => m.destination === '/dev') < s.mounts.length - 1, 'after /dev');
    assert.deepEqual(s.linux.resources!.devices!.slice(-2), [{ allow: true, type: 'c', major: 10, minor: 229, access: 'rw' }, { allow: true, type: 'c', major: 10, minor: 229, access: 'r' }]);
  });

  it("id-maps the pod's files, its /dev/shm and image volumes with the pod's mappings in a user-namespaced pod", () => {
    const userNamespace = { uidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }], gidMappings: [{ containerID: 0, hostID: 200000, size: 65536 }] };
    const pod = { ...input().pod, namespaces: { ...input().pod.namespaces, user: '/proc/42/ns/user' }, userNamespace };
    const s = build({ pod, image: { ...IMAGE, volumes: ['/cache'] }, volumeDir: () => '/run/skiff/containers/c/volumes/0' });
    for (const dest of ['/etc/hosts', '/etc/resolv.conf', '/etc/hostname', '/dev/shm', '/cache']) {
      assert.deepEqual(mountAt(s, dest)?.uidMappings, userNamespace.uidMappings, dest);
      assert.deepEqual(mountAt(s, dest)?.gidMappings, userNamespace.gidMappings, dest);
    }
    const plain = build({ image: { ...IMAGE, volumes: ['/cache'] }, volumeDir: () => '/run/skiff/containers/c/volumes/0' });
    for (const dest of ['/etc/hosts', '/dev/shm', '/cache']) assert.equal(mountAt(plain, dest)?.uidMappings, undefined, dest);
  });
});

describe('container spec: resources', () => {
  const withRes = (r: Partial<LinuxContainerResources>, restrictOomScoreAdj?: number) =>
    build({ config: containerConfig({ linux: { resources: resources(r), security_context: null } }), restrictOomScoreAdj });

  it('maps CRI resources to linux.resources', () => {
    const s = withRes({
      cpu_period: 100000, cpu_quota: 50000, cpu_shares: 512, cpuset_cpus: '0-1', cpuset_mems: '0', memory_limit_in_bytes: 64 << 20,
      memory_swap_limit_in_bytes: 128 << 20, hugepage_limits: [{ page_size: '2MB', limit: 4 << 20 }], unified: { 'memory.high': '50000000' }, oom_score_adj: 500,
    });
    const { devices, ...rest } = s.linux.resources!;
    assert.ok(devices!.length > 0);
    assert.deepEqual(rest, {
      cpu: { shares: 512, quota: 50000, period: 100000, cpus: '0-1', mems: '0' },
      memory: { limit: 64 << 20, swap: 128 << 20 },
      hugepageLimits: [{ pageSize: '2MB', limit: 4 << 20 }],
      unified: { 'memory.high': '50000000' },
    });
    assert.equal(s.process.oomScoreAdj, 500);
  });

  it("raises oom_score_adj to the host's lowest instead of failing, and sets none without resources", () => {
    assert.equal(withRes({ oom_score_adj: -999 }, -500).process.oomScoreAdj, -500);
    assert.equal(withRes({ oom_score_adj: -100 }, -500).process.oomScoreAdj, -100);
    assert.equal(withRes({ oom_score_adj: 0 }).process.oomScoreAdj, 0);
    assert.equal(build().process.oomScoreAdj, undefined);
    assert.deepEqual(Object.keys(build().linux.resources!), ['devices']);
    assert.throws(() => withRes({ oom_score_adj: 1001 }), is(InvalidArgument, /oom_score_adj/));
    assert.throws(() => withRes({ cpu_shares: -1 }), is(InvalidArgument, /cpu_shares/));
  });

  it('gives cri.default_pids_limit to a container without a pids limit of its own, and leaves a unified pids.max to win', () => {
    assert.deepEqual(build({ defaultPidsLimit: 1024 }).linux.resources!.pids, { limit: 1024 });
    const withResources = build({ defaultPidsLimit: 1024, config: containerConfig({ linux: { resources: resources({ memory_limit_in_bytes: 64 << 20 }), security_context: null } }) });
    assert.deepEqual(withResources.linux.resources!.pids, { limit: 1024 }, 'other limits do not stand for a pids limit');
    const own = build({ defaultPidsLimit: 1024, config: containerConfig({ linux: { resources: resources({ unified: { 'pids.max': '50' } }), security_context: null } }) });
    assert.deepEqual([own.linux.resources!.pids, own.linux.resources!.unified], [undefined, { 'pids.max': '50' }]);
    assert.equal(build().linux.resources!.pids, undefined, 'off unless set');
    assert.equal(build({ defaultPidsLimit: 0 }).linux.resources!.pids, undefined);
  });
});

describe('container spec: seccomp, AppArmor, SELinux', () => {
  const PROFILE = JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }] });
  const sp = (profile_type: SecurityProfile_ProfileType, localhost_ref = '') => ({ profile_type, localhost_ref });

  it('has no seccomp unless asked, RuntimeDefault when asked by field or legacy path', () => {
    assert.equal(build().linux.seccomp, undefined);
    assert.equal(withSc({ seccomp: sp(SecurityProfile_ProfileType.Unconfined) }).linux.seccomp, undefined);
    const rd = withSc({ seccomp: sp(SecurityProfile_ProfileType.RuntimeDefault) }).linux.seccomp!;
    assert.equal(rd.defaultAction, 'SCMP_ACT_ERRNO');
    assert.equal(rd.defaultErrnoRet, 1);
    assert.deepEqual(rd.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
    assert.deepEqual(withSc({ seccomp_profile_path: 'runtime/default' }).linux.seccomp, rd);
    const admin = withSc({ seccomp: sp(SecurityProfile_ProfileType.RuntimeDefault), capabilities: { add_capabilities: ['SYS_ADMIN'], drop_capabilities: [], add_ambient_capabilities: [] } });
    assert.ok(admin.linux.seccomp!.syscalls!.some((s) => s.names.includes('mount') && s.action === 'SCMP_ACT_ALLOW'), 'the profile follows the capabilities');
  });

  it('loads Localhost profiles through the caller, relative ones under the profile root', () => {
    const asked: string[] = [];
    const load = (f: string) => (asked.push(f), PROFILE);
    const abs = withSc({ seccomp: sp(SecurityProfile_ProfileType.Localhost, '/etc/seccomp/p.json') }, {}, { loadLocalhostProfile: load });
    assert.deepEqual(abs.linux.seccomp, { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }] });
    withSc({ seccomp_profile_path: 'localhost/p.json' }, {}, { loadLocalhostProfile: load, seccompProfileRoot: '/var/lib/kubelet/seccomp' });
    assert.deepEqual(asked, ['/etc/seccomp/p.json', '/var/lib/kubelet/seccomp/p.json']);
    assert.throws(() => withSc({ seccomp_profile_path: 'localhost/p.json' }, {}, { loadLocalhostProfile: load }), is(InvalidArgument, /no seccomp profile root/));
    assert.throws(() => withSc({ seccomp_profile_path: 'localhost//p.json' }), is(Internal, /no loadLocalhostProfile/));
    assert.throws(() => withSc({ seccomp_profile_path: 'strict' }), is(InvalidArgument, /seccomp_profile_path "strict"/));
  });

  // The three hosts an LSM test can be: this one (neither), AppArmor's, SELinux's.
  const APPARMOR: Partial<ContainerSpecInput> = { lsm: { apparmor: true, selinux: null }, appArmorProfilesLoaded: new Set([APPARMOR_DEFAULT_PROFILE, 'my-profile']) };
  const SELINUX_HOST: HostLsm = {
    apparmor: false,
    selinux: { process: parseSelinuxContext('system_u:system_r:container_t:s0:c1022')!, file: parseSelinuxContext('system_u:object_r:container_file_t:s0')! },
  };
  const SELINUX: Partial<ContainerSpecInput> = { lsm: SELINUX_HOST };
  const privilegedPod = (rest: Partial<ContainerSpecInput>) => ({ ...rest, sandboxConfig: sandboxConfig({ privileged: true }) });

  it('without AppArmor: RuntimeDefault and Unconfined are ignored, a Localhost profile is refused naming it and why', () => {
    assert.equal(build().process.apparmorProfile, undefined);
    assert.equal(withSc({ apparmor: sp(SecurityProfile_ProfileType.RuntimeDefault) }).process.apparmorProfile, undefined);
    assert.equal(withSc({ apparmor_profile: 'runtime/default' }).process.apparmorProfile, undefined);
    assert.equal(withSc({ apparmor: sp(SecurityProfile_ProfileType.Unconfined) }).process.apparmorProfile, undefined);
    assert.throws(() => withSc({ apparmor: sp(SecurityProfile_ProfileType.Localhost, 'my-profile') }), is(FailedPrecondition, /AppArmor profile "my-profile" was requested, but AppArmor is not enabled on this host/));
    assert.throws(() => withSc({ apparmor_profile: 'localhost/my-profile' }), is(FailedPrecondition, /"my-profile"/));
  });

  it('with AppArmor: RuntimeDefault (also unset) is skiff-default, Localhost is the loaded profile, Unconfined is none', () => {
    assert.equal(build(APPARMOR).process.apparmorProfile, APPARMOR_DEFAULT_PROFILE, 'unset means RuntimeDefault');
    assert.equal(withSc({ apparmor: sp(SecurityProfile_ProfileType.RuntimeDefault) }, {}, APPARMOR).process.apparmorProfile, APPARMOR_DEFAULT_PROFILE);
    assert.equal(withSc({ apparmor_profile: 'runtime/default' }, {}, APPARMOR).process.apparmorProfile, APPARMOR_DEFAULT_PROFILE);
    assert.equal(withSc({ apparmor: sp(SecurityProfile_ProfileType.Localhost, 'localhost/my-profile') }, {}, APPARMOR).process.apparmorProfile, 'my-profile');
    assert.equal(withSc({ apparmor: sp(SecurityProfile_ProfileType.Localhost, 'my-profile') }, {}, APPARMOR).process.apparmorProfile, 'my-profile');
    assert.equal(withSc({ apparmor_profile: 'localhost/my-profile' }, {}, APPARMOR).process.apparmorProfile, 'my-profile');
    assert.equal(withSc({ apparmor_profile: 'unconfined' }, {}, APPARMOR).process.apparmorProfile, undefined);
    assert.equal(withSc({ apparmor: sp(SecurityProfile_ProfileType.Unconfined) }, {}, APPARMOR).process.apparmorProfile, undefined);
  });

  it('with AppArmor: a Localhost profile the kernel does not hold is refused, naming it', () => {
    assert.throws(() => withSc({ apparmor: sp(SecurityProfile_ProfileType.Localhost, 'absent') }, {}, APPARMOR), is(FailedPrecondition, /AppArmor profile "absent" is not loaded/));
    assert.throws(() => withSc({ apparmor: sp(SecurityProfile_ProfileType.Localhost, '') }, {}, APPARMOR), is(InvalidArgument, /needs localhost_ref/));
    assert.throws(() => withSc({ apparmor: sp(SecurityProfile_ProfileType.RuntimeDefault, 'my-profile') }, {}, APPARMOR), is(InvalidArgument, /localhost_ref must only be set/));
    assert.throws(() => withSc({ apparmor_profile: 'bogus' }, {}, APPARMOR), is(InvalidArgument, /apparmor_profile "bogus"/));
  });

  it('privileged containers run unconfined unless a Localhost profile is asked (containerd)', () => {
    assert.equal(withSc({ privileged: true }, {}, privilegedPod(APPARMOR)).process.apparmorProfile, undefined);
    assert.equal(withSc({ privileged: true, apparmor: sp(SecurityProfile_ProfileType.RuntimeDefault) }, {}, privilegedPod(APPARMOR)).process.apparmorProfile, undefined);
    assert.equal(withSc({ privileged: true, apparmor: sp(SecurityProfile_ProfileType.Localhost, 'my-profile') }, {}, privilegedPod(APPARMOR)).process.apparmorProfile, 'my-profile');
  });

  it('without SELinux: SELinux options (the EmptyDir conformance pods\' level s0) are ignored, not refused', () => {
    const s = withSc({ selinux_options: { user: '', role: '', type: '', level: 's0' } }, {}, { sandboxConfig: { ...sandboxConfig({ selinux_options: { user: '', role: '', type: '', level: 's0' } }) } });
    assert.equal(s.process.selinuxLabel, undefined);
    assert.equal(s.linux.mountLabel, undefined);
    assert.equal(withSc({ selinux_options: { user: 'u', role: 'r', type: 'spc_t', level: 's0:c1,c2' } }).process.selinuxLabel, undefined);
  });

  it('with SELinux: options become the process and mount labels, missing parts from the host\'s container contexts', () => {
    const s = withSc({ selinux_options: { user: '', role: '', type: 'spc_t', level: 's0:c1,c2' } }, {}, SELINUX);
    assert.equal(s.process.selinuxLabel, 'system_u:system_r:spc_t:s0:c1,c2');
    assert.equal(s.linux.mountLabel, 'system_u:object_r:container_file_t:s0:c1,c2');
    const full = withSc({ selinux_options: { user: 'staff_u', role: 'staff_r', type: 'my_t', level: 's0:c5,c9' } }, {}, SELINUX);
    assert.equal(full.process.selinuxLabel, 'staff_u:staff_r:my_t:s0:c5,c9');
    assert.equal(full.linux.mountLabel, 'staff_u:object_r:container_file_t:s0:c5,c9', 'user and level apply to the mount label too (go-selinux)');
  });

  it('with SELinux: the level comes from the container, else the pod, else a pair of categories from the pod id', () => {
    const podLevel = { sandboxConfig: sandboxConfig({ selinux_options: { user: '', role: '', type: '', level: 's0:c7,c8' } }) };
    assert.equal(withSc({ selinux_options: { user: '', role: '', type: 'my_t', level: '' } }, {}, { ...SELINUX, ...podLevel }).process.selinuxLabel, 'system_u:system_r:my_t:s0:c7,c8');
    assert.equal(build({ ...SELINUX, ...podLevel }).process.selinuxLabel, 'system_u:system_r:container_t:s0:c7,c8', 'the pod\'s options when the container has none');
    const derived = withSc({ selinux_options: { user: '', role: '', type: 'my_t', level: '' } }, {}, SELINUX).process.selinuxLabel!;
    assert.match(derived, /^system_u:system_r:my_t:s0:c(\d+),c(\d+)$/);
    const [, a, b] = /c(\d+),c(\d+)$/.exec(derived)!.map(Number);
    assert.ok(a < b && b < 1024, derived);
    const other = withSc({ selinux_options: { user: '', role: '', type: 'my_t', level: '' } }, {}, { ...SELINUX, pod: { ...input().pod, id: 'q'.repeat(64) } }).process.selinuxLabel;
    assert.notEqual(other, derived, 'another pod draws other categories');
  });

  it('with SELinux: nothing asked, or a privileged container, gets no label (containerd)', () => {
    assert.equal(build(SELINUX).process.selinuxLabel, undefined);
    assert.equal(build(SELINUX).linux.mountLabel, undefined);
    const priv = withSc({ privileged: true, selinux_options: { user: '', role: '', type: 'spc_t', level: 's0' } }, {}, privilegedPod(SELINUX));
    assert.equal(priv.process.selinuxLabel, undefined);
  });
});

describe('container spec: identity', () => {
  it('writes the CRI annotations containerd writes, not the CRI or image ones', () => {
    const s = build({
      image: { ...IMAGE, labels: { 'io.kubernetes.cri.container-type': 'sandbox' } },
      config: containerConfig({ annotations: { 'io.kubernetes.cri.sandbox-id': 'forged' } }),
      imageName: 'docker.io/library/busybox:latest',
    });
    assert.deepEqual(s.annotations, {
      'io.kubernetes.cri.container-type': 'container',
      'io.kubernetes.cri.container-name': 'app',
      'io.kubernetes.cri.sandbox-id': 'p'.repeat(64),
      'io.kubernetes.cri.sandbox-name': 'web-0',
      'io.kubernetes.cri.sandbox-namespace': 'default',
      'io.kubernetes.cri.sandbox-uid': 'uid-1',
      'io.kubernetes.cri.image-name': 'docker.io/library/busybox:latest',
    });
    assert.equal(build().annotations!['io.kubernetes.cri.image-name'], 'busybox:latest');
    assert.equal(build().ociVersion, '1.1.0');
  });

  it('refuses a bad container id, rootfs or cgroup parent', () => {
    assert.throws(() => build({ containerId: '../x' }), is(InvalidArgument, /container id/));
    assert.throws(() => build({ rootfsPath: 'rootfs' }), is(InvalidArgument, /rootfs "rootfs" must be an absolute path/));
    assert.throws(() => build({ pod: { ...input().pod, cgroupParent: 'system.slice:skiff:x' } }), is(InvalidArgument, /cgroup parent/));
  });

  it('holds no undefined or null fields: config.json is exactly the object', () => {
    for (const s of [build(), withSc({ seccomp: { profile_type: SecurityProfile_ProfileType.RuntimeDefault, localhost_ref: '' }, readonly_rootfs: true })]) {
      assert.ok(!JSON.stringify(s).includes('null'));
      assert.deepEqual(JSON.parse(JSON.stringify(s)), s);
    }
  });
});
