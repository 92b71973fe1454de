import assert from 'node:assert/strict';
import { TokenCache } from './tokens';

describe('streaming tokens', () => {
  it('hands a request out once', () => {
    const c = new TokenCache<string>();
    const t = c.put('exec');
    assert.match(t, /^[A-Za-z0-9_-]{32}$/);
    assert.equal(c.take(t), 'exec');
    assert.equal(c.take(t), undefined);
    assert.equal(c.take('forged'), undefined);
  });

  it('refuses a token after it expired', async () => {
    const c = new TokenCache<string>(50);
    const t = c.put('attach');
    await new Promise((r) => setTimeout(r, 80));
    assert.equal(c.take(t), undefined);
  });

  it('bounds the requests waiting for a client', () => {
    const c = new TokenCache<number>(60_000, 3);
    for (let i = 0; i < 3; i++) c.put(i);
    assert.throws(() => c.put(3), /too many pending streaming requests/);
  });
});
