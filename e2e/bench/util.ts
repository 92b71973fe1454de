// What the benchmark suites share besides statistics: undoing what a run set up,
// whatever happened, and small helpers.
import * as fs from 'fs';

export function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** p, or a rejection naming `what` once ms pass without an answer. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Steps that undo a run's set-up, run in reverse order; a failing step is logged and the rest still run. */
export class Cleanups {
  private readonly steps: [string, () => unknown][] = [];

  add(what: string, undo: () => unknown): void {
    this.steps.push([what, undo]);
  }

  async run(log: (line: string) => void): Promise<void> {
    for (const [what, undo] of this.steps.reverse()) {
      try {
        await undo();
      } catch (e) {
        log(`cleanup: ${what}: ${errText(e)}`);
      }
    }
    this.steps.length = 0;
  }
}

/** An executable regular file at p. */
export function isExecutable(p: string): boolean {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}
