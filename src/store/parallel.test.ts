import assert from 'node:assert/strict';
import { forEachLimited, mapLimited } from './parallel';

describe('forEachLimited / mapLimited', () => {
  const tick = () => new Promise((r) => setImmediate(r));

  it('runs every item with at most `limit` under way, results in the items\' order', async () => {
    let inside = 0;
    let most = 0;
    const out = await mapLimited([5, 1, 4, 2, 3, 0, 6], 3, async (x) => {
      most = Math.max(most, ++inside);
      for (let i = 0; i < x; i++) await tick(); // later items finish before earlier ones
      inside--;
      return x * 10;
    });
    assert.deepEqual(out, [50, 10, 40, 20, 30, 0, 60]);
    assert.equal(most, 3);
  });

  it('starts nothing new after a failure, tells onFailure, lets the items under way finish, then throws the first error', async () => {
    const started: number[] = [];
    const finished: number[] = [];
    const told: string[] = [];
    await assert.rejects(
      forEachLimited(
        [0, 1, 2, 3, 4, 5],
        2,
        async (x) => {
          started.push(x);
          await tick();
          if (x === 1) throw new Error('item 1 failed');
          await tick();
          finished.push(x);
        },
        (e) => told.push((e as Error).message),
      ),
      /item 1 failed/,
    );
    assert.deepEqual(started, [0, 1]);
    assert.deepEqual(finished, [0]);
    assert.deepEqual(told, ['item 1 failed'], 'onFailure is told of the first failure, once');
  });

  it('does nothing for no items', async () => {
    assert.deepEqual(await mapLimited([], 4, async () => assert.fail('called')), []);
  });
});
