import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { GrpcCode, grpcCode } from '../errors';
import { LifecycleChange, RecordSet } from './record_set';
import { allDone, Undo } from './undo';
import { Logger } from '../log';

interface Thing {
  id: string;
  podId: string;
  state: string;
  name: string;
}

const isThing = (v: unknown): v is Thing => typeof (v as Thing)?.id === 'string';
const id = (c: string) => c.repeat(64);

describe('RecordSet', () => {
  let dir: string;
  const make = () => new RecordSet<Thing>({ dir, validate: isThing, warn: () => {}, idField: 'thing_id', what: 'thing', podOf: (t) => t.podId });
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-records-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('keeps records across a restart, with their names and their pods', async () => {
    const set = make();
    await set.load((t) => t.name);
    await set.save({ id: id('a'), podId: 'p1', state: 'created', name: 'one' });
    await set.save({ id: id('b'), podId: 'p2', state: 'created', name: 'two' });
    await set.save({ id: id('c'), podId: 'p1', state: 'created', name: 'three' });
    const again = make();
    assert.equal((await again.load((t) => t.name)).length, 3);
    assert.deepEqual(again.inPod('p1').map((t) => t.id), [id('a'), id('c')]);
    assert.throws(() => again.reserveName('two', id('d')), (e) => grpcCode(e) === GrpcCode.ALREADY_EXISTS && /thing name "two" is reserved by b{64}/.test((e as Error).message));
    again.reserveName('four', id('d'));
  });

  it('finds by id or unique prefix; an empty id is INVALID_ARGUMENT, an unknown one NOT_FOUND', async () => {
    const set = make();
    await set.load(() => undefined);
    await set.save({ id: 'ab' + id('1').slice(2), podId: 'p', state: 'created', name: '' });
    await set.save({ id: 'ac' + id('1').slice(2), podId: 'p', state: 'created', name: '' });
    assert.equal(set.get('ab')?.id.slice(0, 2), 'ab');
    assert.equal(set.get('a'), undefined, 'ambiguous');
    assert.throws(() => set.mustGet(''), (e) => grpcCode(e) === GrpcCode.INVALID_ARGUMENT && /thing_id is required/.test((e as Error).message));
    assert.throws(() => set.mustGet('ff'), (e) => grpcCode(e) === GrpcCode.NOT_FOUND && /thing "ff" not found/.test((e as Error).message));
  });

  it('tells each change once: a new pod is created and started, a new container created', async () => {
    const set = make();
    await set.load(() => undefined);
    const seen: [LifecycleChange, string][] = [];
    set.onChange((c, t) => seen.push([c, t.state]));
    await set.save({ id: id('a'), podId: 'p', state: 'ready', name: '' });
    await set.save({ id: id('b'), podId: 'p', state: 'created', name: '' });
    await set.save({ id: id('b'), podId: 'p', state: 'running', name: '' });
    await set.save({ id: id('b'), podId: 'p', state: 'running', name: '' });
    await set.save({ id: id('b'), podId: 'p', state: 'exited', name: '' });
    await set.delete(set.get(id('b'))!);
    assert.deepEqual(seen, [
      ['created', 'ready'],
      ['started', 'ready'],
      ['created', 'created'],
      ['started', 'running'],
      ['stopped', 'exited'],
      ['deleted', 'exited'],
    ]);
    assert.deepEqual(set.inPod('p').map((t) => t.id), [id('a')]);
  });

  it('keeps the record before a save whose write failed', async () => {
    const set = make();
    await set.load(() => undefined);
    await set.save({ id: id('a'), podId: 'p', state: 'created', name: '' });
    fs.rmSync(dir, { recursive: true });
    await assert.rejects(set.save({ id: id('a'), podId: 'p', state: 'running', name: '' }));
    await assert.rejects(set.save({ id: id('b'), podId: 'p', state: 'created', name: '' }));
    assert.equal(set.get(id('a'))?.state, 'created');
    assert.equal(set.get(id('b')), undefined);
    assert.deepEqual(set.inPod('p').map((t) => t.id), [id('a')]);
  });

  it('releases a name on delete, and only the holder releases it', async () => {
    const set = make();
    await set.load(() => undefined);
    set.reserveName('n', id('a'));
    set.releaseName(id('b'));
    assert.throws(() => set.reserveName('n', id('b')));
    await set.save({ id: id('a'), podId: 'p', state: 'created', name: 'n' });
    await set.delete(set.get(id('a'))!);
    set.reserveName('n', id('b'));
  });

  it('runs Stop and Remove under the lock of a known id only', async () => {
    const set = make();
    await set.load(() => undefined);
    await set.save({ id: id('a'), podId: 'p', state: 'created', name: '' });
    const ran: string[] = [];
    await set.ifKnown('ffff', async () => void ran.push('unknown'));
    await assert.rejects(set.ifKnown('', async () => void ran.push('empty')), (e) => grpcCode(e) === GrpcCode.INVALID_ARGUMENT);
    let inside = 0;
    let most = 0;
    const step = (r: Thing) => async () => {
      most = Math.max(most, ++inside);
      await new Promise((res) => setImmediate(res));
      ran.push(r.id.slice(0, 1));
      inside--;
    };
    await Promise.all([set.ifKnown('aa', (r) => step(r)()), set.ifKnown(id('a'), (r) => step(r)())]);
    assert.deepEqual(ran, ['a', 'a']);
    assert.equal(most, 1);
  });
});

describe('Undo', () => {
  it('runs every step newest first, past a failing one, and says it was not clean', async () => {
    const lines: string[] = [];
    const log = new Logger('info', {}, { write: (l: string) => lines.push(l) } as unknown as NodeJS.WritableStream, false);
    const undo = new Undo();
    const ran: string[] = [];
    undo.push('first', () => void ran.push('first'));
    undo.push('second', () => Promise.reject(new Error('busy')));
    undo.push('third', async () => void ran.push('third'));
    assert.equal(await undo.run(log), false);
    assert.deepEqual(ran, ['third', 'first']);
    assert.match(lines.join(''), /"step":"second","error":"busy"/);
    assert.equal(await undo.run(log), true, 'the steps ran once');
  });
});

describe('allDone', () => {
  it('waits for every step before throwing the first failure, so that an undo never runs beside a step still making something', async () => {
    const ran: string[] = [];
    let finishSlow!: () => void;
    const slow = new Promise<void>((res) => (finishSlow = res)).then(() => void ran.push('slow done'));
    const failed = allDone([Promise.reject(new Error('first')), slow, Promise.reject(new Error('second'))]);
    let settled = false;
    void failed.catch(() => (settled = true));
    await new Promise((res) => setImmediate(res));
    assert.equal(settled, false, 'still waiting for the slow step');
    finishSlow();
    await assert.rejects(failed, /first/);
    assert.deepEqual(ran, ['slow done']);
    assert.deepEqual(await allDone([Promise.resolve(1), Promise.resolve('two')] as const), [1, 'two']);
  });
});
