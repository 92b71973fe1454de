// ExecSync: a command in the running container, its output (capped: see the shim client)
// and exit code; DEADLINE_EXCEEDED past the timeout.
import type { ContainerService } from '../../container/container_service';
import type { ExecOutputBuffers } from '../../shim/client';
import type { ExecSyncRequest } from '../gen/cri';
import { ENCODED, Encoded, int32Field, lengthDelimitedHead } from '../proto';

/**
 * An ExecSyncResponse encoded around its output: the shim client writes stdout and stderr
 * straight into one buffer laid out as the message (stdout = 1, stderr = 2, then
 * exit_code = 3), so skiffd holds the output once, not once read and once encoded. Empty
 * and zero fields are left out, as the codec leaves them.
 */
export class ExecSyncReply {
  private buf = Buffer.alloc(0);
  private end = 0;

  /** Where the shim client puts the output (ExecOutputBuffers). */
  readonly buffers: ExecOutputBuffers = (stdoutBytes, stderrBytes) => {
    const stdoutHead = bytesFieldHead(1, stdoutBytes);
    const stderrHead = bytesFieldHead(2, stderrBytes);
    this.buf = Buffer.allocUnsafe(stdoutHead.length + stdoutBytes + stderrHead.length + stderrBytes + MAX_INT32_FIELD);
    this.buf.set(stdoutHead, 0);
    let at = stdoutHead.length;
    const stdout = this.buf.subarray(at, (at += stdoutBytes));
    this.buf.set(stderrHead, at);
    at += stderrHead.length;
    const stderr = this.buf.subarray(at, (at += stderrBytes));
    this.end = at;
    return { stdout, stderr };
  };

  /** The whole message, once the output is in and the exit code known. */
  encoded(exitCode: number): Encoded {
    const tail = exitCode === 0 ? NOTHING : int32Field(3, exitCode);
    this.buf.set(tail, this.end);
    return { [ENCODED]: this.buf.subarray(0, this.end + tail.length) };
  }
}

const NOTHING = new Uint8Array(0);
// Tag and ten-byte varint: an int32 field at its longest.
const MAX_INT32_FIELD = 11;
const bytesFieldHead = (field: number, length: number) => (length === 0 ? NOTHING : lengthDelimitedHead(field, length));

export function execSync(containers: ContainerService) {
  return async (req: ExecSyncRequest): Promise<Encoded> => {
    const reply = new ExecSyncReply();
    const r = await containers.execSync(req.container_id, req.cmd, req.timeout, reply.buffers);
    return reply.encoded(r.exitCode);
  };
}
