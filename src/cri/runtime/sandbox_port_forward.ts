// PortForward: validate the ports, then hand out a single-use URL of skiffd's streaming
// server, where the forwarded connections run.
import { InvalidArgument } from '../../errors';
import type { SandboxService } from '../../sandbox/sandbox_service';
import type { StreamingServer } from '../../streaming/server';
import type { PortForwardRequest, PortForwardResponse } from '../gen/cri';
import type { Reply } from '../server';

export function portForward(pods: SandboxService, streaming: StreamingServer) {
  return async (req: PortForwardRequest): Promise<Reply<PortForwardResponse>> => {
    for (const p of req.port) if (!Number.isInteger(p) || p < 1 || p > 65535) throw new InvalidArgument(`port ${p} is not in 1-65535`);
    const r = pods.requireReady(req.pod_sandbox_id);
    return { url: streaming.url({ kind: 'portforward', podId: r.id, ports: req.port }) };
  };
}
