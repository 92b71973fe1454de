// Whether the kernel would drop a signal sent to a process now. The first process of a PID
// namespace gets only the signals it has a handler for (SIGKILL aside): one sent while it
// is still a shell about to exec its real program (`sh -c top`) is lost, and a graceful stop
// would then wait out its whole timeout. StopContainer uses this to send the stop signal
// again once the program has installed its handler.
import { promises as fsp } from 'fs';

/** True when `pid` is the init of its PID namespace and neither catches nor could receive
 * `signal`; false when the signal would be delivered, or the process is gone. */
export async function initDropsSignal(pid: number, signal: number): Promise<boolean> {
  let status: string;
  try {
    status = await fsp.readFile(`/proc/${pid}/status`, 'utf8');
  } catch {
    return false;
  }
  return parseInitDropsSignal(status, signal);
}

/** The test behind initDropsSignal, on the text of /proc/<pid>/status. */
export function parseInitDropsSignal(status: string, signal: number): boolean {
  const field = (name: string) => new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(status)?.[1].trim() ?? '';
  const nspid = field('NSpid').split(/\s+/);
  if (nspid[nspid.length - 1] !== '1' || nspid.length < 2) return false;
  const caught = BigInt(`0x${field('SigCgt') || '0'}`);
  return (caught & (1n << BigInt(signal - 1))) === 0n;
}
