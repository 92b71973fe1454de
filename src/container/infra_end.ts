// A container joins its pod's namespaces through the infra process (/proc/<pid>/ns/*).
// When that process is gone, what fails first (skiffd opening its user namespace for the
// id-mapped rootfs, or the shim joining its network namespace) reports a missing /proc
// path; the caller is told instead that the pod's infra process ended, and how, as the
// shim says it (shim/src/pod.c, pod_infra_gone_failure).
import { FailedPrecondition } from '../errors';
import { readProcStat } from '../sys/proc_file';

/** A wait status in words. */
const ended = (status: number) => (status & 0x7f ? `has been killed by signal ${status & 0x7f}` : `has exited with status ${(status >> 8) & 0xff}`);

/** How the process ended ("has been killed by signal 9", "has exited with status 1"), from
 * its zombie or, once its parent reaped it, from `reaped` (the shim's record; "has exited"
 * without one); null while it runs. */
export async function infraEnd(pid: number, reaped: () => Promise<number | undefined> = async () => undefined): Promise<string | null> {
  const fields = await readProcStat(pid);
  if (!fields) {
    const status = await reaped().catch(() => undefined);
    return status === undefined ? 'has exited' : ended(status);
  }
  if (fields[0] !== 'Z' && fields[0] !== 'X') return null;
  // exit_code, field 52: a wait status (Linux 3.5+).
  const status = Number(fields[49]);
  return Number.isInteger(status) ? ended(status) : 'has exited';
}

/** e, or, when e is a missing path of the infra process's and that process has ended,
 * FAILED_PRECONDITION saying so. */
export async function explainInfraGone(e: unknown, infraPid: number, containerId: string, reaped?: () => Promise<number | undefined>): Promise<unknown> {
  const err = e as NodeJS.ErrnoException;
  if (!infraPid || err?.code !== 'ENOENT' || !String(err.path ?? err.message).includes(`/proc/${infraPid}/`)) return e;
  const end = await infraEnd(infraPid, reaped);
  return end ? new FailedPrecondition(`create container "${containerId}": the pod's infra process, whose namespaces the container joins, ${end}`) : e;
}
