import assert from 'node:assert/strict';
import { Readable } from 'stream';
import { progressLine } from '../cli/skiff';
import { PullProgress } from './pull_progress';

describe('PullProgress', () => {
  it('counts the bytes of each blob as they are read, and marks blobs done', async () => {
    const p = new PullProgress();
    p.expect({ digest: 'sha256:a', size: 6 });
    p.expect({ digest: 'sha256:b', size: 4 });
    const out: Buffer[] = [];
    for await (const c of p.count('sha256:a', Readable.from([Buffer.from('abc'), Buffer.from('def')]))) out.push(c as Buffer);
    assert.equal(Buffer.concat(out).toString(), 'abcdef');
    p.done('sha256:a');
    assert.deepEqual(p.snapshot(), [
      { digest: 'sha256:a', size: 6, fetched: 6, done: true },
      { digest: 'sha256:b', size: 4, fetched: 0, done: false },
    ]);
  });

  it('passes a source error on to the reader', async () => {
    const p = new PullProgress();
    p.expect({ digest: 'sha256:a', size: 6 });
    const bad = new Readable({ read() { this.destroy(new Error('connection reset')); } });
    await assert.rejects(async () => { for await (const _ of p.count('sha256:a', bad)) void _; }, /connection reset/);
  });

  it('draws a bar of what is fetched', () => {
    assert.equal(progressLine('x:1', [{ size: 1000, fetched: 1000, done: true }, { size: 3000, fetched: 1000, done: false }], 10), 'x:1 [#####.....] 2.0 kB / 4.0 kB, 1/2 blobs');
  });
});
