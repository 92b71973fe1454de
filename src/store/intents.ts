// The intent journal: an operation that changes the host records, durably and before its
// first side effect, what it is about to make or remove, and drops the record once its
// outcome is recorded (the pod or container record written or deleted). After a crash,
// every intent left is an operation that was in flight: skiffd's start-up finishes it or
// undoes it (see recovery.ts) before the CRI socket answers.
import { randomBytes } from 'crypto';
import { RecordStore } from './records';

/** What each operation records before it starts. Names on the host follow from the ids
 * (see the services), so a plan holds only what cannot be derived again. */
export interface IntentPlans {
  /** The pod dir, netns path and pod cgroup it will make; CNI ADD runs under the pod id. */
  run_pod: { dir: string; netnsPath: string; shmPath: string; cgroupParent: string; ownsCgroup: boolean };
  stop_pod: Record<string, never>;
  remove_pod: Record<string, never>;
  create_container: { podId: string; bundle: string; cgroupParent: string };
  /** No longer written (a start needs no intent, see ContainerService.start); kept so that
   * one an older skiffd left is still read and settled. */
  start_container: { podId: string };
  remove_container: { podId: string };
  pull_image: { image: string };
  /** A checkpoint's work dir and the archive it writes before renaming it into place. */
  checkpoint_container: { containerId: string; work: string; partial: string };
}

export type IntentOp = keyof IntentPlans;

export type Intent = { [K in IntentOp]: { op: K; id: string; at: number; plan: IntentPlans[K] } }[IntentOp];

const OPS: IntentOp[] = ['run_pod', 'stop_pod', 'remove_pod', 'create_container', 'start_container', 'remove_container', 'pull_image', 'checkpoint_container'];

const isIntent = (v: unknown): v is Intent => {
  const i = v as Intent;
  return !!i && OPS.includes(i.op) && typeof i.id === 'string' && /^[a-f0-9]{16,64}$/.test(i.id) && typeof i.at === 'number' && !!i.plan && typeof i.plan === 'object';
};

export class IntentJournal {
  private readonly store: RecordStore<Intent>;

  constructor(
    dir: string,
    private readonly warn: (msg: string) => void,
  ) {
    this.store = new RecordStore(dir, isIntent, warn);
  }

  get dir(): string {
    return this.store.dir;
  }

  init(): Promise<void> {
    return this.store.init();
  }

  /**
   * Record the intent; the operation may touch the host once this returns. The record
   * survives a crash of skiffd at any instant. Only a pull's is synced to disk as well:
   * a host crash empties the state dir (/run) and ends every process, mount and netns a
   * pod or container operation could have left, and what persists is covered elsewhere
   * (the CNI cache entry written, synced, before ADD keeps the IP; the sweep removes
   * writable layers no container owns), while a pull's blobs would stay until the next
   * garbage collection. An fsync costs about 2 ms here, on every lifecycle call.
   */
  async begin<K extends IntentOp>(op: K, id: string, plan: IntentPlans[K]): Promise<Intent> {
    const intent = { op, id, at: Date.now(), plan } as Intent;
    await this.store.put(key(intent), intent, { sync: op === 'pull_image' });
    return intent;
  }

  /** The outcome is recorded: the intent is done with. Not synced: an intent found again
   * after a crash is recognised as done by the record its operation left. */
  async end(intent: Intent): Promise<void> {
    await this.store.delete(key(intent));
  }

  /** end(), for an operation whose outcome is recorded: should the removal fail, it is
   * reported, not thrown (the operation succeeded), and the next start finds the intent
   * settled by the record. */
  async settled(intent: Intent): Promise<void> {
    await this.end(intent).catch((e: Error) => this.warn(`could not drop the settled intent ${key(intent)}: ${e.message}`));
  }

  /** The intents left by operations a crash interrupted, oldest first. */
  async pending(): Promise<Intent[]> {
    return [...(await this.store.all()).values()].sort((a, b) => a.at - b.at);
  }
}

const key = (i: { op: IntentOp; id: string }) => `${i.op}.${i.id}`;

/** An id for an operation that has none of its own (a pull). */
export const operationId = () => randomBytes(8).toString('hex');
