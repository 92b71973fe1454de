// The host's mandatory access control, as skiffd sees it: whether AppArmor and SELinux
// enforce here, SELinux's default container contexts, which AppArmor profiles the
// kernel holds, and skiff's RuntimeDefault AppArmor profile, loaded when missing.
// Everything read from the host goes through LsmHost, so tests can be any host.
import { execFile } from 'child_process';
import { promises as fsp } from 'fs';
import * as path from 'path';
import { FailedPrecondition } from '../errors';

/** The name RuntimeDefault maps to where AppArmor is enabled (containerd's is
 * "cri-containerd.apparmor.d", CRI-O's "crio-default"). */
export const APPARMOR_DEFAULT_PROFILE = 'skiff-default';

/**
 * skiff's RuntimeDefault profile. A container may use files, the network and the
 * capabilities its bounding set leaves it, signal and trace its own kind; it may not
 * mount (the runtime made every mount), pivot, write kernel knobs under /proc/sys (but
 * the network namespace's own), trigger sysrq, read kernel memory, or write sysfs.
 * No includes: the host's abstractions differ between distributions.
 */
export const APPARMOR_DEFAULT_PROFILE_TEXT = `# skiff's RuntimeDefault AppArmor profile, loaded by skiffd (apparmor_parser -r).
profile ${APPARMOR_DEFAULT_PROFILE} flags=(attach_disconnected,mediate_deleted) {
  file,
  network,
  capability,
  umount,

  signal (send, receive) peer=${APPARMOR_DEFAULT_PROFILE},
  signal (receive) peer=unconfined,
  ptrace (trace, read, tracedby, readby) peer=${APPARMOR_DEFAULT_PROFILE},

  deny mount,
  deny remount,
  deny pivot_root,

  deny /proc/kcore rwklx,
  deny /proc/kmem rwklx,
  deny /proc/mem rwklx,
  deny /proc/sysrq-trigger rwklx,
  deny /proc/acpi/** rwklx,
  deny /proc/sys/[^n]** wklx,

  deny /sys/** wklx,
  deny /sys/firmware/** rwklx,
  deny /sys/kernel/security/** rwklx,
  deny /sys/kernel/debug/** rwklx,
}
`;

/** An SELinux context "user:role:type:level" (the level may hold colons: s0:c1,c2). */
export interface SelinuxContext {
  user: string;
  role: string;
  type: string;
  level: string;
}

export interface HostLsm {
  /** AppArmor enforces here: the module is enabled and securityfs shows it. */
  apparmor: boolean;
  /** SELinux is on (selinuxfs mounted, with enforce), with the host's default container
   * contexts for processes and their files; null when it is off. */
  selinux: { process: SelinuxContext; file: SelinuxContext } | null;
}

export const NO_LSM: HostLsm = { apparmor: false, selinux: null };

/** What skiffd reads and runs on the host for its LSMs; tests pass a fake. */
export interface LsmHost {
  /** A file's text, or null when it cannot be read. */
  readFile(file: string): Promise<string | null>;
  exists(file: string): Promise<boolean>;
  /** Run a program (never through a shell); rejects with its stderr when it fails. */
  run(file: string, args: string[]): Promise<void>;
  writeFile(file: string, text: string): Promise<void>;
}

export const realLsmHost: LsmHost = {
  readFile: (file) => fsp.readFile(file, 'utf8').catch(() => null),
  exists: (file) => fsp.access(file).then(() => true, () => false),
  run: (file, args) =>
    new Promise((resolve, reject) =>
      execFile(file, args, { timeout: 60_000 }, (err, _stdout, stderr) => (err ? reject(new Error(`${file} ${args.join(' ')}: ${stderr.trim() || err.message}`)) : resolve())),
    ),
  writeFile: async (file, text) => {
    await fsp.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    await fsp.writeFile(file, text, { mode: 0o600 });
  },
};

const APPARMOR_ENABLED = '/sys/module/apparmor/parameters/enabled';
const APPARMOR_FS = '/sys/kernel/security/apparmor';
const APPARMOR_PROFILES = `${APPARMOR_FS}/profiles`;
const SELINUX_ENFORCE = '/sys/fs/selinux/enforce';

/** "user:role:type:level..." -> its parts; null when it has fewer than four. */
export function parseSelinuxContext(s: string): SelinuxContext | null {
  const parts = s.trim().split(':');
  if (parts.length < 4 || parts.slice(0, 3).some((p) => !p)) return null;
  return { user: parts[0], role: parts[1], type: parts[2], level: parts.slice(3).join(':') };
}

export const formatSelinuxContext = (c: SelinuxContext): string => `${c.user}:${c.role}:${c.type}:${c.level}`;

// Where the policy names none (and as go-selinux falls back): container-selinux's types.
const DEFAULT_PROCESS_CONTEXT: SelinuxContext = { user: 'system_u', role: 'system_r', type: 'container_t', level: 's0' };
const DEFAULT_FILE_CONTEXT: SelinuxContext = { user: 'system_u', role: 'object_r', type: 'container_file_t', level: 's0' };

/** The policy's container contexts, from /etc/selinux/<SELINUXTYPE>/contexts/lxc_contexts
 * (`process = "..."`, `file = "..."`), as go-selinux reads them for containerd and CRI-O. */
async function selinuxContainerContexts(host: LsmHost): Promise<{ process: SelinuxContext; file: SelinuxContext }> {
  const config = (await host.readFile('/etc/selinux/config')) ?? '';
  const policy = /^\s*SELINUXTYPE\s*=\s*(\S+)\s*$/m.exec(config)?.[1] ?? 'targeted';
  const text = (await host.readFile(`/etc/selinux/${policy}/contexts/lxc_contexts`)) ?? '';
  const key = (k: string) => {
    const v = new RegExp(`^\\s*${k}\\s*=\\s*"?([^"\\n]+)"?\\s*$`, 'm').exec(text)?.[1];
    return v ? parseSelinuxContext(v) : null;
  };
  return { process: key('process') ?? DEFAULT_PROCESS_CONTEXT, file: key('file') ?? DEFAULT_FILE_CONTEXT };
}

/** Which LSMs enforce on this host; read once at start-up. */
export async function detectHostLsm(host: LsmHost = realLsmHost): Promise<HostLsm> {
  const apparmor = (await host.readFile(APPARMOR_ENABLED))?.trim() === 'Y' && (await host.exists(APPARMOR_FS));
  const selinux = (await host.exists(SELINUX_ENFORCE)) ? await selinuxContainerContexts(host) : null;
  return { apparmor, selinux };
}

/** The AppArmor profiles the kernel holds (lines "name (mode)"), and skiff's default. */
export class AppArmorProfiles {
  private loading: Promise<void> | null = null;

  constructor(private readonly opts: { stateDir: string; host?: LsmHost; parser?: string }) {}

  private get host(): LsmHost {
    return this.opts.host ?? realLsmHost;
  }

  async loaded(): Promise<Set<string>> {
    const text = (await this.host.readFile(APPARMOR_PROFILES)) ?? '';
    return new Set(text.split('\n').map((l) => /^(.+) \([^()]*\)$/.exec(l.trim())?.[1]).filter((n): n is string => !!n));
  }

  /** Load skiff-default unless the kernel holds it (once at a time; a profile removed
   * since, by an operator's apparmor_parser -R, is loaded again on the next need). */
  async ensureDefault(): Promise<void> {
    if ((await this.loaded()).has(APPARMOR_DEFAULT_PROFILE)) return;
    this.loading ??= this.load().finally(() => (this.loading = null));
    return this.loading;
  }

  private async load(): Promise<void> {
    const file = path.join(this.opts.stateDir, 'apparmor', APPARMOR_DEFAULT_PROFILE);
    await this.host.writeFile(file, APPARMOR_DEFAULT_PROFILE_TEXT);
    try {
      await this.host.run(this.opts.parser ?? 'apparmor_parser', ['-r', file]);
    } catch (e) {
      throw new FailedPrecondition(`AppArmor profile "${APPARMOR_DEFAULT_PROFILE}" (RuntimeDefault) could not be loaded: ${(e as Error).message}`);
    }
  }
}
