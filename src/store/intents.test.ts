import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { IntentJournal } from './intents';

describe('IntentJournal', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-intents-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('keeps an intent until it is ended, across a new journal on the same dir (a restart)', async () => {
    const j = new IntentJournal(dir, () => {});
    await j.init();
    const id = 'a'.repeat(64);
    const i = await j.begin('create_container', id, { podId: 'b'.repeat(64), bundle: '/run/x', cgroupParent: '/kubepods' });
    const again = new IntentJournal(dir, () => {});
    await again.init();
    assert.deepEqual(await again.pending(), [i]);
    await again.end(i);
    assert.deepEqual(await j.pending(), []);
  });

  it('lists intents oldest first, one per operation and id', async () => {
    const j = new IntentJournal(dir, () => {});
    await j.init();
    const id = 'c'.repeat(64);
    const first = await j.begin('stop_pod', id, {});
    await new Promise((r) => setTimeout(r, 5));
    const second = await j.begin('remove_pod', id, {});
    assert.deepEqual((await j.pending()).map((x) => x.op), [first.op, second.op]);
  });

  it('skips a torn or foreign record with a warning instead of failing the start', async () => {
    const warnings: string[] = [];
    const j = new IntentJournal(dir, (m) => warnings.push(m));
    await j.init();
    fs.writeFileSync(path.join(dir, 'run_pod.' + 'd'.repeat(64) + '.json'), '{"op":"run_pod","id":');
    fs.writeFileSync(path.join(dir, 'unknown.' + 'e'.repeat(64) + '.json'), JSON.stringify({ op: 'format_disk', id: 'e'.repeat(64), at: 1, plan: {} }));
    fs.writeFileSync(path.join(dir, '.tmp-123'), 'half a write');
    await j.init();
    assert.deepEqual(await j.pending(), []);
    assert.equal(warnings.length, 2);
    assert.equal(fs.existsSync(path.join(dir, '.tmp-123')), false, 'temp files of cut-short writes are dropped');
  });
});
