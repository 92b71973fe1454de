import assert from 'node:assert/strict';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Readable } from 'stream';
import { gzipSync } from 'zlib';
import { LayerEscape } from './unpack';
import { UnpackThread } from './unpack_thread';
import { makeTar } from '../../e2e/fixtures/tar';


const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** buf in chunks of n bytes, each a buffer of its own (as a file or blob reader gives them). */
function chunked(buf: Buffer, n: number): Buffer[] {
  const out: Buffer[] = [];
  for (let o = 0; o < buf.length; o += n) {
    const c = Buffer.allocUnsafeSlow(Math.min(n, buf.length - o));
    buf.copy(c, 0, o, o + c.length);
    out.push(c);
  }
  return out;
}

describe('layer unpack thread', () => {
  let work: string;
  let dir: string;
  let thread: UnpackThread;
  beforeEach(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-unpack-thread-'));
    dir = path.join(work, 'layer');
    fs.mkdirSync(dir);
    thread = new UnpackThread();
  });
  afterEach(async () => {
    await thread.release();
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('unpacks a layer of many chunks there: files, links, whiteouts, and the diff_id', async () => {
    const big = Buffer.alloc(3 * 1024 * 1024 + 17, 'x');
    const t = await makeTar([
      { name: 'bin/', type: 'directory', mode: 0o755 },
      { name: 'bin/tool', body: big, mode: 0o755 },
      { name: 'bin/link', type: 'symlink', linkname: 'tool' },
      { name: 'bin/hard', type: 'link', linkname: 'bin/tool' },
      { name: 'etc/.wh.gone', body: '' },
      { name: 'etc/conf', body: 'a=1\n', mode: 0o600, uid: 1000, gid: 1000 },
    ]);
    const gz = gzipSync(t);
    const r = await thread.unpack(Readable.from(chunked(gz, 64 * 1024)), dir, 'gzip', true);
    assert.equal(r.diffId, sha(t));
    assert.equal(fs.statSync(path.join(dir, 'bin/tool')).size, big.length);
    assert.equal(fs.readlinkSync(path.join(dir, 'bin/link')), 'tool');
    assert.equal(fs.statSync(path.join(dir, 'bin/hard')).ino, fs.statSync(path.join(dir, 'bin/tool')).ino);
    assert.equal(fs.lstatSync(path.join(dir, 'etc/gone')).isCharacterDevice(), true);
    const conf = fs.statSync(path.join(dir, 'etc/conf'));
    assert.equal(conf.mode & 0o777, 0o600);
    if (process.getuid?.() === 0) assert.equal(conf.uid, 1000);
  });

  it('moves handed-off chunks to the thread and copies the others', async () => {
    const t = await makeTar([{ name: 'f', body: Buffer.alloc(200 * 1024, 'y') }]);
    const kept = chunked(t, 64 * 1024);
    await thread.unpack(Readable.from(kept), dir, 'none');
    assert.ok(kept.every((c) => c.length > 0), 'the caller still has its chunks');
    assert.equal(sha(Buffer.concat(kept)), sha(t));
    fs.rmSync(dir, { recursive: true });
    fs.mkdirSync(dir);
    const moved = chunked(t, 64 * 1024);
    const r = await thread.unpack(Readable.from(moved), dir, 'none', true);
    assert.equal(r.diffId, sha(t));
    assert.ok(moved.every((c) => c.buffer.byteLength === 0), 'handed-off chunks left this thread');
  });

  it('refuses an entry that leaves the layer as LayerEscape, writing nothing outside', async () => {
    const t = await makeTar([
      { name: 'up', type: 'symlink', linkname: '..' },
      { name: 'up/evil', body: 'x' },
    ]);
    await assert.rejects(thread.unpack(Readable.from([t]), dir, 'none'), (e: Error) => e instanceof LayerEscape && /goes through the symlink up/.test(e.message));
    assert.deepEqual(fs.readdirSync(work), ['layer']);
  });

  it('fails with the source error when the source breaks, once the thread stopped writing', async () => {
    const t = await makeTar(Array.from({ length: 200 }, (_, i) => ({ name: `d/f${i}`, body: Buffer.alloc(8 * 1024, i) })));
    const broken = Readable.from(
      (async function* () {
        yield t.subarray(0, t.length / 2);
        throw new Error('connection reset by the registry');
      })(),
    );
    await assert.rejects(thread.unpack(broken, dir, 'none'), /connection reset by the registry/);
    // Settled: nothing writes into the dir any more, so it can go and stays gone.
    fs.rmSync(dir, { recursive: true });
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(fs.existsSync(dir), false);
  });

  it('fails when the source was destroyed before the unpack began', async () => {
    const gone = Readable.from([Buffer.from('x')]);
    gone.destroy(new Error('pull stopped'));
    await assert.rejects(thread.unpack(gone, dir, 'none'), /pull stopped/);
  });

  it('fails on a corrupt stream and serves the next unpack, also after the thread ended', async () => {
    await assert.rejects(thread.unpack(Readable.from([Buffer.from('not gzip at all')]), dir, 'gzip'), /incorrect header check|unexpected end|invalid/i);
    const t = await makeTar([{ name: 'ok', body: 'fine' }]);
    await thread.release();
    const r = await thread.unpack(Readable.from([t]), dir, 'none');
    assert.equal(r.diffId, sha(t));
    assert.equal(fs.readFileSync(path.join(dir, 'ok'), 'utf8'), 'fine');
  });

  it('unpacks several layers at once', async () => {
    const tars = await Promise.all([0, 1, 2, 3].map((i) => makeTar(Array.from({ length: 50 }, (_, j) => ({ name: `l${i}/f${j}`, body: `layer ${i} file ${j}` })))));
    const dirs = tars.map((_, i) => path.join(work, `l${i}`));
    for (const d of dirs) fs.mkdirSync(d);
    const results = await Promise.all(tars.map((t, i) => thread.unpack(Readable.from(chunked(gzipSync(t), 1024)), dirs[i], 'gzip', true)));
    assert.deepEqual(
      results.map((r) => r.diffId),
      tars.map((t) => sha(t)),
    );
    for (const [i, d] of dirs.entries()) assert.equal(fs.readFileSync(path.join(d, `l${i}/f49`), 'utf8'), `layer ${i} file 49`);
  });
});
