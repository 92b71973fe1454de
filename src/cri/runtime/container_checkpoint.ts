// CheckpointContainer: the running container dumped into an archive at `location`, and
// left running (see checkpoint/checkpoint_service.ts).
import type { CheckpointService } from '../../checkpoint/checkpoint_service';
import type { CheckpointContainerRequest } from '../gen/cri';
import type { Reply } from '../server';

export function checkpointContainer(checkpoints: CheckpointService) {
  return async (req: CheckpointContainerRequest): Promise<Reply<object>> => {
    await checkpoints.checkpoint(req.container_id, req.location, Number(req.timeout));
    return {};
  };
}
