// Exec, Attach and PortForward: validate the request, then hand out a single-use URL
// of skiffd's streaming server, where the session itself runs.
import type { ContainerService } from '../../container/container_service';
import { InvalidArgument } from '../../errors';
import type { SandboxService } from '../../sandbox/sandbox_service';
import type { StreamingServer } from '../../streaming/server';
import type { AttachRequest, AttachResponse, ExecRequest, ExecResponse, PortForwardRequest, PortForwardResponse } from '../gen/cri';
import type { Reply } from '../server';

function checkStreams(r: { stdin: boolean; stdout: boolean; stderr: boolean; tty: boolean }): void {
  if (!r.stdin && !r.stdout && !r.stderr) throw new InvalidArgument('one of stdin, stdout and stderr must be requested');
  if (r.tty && r.stderr) throw new InvalidArgument('tty and stderr cannot both be true: a terminal has one output stream');
}

export function exec(containers: ContainerService, streaming: StreamingServer) {
  return async (req: ExecRequest): Promise<Reply<ExecResponse>> => {
    if (req.cmd.length === 0) throw new InvalidArgument('cmd is required');
    checkStreams(req);
    const r = containers.checkStreamable(req.container_id);
    return { url: streaming.url({ kind: 'exec', containerId: r.id, cmd: req.cmd, tty: req.tty, stdin: req.stdin, stdout: req.stdout, stderr: req.stderr }) };
  };
}

export function attach(containers: ContainerService, streaming: StreamingServer) {
  return async (req: AttachRequest): Promise<Reply<AttachResponse>> => {
    checkStreams(req);
    const r = containers.checkStreamable(req.container_id);
    return { url: streaming.url({ kind: 'attach', containerId: r.id, tty: req.tty, stdin: req.stdin, stdout: req.stdout, stderr: req.stderr }) };
  };
}

export function portForward(pods: SandboxService, streaming: StreamingServer) {
  return async (req: PortForwardRequest): Promise<Reply<PortForwardResponse>> => {
    for (const p of req.port) if (!Number.isInteger(p) || p < 1 || p > 65535) throw new InvalidArgument(`port ${p} is not in 1-65535`);
    const r = pods.requireReady(req.pod_sandbox_id);
    return { url: streaming.url({ kind: 'portforward', podId: r.id, ports: req.port }) };
  };
}
