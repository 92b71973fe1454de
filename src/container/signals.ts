// Signals a container is stopped with: the CRI Signal enum and image STOPSIGNAL names
// mapped to Linux signal numbers and back, the signal in force for a container, and
// whether the kernel would drop a signal sent to a process now. The first process of a
// PID namespace gets only the signals it has a handler for (SIGKILL and SIGSTOP from an
// ancestor namespace aside): one sent while it is still a shell about to exec its real
// program (`sh -c top`) is lost, and a graceful stop would then wait out its whole
// timeout. StopContainer uses this to send the stop signal again once the program has
// installed its handler.
import { Signal } from '../cri/gen/cri';
import { InvalidArgument } from '../errors';
import { readProcFile } from '../sys/proc_file';

// Linux numbers of the classic signals on the architectures skiff runs on (x86, arm,
// and the other "generic" ones; not mips, sparc or alpha). Aliases share a number.
const CLASSIC: Readonly<Record<string, number>> = {
  SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGILL: 4, SIGTRAP: 5, SIGABRT: 6, SIGIOT: 6, SIGBUS: 7,
  SIGFPE: 8, SIGKILL: 9, SIGUSR1: 10, SIGSEGV: 11, SIGUSR2: 12, SIGPIPE: 13, SIGALRM: 14,
  SIGTERM: 15, SIGSTKFLT: 16, SIGCHLD: 17, SIGCLD: 17, SIGCONT: 18, SIGSTOP: 19, SIGTSTP: 20,
  SIGTTIN: 21, SIGTTOU: 22, SIGURG: 23, SIGXCPU: 24, SIGXFSZ: 25, SIGVTALRM: 26, SIGPROF: 27,
  SIGWINCH: 28, SIGIO: 29, SIGPOLL: 29, SIGPWR: 30, SIGSYS: 31,
};

// The real-time range. The kernel's SIGRTMIN is 32, but glibc keeps 32 and 33 for its
// threads and reports SIGRTMIN as 34; Go's moby/sys/signal (what containerd and runc
// parse "SIGRTMIN+n" with) fixes sigrtmin = 34 and sigrtmax = 64, and `kill -l` agrees.
// skiff matches them, so SIGRTMIN is 34 and SIGRTMINPLUS15 (49) sits just below
// SIGRTMAXMINUS14 (50).
export const SIGRTMIN = 34;
export const SIGRTMAX = 64;

export const SIGKILL = CLASSIC.SIGKILL;
export const SIGSTOP = CLASSIC.SIGSTOP;
export const SIGTERM = CLASSIC.SIGTERM;

/** The name a number is shown by: the first of its aliases above (SIGABRT, not SIGIOT),
 * and SIGRTMIN+n up to n = 15, SIGRTMAX-n above, as the CRI enum and `kill -l` do. */
export function signalName(n: number): string | undefined {
  if (n >= SIGRTMIN && n <= SIGRTMAX) {
    const k = n - SIGRTMIN;
    if (k === 0) return 'SIGRTMIN';
    if (n === SIGRTMAX) return 'SIGRTMAX';
    return k <= 15 ? `SIGRTMIN+${k}` : `SIGRTMAX-${SIGRTMAX - n}`;
  }
  return Object.keys(CLASSIC).find((name) => CLASSIC[name] === n);
}

/** "SIGQUIT", "QUIT", "quit", "3", "RTMIN+3", "SIGRTMAX-2" -> its number; undefined for
 * anything else (an unknown name, 0, or a number past SIGRTMAX). */
export function signalNumber(name: string): number | undefined {
  const s = name.trim().toUpperCase();
  if (/^\d+$/.test(s)) {
    const n = Number(s);
    return n >= 1 && n <= SIGRTMAX ? n : undefined;
  }
  const full = s.startsWith('SIG') ? s : `SIG${s}`;
  if (Object.hasOwn(CLASSIC, full)) return CLASSIC[full];
  const rt = /^SIGRT(MIN|MAX)(?:([+-])(\d+))?$/.exec(full);
  if (!rt) return undefined;
  const n = (rt[1] === 'MIN' ? SIGRTMIN : SIGRTMAX) + (rt[2] === '-' ? -1 : 1) * Number(rt[3] ?? 0);
  return n >= SIGRTMIN && n <= SIGRTMAX ? n : undefined;
}

/** The Linux number of a CRI Signal; undefined for RUNTIME_DEFAULT and for values the
 * enum does not have. */
export function criSignalNumber(s: Signal): number | undefined {
  const name = Signal[s] as string | undefined;
  if (name === undefined || s === Signal.RUNTIME_DEFAULT) return undefined;
  return signalNumber(name.replace('PLUS', '+').replace('MINUS', '-'));
}

/** The CRI Signal of a Linux number; RUNTIME_DEFAULT for one the enum has no name for
 * (32 and 33, which glibc reserves). */
export function criSignal(n: number): Signal {
  const name = signalName(n);
  if (!name) return Signal.RUNTIME_DEFAULT;
  return (Signal as unknown as Record<string, Signal>)[name.replace('+', 'PLUS').replace('-', 'MINUS')] ?? Signal.RUNTIME_DEFAULT;
}

/**
 * The signal StopContainer sends first, by name: the CRI config's stop_signal when set,
 * else the image's STOPSIGNAL, else SIGTERM. An image STOPSIGNAL that names no signal
 * falls back to SIGTERM (skiff always did; the image is not the caller's input). Every
 * enum value is accepted, SIGKILL and SIGSTOP included, as Kubernetes' validation
 * (KEP-4960) and containerd accept them.
 */
export function stopSignalInForce(config: Signal, imageStopSignal: string | undefined): string {
  if (config !== Signal.RUNTIME_DEFAULT) {
    const n = criSignalNumber(config);
    if (n === undefined) throw new InvalidArgument(`stop_signal: ${config} is not a CRI Signal value`);
    return signalName(n)!;
  }
  const n = imageStopSignal ? signalNumber(imageStopSignal) : undefined;
  return n === undefined ? 'SIGTERM' : signalName(n) ?? String(n);
}

/** The number of a container record's stopSignal: SIGTERM for '' (records from before
 * stop signals, of images without STOPSIGNAL) and for a name no longer understood. */
export function recordedStopSignal(stopSignal: string): number {
  return (stopSignal && signalNumber(stopSignal)) || SIGTERM;
}

/** True when `pid` is the init of its PID namespace and neither catches nor could receive
 * `signal`; false when the signal would be delivered, or the process is gone. */
export async function initDropsSignal(pid: number, signal: number): Promise<boolean> {
  let status: string;
  try {
    status = await readProcFile(`/proc/${pid}/status`);
  } catch {
    return false;
  }
  return parseInitDropsSignal(status, signal);
}

/** The test behind initDropsSignal, on the text of /proc/<pid>/status. */
export function parseInitDropsSignal(status: string, signal: number): boolean {
  // The shim is in an ancestor namespace: these two cannot be caught and still arrive.
  if (signal === SIGKILL || signal === SIGSTOP) return false;
  const field = (name: string) => new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(status)?.[1].trim() ?? '';
  const nspid = field('NSpid').split(/\s+/);
  if (nspid[nspid.length - 1] !== '1' || nspid.length < 2) return false;
  const caught = BigInt(`0x${field('SigCgt') || '0'}`);
  return (caught & (1n << BigInt(signal - 1))) === 0n;
}
