// Start-up recovery, run after the records are loaded and the shims reconnected, before
// the CRI socket answers: every operation a crash interrupted (an intent left in the
// journal) is finished or undone, then a sweep removes what no record owns under skiff's
// own names and roots. Each thing done is logged and counted (skiff_recovered_total).
import { recoverCheckpoint } from './checkpoint/checkpoint_service';
import type { ContainerService } from './container/container_service';
import type { ImageService } from './image/image_service';
import type { Logger } from './log';
import type { SandboxService } from './sandbox/sandbox_service';
import type { Intent, IntentJournal, IntentOp } from './store/intents';

export interface RecoveryDeps {
  journal: IntentJournal;
  sandboxes: SandboxService;
  containers: ContainerService;
  images: ImageService;
  log: Logger;
  /** Counts one thing recovered, by kind. */
  observe: (kind: string) => void;
}

/** Containers' operations before their pods' (undoing a create needs the pod's shim;
 * a pod's removal removes its containers), pulls last (garbage collection needs to know
 * every container's layers). */
const ORDER: IntentOp[] = ['checkpoint_container', 'create_container', 'start_container', 'remove_container', 'run_pod', 'stop_pod', 'remove_pod', 'pull_image'];

export async function recover(d: RecoveryDeps): Promise<void> {
  const intents = (await d.journal.pending()).sort((a, b) => ORDER.indexOf(a.op) - ORDER.indexOf(b.op));
  // A CNI plugin outlives skiffd only if a pod operation was cut short (its intent is
  // written before ADD or DEL runs): only then is /proc searched for one.
  if (intents.some((i) => i.op === 'run_pod' || i.op === 'stop_pod' || i.op === 'remove_pod')) await d.sandboxes.awaitOrphanedPlugins();
  let pulls = 0;
  for (const i of intents) {
    try {
      const outcome = await settle(d, i);
      d.log.warn('recovery settled an operation a crash interrupted', { op: i.op, id: i.id, outcome, startedAt: new Date(i.at).toISOString() });
      d.observe(`op_${i.op}`);
      if (i.op === 'pull_image') pulls++;
      await d.journal.end(i);
    } catch (e) {
      // Kept: the next start tries again. skiffd serves meanwhile (no crash loop).
      d.log.error('recovery could not settle an interrupted operation', { op: i.op, id: i.id, error: (e as Error).message });
    }
  }
  if (pulls > 0 || d.images.leftoverIngests.length > 0) {
    const gc = await d.images.collectGarbage();
    d.log.warn('recovery collected what interrupted pulls left', { ingest: d.images.leftoverIngests.length, ...gc });
  }
  for (const _ of d.images.leftoverIngests) d.observe('ingest');
  for (const [what, sweep] of [['pods', () => d.sandboxes.sweep()], ['containers', () => d.containers.sweep()]] as const) {
    try {
      await sweep();
    } catch (e) {
      d.log.error('the start-up sweep failed; the next start tries again', { of: what, error: (e as Error).message });
    }
  }
}

function settle(d: RecoveryDeps, i: Intent): Promise<string> {
  switch (i.op) {
    case 'run_pod':
    case 'stop_pod':
    case 'remove_pod':
      return d.sandboxes.recoverIntent(i);
    case 'create_container':
    case 'start_container':
    case 'remove_container':
      return d.containers.recoverIntent(i);
    case 'pull_image':
      return Promise.resolve('undone');
    case 'checkpoint_container':
      return recoverCheckpoint(i.plan);
  }
}
