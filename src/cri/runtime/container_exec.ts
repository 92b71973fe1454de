// Exec: validate the request, then hand out a single-use URL of skiffd's streaming server,
// where the session itself runs.
import type { ContainerService } from '../../container/container_service';
import { InvalidArgument } from '../../errors';
import type { StreamingServer } from '../../streaming/server';
import type { ExecRequest, ExecResponse } from '../gen/cri';
import type { Reply } from '../server';
import { checkStreams } from './container_attach';

export function exec(containers: ContainerService, streaming: StreamingServer) {
  return async (req: ExecRequest): Promise<Reply<ExecResponse>> => {
    if (req.cmd.length === 0) throw new InvalidArgument('cmd is required');
    checkStreams(req);
    const r = containers.checkStreamable(req.container_id);
    return { url: streaming.url({ kind: 'exec', containerId: r.id, cmd: req.cmd, tty: req.tty, stdin: req.stdin, stdout: req.stdout, stderr: req.stderr }) };
  };
}
