import assert from 'node:assert/strict';
import { SharedLock } from './keyed_lock';

describe('SharedLock', () => {
  const tick = () => new Promise((r) => setImmediate(r));

  it('lets shared holders run together; an exclusive one waits for them and holds new ones back', async () => {
    const lock = new SharedLock();
    const events: string[] = [];
    let endA!: () => void;
    const a = lock.shared(() => new Promise<void>((r) => (endA = r)).then(() => void events.push('a done')));
    const b = lock.shared(async () => void events.push('b ran'));
    await tick();
    const x = lock.exclusive(async () => void events.push('x ran'));
    const c = lock.shared(async () => void events.push('c ran'));
    await tick();
    assert.deepEqual(events, ['b ran']);
    endA();
    await Promise.all([a, b, x, c]);
    assert.deepEqual(events, ['b ran', 'a done', 'x ran', 'c ran']);
  });

  it('runs exclusive holders one at a time and releases on a throw', async () => {
    const lock = new SharedLock();
    let inside = 0;
    let most = 0;
    const run = () => lock.exclusive(async () => {
      most = Math.max(most, ++inside);
      await new Promise((r) => setImmediate(r));
      inside--;
      throw new Error('boom');
    });
    await Promise.allSettled([run(), run(), run()]);
    assert.equal(most, 1);
    assert.equal(await lock.shared(async () => 'free'), 'free');
  });
});
