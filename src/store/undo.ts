// The undo of a half-done operation: each step that made something pushes what takes it
// away again; on failure they run newest first, and one that fails does not stop the rest.
import type { Logger } from '../log';

export class Undo {
  private steps: { what: string; fn: () => Promise<unknown> | unknown }[] = [];

  push(what: string, fn: () => Promise<unknown> | unknown): void {
    this.steps.push({ what, fn });
  }

  /** Run every step, newest first; false when one failed (it was logged). */
  async run(log: Logger): Promise<boolean> {
    let clean = true;
    for (const s of this.steps.reverse()) {
      try {
        await s.fn();
      } catch (e) {
        clean = false;
        log.warn('undo step failed', { step: s.what, error: (e as Error).message });
      }
    }
    this.steps = [];
    return clean;
  }
}

/** Wait for steps that run at once, each pushing its own undo steps, then throw the first
 * failure: nothing may be undone while another step is still making something. */
export async function allDone<T extends readonly unknown[]>(steps: readonly [...{ [K in keyof T]: Promise<T[K]> }]): Promise<T> {
  const settled = await Promise.allSettled(steps);
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<unknown>).value) as unknown as T;
}
