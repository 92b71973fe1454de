// ExecSync: a command in the running container, its output and exit code; DEADLINE_EXCEEDED
// past the timeout.
import type { ContainerService } from '../../container/container_service';
import type { ExecSyncRequest, ExecSyncResponse } from '../gen/cri';
import type { Reply } from '../server';

export function execSync(containers: ContainerService) {
  return async (req: ExecSyncRequest): Promise<Reply<ExecSyncResponse>> => {
    const r = await containers.execSync(req.container_id, req.cmd, req.timeout);
    return { stdout: r.stdout, stderr: r.stderr, exit_code: r.exitCode };
  };
}
