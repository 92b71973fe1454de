import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ResourceExhausted } from '../errors';
import { POD_RANGE_LENGTH, subidOverlaps, UsernsPool } from './userns_pool';

const pod = (n: number) => n.toString(16).padStart(64, '0');
const FIRST = 16 * POD_RANGE_LENGTH;

describe('userns pool', () => {
  let dir: string;
  const warnings: string[] = [];
  const open = async (ranges = 4, pods: { id: string; range: { hostId: number; length: number } }[] = []) => {
    const p = new UsernsPool({ dir, firstHostId: FIRST, ranges, warn: (m) => warnings.push(m) });
    await p.init(pods);
    return p;
  };
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-userns-pool-'));
    warnings.length = 0;
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('gives each pod the lowest free 65536-id range from the first id, and takes it back', async () => {
    const p = await open();
    const got = await Promise.all([1, 2, 3].map((n) => p.allocate(pod(n))));
    assert.deepEqual(got.map((r) => r.hostId), [FIRST, FIRST + POD_RANGE_LENGTH, FIRST + 2 * POD_RANGE_LENGTH]);
    assert.ok(got.every((r) => r.length === POD_RANGE_LENGTH));
    assert.equal(await p.release(pod(2)), true);
    assert.equal(await p.release(pod(2)), false, 'a second release finds nothing');
    assert.equal((await p.allocate(pod(4))).hostId, FIRST + POD_RANGE_LENGTH, 'the freed range is the lowest again');
    assert.deepEqual(fs.readdirSync(dir).sort(), [pod(1), pod(3), pod(4)].map((id) => `${id}.json`).sort());
  });

  it('refuses a pod with RESOURCE_EXHAUSTED once every range is held', async () => {
    const p = await open(2);
    await p.allocate(pod(1));
    await p.allocate(pod(2));
    await assert.rejects(p.allocate(pod(3)), (e: Error) => e instanceof ResourceExhausted && /all 2 ranges of 65536 host ids from 1048576 are in use/.test(e.message));
    assert.equal(p.rangeOf(pod(3)), undefined);
  });

  it('reads its allocations back after a restart: no range is handed out twice', async () => {
    const before = await open();
    await before.allocate(pod(1));
    await before.allocate(pod(2));
    const after = await open(4, [{ id: pod(1), range: { hostId: FIRST, length: POD_RANGE_LENGTH } }, { id: pod(2), range: { hostId: FIRST + POD_RANGE_LENGTH, length: POD_RANGE_LENGTH } }]);
    assert.equal((await after.allocate(pod(3))).hostId, FIRST + 2 * POD_RANGE_LENGTH);
    assert.deepEqual(after.unclaimedPods(() => false), []);
  });

  it('writes again the allocation of a pod record whose allocation record was lost, and holds its range', async () => {
    const p = await open(4, [{ id: pod(7), range: { hostId: FIRST, length: POD_RANGE_LENGTH } }]);
    assert.match(warnings.join('\n'), /had no allocation record/);
    assert.ok(fs.existsSync(path.join(dir, `${pod(7)}.json`)));
    assert.equal((await p.allocate(pod(8))).hostId, FIRST + POD_RANGE_LENGTH);
  });

  it('holds the range of an allocation without a pod record until it is released, and skips a torn record', async () => {
    const before = await open();
    await before.allocate(pod(1));
    await before.allocate(pod(2));
    fs.writeFileSync(path.join(dir, `${pod(9)}.json`), '{"pod":');
    const after = await open(4, [{ id: pod(2), range: { hostId: FIRST + POD_RANGE_LENGTH, length: POD_RANGE_LENGTH } }]);
    assert.match(warnings.join('\n'), /skipping record/);
    // pod 1's record vanished: its range stays held until the caller releases it.
    assert.deepEqual(after.unclaimedPods(() => false), [pod(1)]);
    assert.deepEqual(after.unclaimedPods((id) => id === pod(1)), [], 'a pod known again keeps it');
    assert.equal((await after.allocate(pod(3))).hostId, FIRST + 2 * POD_RANGE_LENGTH);
    await after.release(pod(1));
    assert.equal((await after.allocate(pod(4))).hostId, FIRST);
  });

  it('keeps clear of ranges left by a different first id (a changed configuration)', async () => {
    const old = new UsernsPool({ dir, firstHostId: FIRST + 32768 * 2, ranges: 4, warn: () => {} });
    await old.init([]);
    await old.allocate(pod(1)); // [FIRST+65536, FIRST+131072)
    const p = await open(4, [{ id: pod(1), range: { hostId: FIRST + POD_RANGE_LENGTH, length: POD_RANGE_LENGTH } }]);
    assert.equal((await p.allocate(pod(2))).hostId, FIRST);
    assert.equal((await p.allocate(pod(3))).hostId, FIRST + 2 * POD_RANGE_LENGTH);
  });

  it('has the bounds of its ranges', async () => {
    assert.deepEqual((await open(2)).bounds, { first: FIRST, end: FIRST + 2 * POD_RANGE_LENGTH });
  });

  it('finds the /etc/subuid lines that reach into the pool', () => {
    const text = 'alice:100000:65536\nkubelet:1048500:100\n# comment\nbob:1310720:65536\n\n';
    assert.deepEqual(subidOverlaps(text, { first: FIRST, end: FIRST + 4 * POD_RANGE_LENGTH }), ['kubelet:1048500:100']);
    assert.deepEqual(subidOverlaps(text, { first: FIRST, end: FIRST + 5 * POD_RANGE_LENGTH }), ['kubelet:1048500:100', 'bob:1310720:65536']);
  });
});
