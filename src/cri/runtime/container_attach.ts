// Attach: validate the request, then hand out a single-use URL of skiffd's streaming
// server, where the session itself runs.
import type { ContainerService } from '../../container/container_service';
import { InvalidArgument } from '../../errors';
import type { StreamingServer } from '../../streaming/server';
import type { AttachRequest, AttachResponse } from '../gen/cri';
import type { Reply } from '../server';

/** The streams an Exec or Attach asks for: one at least, and no stderr beside a tty. */
export function checkStreams(r: { stdin: boolean; stdout: boolean; stderr: boolean; tty: boolean }): void {
  if (!r.stdin && !r.stdout && !r.stderr) throw new InvalidArgument('one of stdin, stdout and stderr must be requested');
  if (r.tty && r.stderr) throw new InvalidArgument('tty and stderr cannot both be true: a terminal has one output stream');
}

export function attach(containers: ContainerService, streaming: StreamingServer) {
  return async (req: AttachRequest): Promise<Reply<AttachResponse>> => {
    checkStreams(req);
    const r = containers.checkStreamable(req.container_id);
    return { url: streaming.url({ kind: 'attach', containerId: r.id, tty: req.tty, stdin: req.stdin, stdout: req.stdout, stderr: req.stderr }) };
  };
}
