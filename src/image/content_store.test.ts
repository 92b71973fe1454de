import assert from 'node:assert/strict';
import { spawn } from 'child_process';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Readable } from 'stream';
import { InvalidArgument, NotFound } from '../errors';
import { ContentStore, DigestMismatch } from './content_store';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

describe('content store', () => {
  let root: string;
  let store: ContentStore;
  beforeEach(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-cs-'));
    store = new ContentStore(root);
    await store.init();
  });
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  it('stores a blob under its digest and reads it back', async () => {
    const data = Buffer.from('hello blob');
    const d = await store.writeBuffer(data);
    assert.equal(d, sha(data));
    assert.ok(await store.has(d));
    assert.deepEqual(await store.read(d), data);
    assert.equal(await store.size(d), data.length);
    assert.deepEqual(await store.list(), [d]);
  });

  it('refuses content whose digest does not match, leaving nothing', async () => {
    const wrong = sha(Buffer.from('other'));
    await assert.rejects(store.ingest(wrong, Readable.from([Buffer.from('content')])), (e: Error) => e instanceof DigestMismatch && /content has digest sha256:/.test(e.message));
    assert.equal(await store.has(wrong), false);
    assert.deepEqual(fs.readdirSync(path.join(root, 'ingest')), []);
  });

  it('refuses a truncated or overlong blob by its expected size', async () => {
    const data = Buffer.alloc(1000, 7);
    const d = sha(data);
    await assert.rejects(store.ingest(d, Readable.from([data.subarray(0, 500)]), { size: 1000 }), /got 500 bytes, expected 1000/);
    await assert.rejects(store.ingest(d, Readable.from([data, data]), { size: 1000 }), /more than the expected 1000 bytes/);
    assert.equal(await store.has(d), false);
  });

  it('writes a blob once when two callers ingest it at the same time', async () => {
    const data = Buffer.alloc(1 << 20, 3);
    const d = sha(data);
    let reads = 0;
    const src = () => Promise.resolve(Readable.from((function* () { reads++; yield data; })()));
    await Promise.all([store.ingest(d, src), store.ingest(d, src), store.ingest(d, src)]);
    assert.equal(reads, 1);
    assert.equal(await store.size(d), data.length);
  });

  it('fails cleanly when the source errors half-way', async () => {
    const d = sha(Buffer.from('whatever'));
    const src = new Readable({ read() {} });
    src.push(Buffer.from('what'));
    setImmediate(() => src.destroy(new Error('connection reset')));
    await assert.rejects(store.ingest(d, src), /connection reset/);
    assert.equal(await store.has(d), false);
    assert.deepEqual(fs.readdirSync(path.join(root, 'ingest')), []);
  });

  it('drops a write a killed process left behind when it starts', async () => {
    // A child writes half a blob into ingest/ and is SIGKILLed mid-write.
    const script = `const fs=require('fs');const f=fs.openSync(${JSON.stringify(path.join(root, 'ingest', 'partial'))},'w');fs.writeSync(f,Buffer.alloc(4096));process.kill(process.pid,'SIGKILL');`;
    await new Promise((r) => spawn(process.execPath, ['-e', script]).on('exit', r));
    assert.ok(fs.existsSync(path.join(root, 'ingest', 'partial')));
    await new ContentStore(root).init();
    assert.deepEqual(fs.readdirSync(path.join(root, 'ingest')), []);
    assert.deepEqual(await store.list(), []);
  });

  it('answers NOT_FOUND for a missing blob and INVALID_ARGUMENT for a bad digest', async () => {
    await assert.rejects(store.size(sha(Buffer.from('x'))), (e: Error) => e instanceof NotFound);
    await assert.rejects(async () => store.blobPath('sha256:../../etc/passwd'), (e: Error) => e instanceof InvalidArgument);
    await assert.rejects(async () => store.blobPath('md5:abc'), (e: Error) => e instanceof InvalidArgument && /unsupported or malformed digest/.test(e.message));
  });

  it('feeds every chunk to onChunk while writing, and reports usage', async () => {
    const data = Buffer.alloc(300000, 9);
    let seen = 0;
    await store.ingest(sha(data), Readable.from([data.subarray(0, 100000), data.subarray(100000)]), { onChunk: (c) => (seen += c.length) });
    assert.equal(seen, data.length);
    const u = await store.usage();
    assert.equal(u.inodes, 1);
    assert.ok(u.bytes >= data.length);
  });
});

describe('content store, unknown digests', () => {
  it('stores a stream under the digest it turns out to have', async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-cs-'));
    try {
      const store = new ContentStore(root);
      await store.init();
      const data = Buffer.from('layer.tar bytes');
      const d = await store.ingestUnknown(Readable.from([data]));
      assert.equal(d, sha(data));
      assert.deepEqual(await store.read(d), data);
      assert.equal(await store.ingestUnknown(Readable.from([data])), d, 'again: same digest, no second copy');
      assert.deepEqual(fs.readdirSync(path.join(root, 'ingest')), []);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});
