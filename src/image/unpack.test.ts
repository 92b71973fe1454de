import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'child_process';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Readable } from 'stream';
import { gzipSync } from 'zlib';
import { InvalidArgument } from '../errors';
import type { FollowedFile } from './blob_ingest';
import { LayerEscape, layerCompression, unpackLayer } from './unpack';
import { makeTar, type TarEntry as Entry } from '../../e2e/fixtures/tar';


const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** buf in chunks of n bytes (as a file or blob reader gives them). */
function chunked(buf: Buffer, n: number): Buffer[] {
  const out: Buffer[] = [];
  for (let o = 0; o < buf.length; o += n) out.push(Buffer.from(buf.subarray(o, o + n)));
  return out;
}

/** A FollowedFile over a file the test writes in steps, as a download into the content store does. */
function growingFile(file: string, data: Buffer) {
  fs.writeFileSync(file, Buffer.alloc(0));
  let written = 0;
  let end: Error | null | undefined;
  const watchers = new Set<{ onPrefix: (n: number) => void; onEnd: (e: Error | null) => void }>();
  const told = { digest: undefined as string | undefined, released: false };
  const followed: FollowedFile = {
    path: file,
    size: data.length,
    watch(onPrefix, onEnd) {
      onPrefix(written);
      if (end !== undefined) {
        onEnd(end);
        return () => undefined;
      }
      const w = { onPrefix, onEnd };
      watchers.add(w);
      return () => watchers.delete(w);
    },
    readAll: (digest) => (told.digest = digest),
    release: () => (told.released = true),
  };
  const grow = (n: number) => {
    fs.appendFileSync(file, data.subarray(written, written + n));
    written = Math.min(data.length, written + n);
    for (const w of watchers) w.onPrefix(written);
  };
  const finish = (e: Error | null) => {
    end = e;
    for (const w of watchers) w.onEnd(e);
  };
  return { followed, grow, finish, told };
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 20));

/** A ustar header block written by hand, for what tar-stream will not write. */
function rawHeader(name: string, type: string, size: number, linkname = ''): Buffer {
  const b = Buffer.alloc(512);
  b.write(name, 0);
  b.write('0000644\0', 100);
  b.write('0000000\0', 108);
  b.write('0000000\0', 116);
  b.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  b.write('00000000000\0', 136);
  b.write(' '.repeat(8), 148);
  b.write(type, 156);
  b.write(linkname, 157);
  b.write('ustar\0', 257);
  b.write('00', 263);
  let sum = 0;
  for (const c of b) sum += c;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return b;
}

/** data, padded to whole blocks. */
const blocks = (data: string | Buffer) => {
  const d = Buffer.from(data);
  return Buffer.concat([d, Buffer.alloc((512 - (d.length % 512)) % 512)]);
};

describe('layer unpack', () => {
  let work: string;
  let dir: string;
  let outside: string;
  beforeEach(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-unpack-'));
    dir = path.join(work, 'layer');
    outside = path.join(work, 'outside');
    fs.mkdirSync(dir);
    fs.mkdirSync(outside);
  });
  afterEach(() => fs.rmSync(work, { recursive: true, force: true }));

  it('unpacks files, dirs, symlinks, hardlinks, devices and fifos with owners, modes and times', async () => {
    const mtime = new Date('2020-01-02T03:04:05Z');
    const t = await makeTar([
      { name: 'etc/', type: 'directory', mode: 0o755, mtime },
      { name: 'etc/passwd', body: 'root:x:0:0::/root:/bin/sh\n', mode: 0o644, uid: 0, gid: 0, mtime },
      { name: 'bin/su', body: 'binary', mode: 0o4755, uid: 0, gid: 0, mtime },
      { name: 'home/app/file', body: 'mine', mode: 0o600, uid: 1000, gid: 1000, mtime },
      { name: 'bin/sh-link', type: 'symlink', linkname: '/bin/su', mtime },
      { name: 'bin/hard', type: 'link', linkname: 'bin/su' },
      { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
      { name: 'dev/loop9', type: 'block-device', devmajor: 7, devminor: 9, mode: 0o660 },
      { name: 'run/fifo', type: 'fifo', mode: 0o644 },
      { name: 'usr/bin/ping', body: 'p', mode: 0o755, pax: { 'SCHILY.xattr.user.note': 'hello' } },
    ]);
    const r = await unpackLayer(Readable.from([gzipSync(t)]), dir, 'gzip');
    assert.equal(r.diffId, sha(t));
    assert.equal(fs.readFileSync(path.join(dir, 'etc/passwd'), 'utf8'), 'root:x:0:0::/root:/bin/sh\n');
    const su = fs.statSync(path.join(dir, 'bin/su'));
    assert.equal(su.mode & 0o7777, 0o4755, 'setuid kept');
    assert.equal(su.mtime.toISOString(), mtime.toISOString());
    const mine = fs.statSync(path.join(dir, 'home/app/file'));
    assert.deepEqual([mine.uid, mine.gid, mine.mode & 0o777], [1000, 1000, 0o600]);
    assert.equal(fs.readlinkSync(path.join(dir, 'bin/sh-link')), '/bin/su');
    assert.equal(fs.statSync(path.join(dir, 'bin/hard')).ino, su.ino);
    const nul = fs.statSync(path.join(dir, 'dev/null'));
    assert.ok(nul.isCharacterDevice());
    assert.equal(nul.rdev, 0x103);
    assert.ok(fs.statSync(path.join(dir, 'dev/loop9')).isBlockDevice());
    assert.ok(fs.statSync(path.join(dir, 'run/fifo')).isFIFO());
    assert.equal(execFileSync('getfattr', ['--only-values', '-n', 'user.note', path.join(dir, 'usr/bin/ping')]).toString(), 'hello');
    assert.equal(fs.statSync(path.join(dir, 'etc')).mtime.toISOString(), mtime.toISOString(), 'dir time set after its entries');
  });

  it('turns OCI whiteouts into overlayfs whiteouts and opaque dirs', async () => {
    const t = await makeTar([
      { name: 'etc/.wh.shadow', body: '' },
      { name: 'var/cache/.wh..wh..opq', body: '' },
      { name: 'var/cache/new', body: 'n' },
    ]);
    await unpackLayer(Readable.from([t]), dir, 'none');
    const wh = fs.statSync(path.join(dir, 'etc/shadow'));
    assert.ok(wh.isCharacterDevice());
    assert.equal(wh.rdev, 0);
    assert.equal(fs.existsSync(path.join(dir, 'etc/.wh.shadow')), false);
    assert.equal(execFileSync('getfattr', ['--only-values', '-n', 'trusted.overlay.opaque', path.join(dir, 'var/cache')]).toString(), 'y');
    assert.equal(fs.readFileSync(path.join(dir, 'var/cache/new'), 'utf8'), 'n');
  });

  it('unpacks zstd layers', async () => {
    const t = await makeTar([{ name: 'z', body: 'zstd works' }]);
    const zst = execFileSync('zstd', ['-q', '-c'], { input: t });
    const r = await unpackLayer(Readable.from([zst]), dir, 'zstd');
    assert.equal(fs.readFileSync(path.join(dir, 'z'), 'utf8'), 'zstd works');
    assert.equal(r.diffId, sha(t));
  });

  it('lets a later entry replace an earlier one', async () => {
    const t = await makeTar([
      { name: 'a', body: 'first' },
      { name: 'a', body: 'second' },
      { name: 'd/x', body: 'x' },
      { name: 'd', body: 'now a file' },
    ]);
    await unpackLayer(Readable.from([t]), dir, 'none');
    assert.equal(fs.readFileSync(path.join(dir, 'a'), 'utf8'), 'second');
    assert.equal(fs.readFileSync(path.join(dir, 'd'), 'utf8'), 'now a file');
  });

  it('keeps the layer order: a link, a whiteout, a file replaced, a file that became a dir', async () => {
    const files: Entry[] = Array.from({ length: 20 }, (_, i) => ({ name: `d/f${i}`, body: `file ${i}` }));
    const t = await makeTar([
      ...files,
      { name: 'd/hard', type: 'link', linkname: 'd/f3' },
      { name: 'd/.wh.f5', body: '' },
      { name: 'd/f7', body: 'replaced' },
      { name: 'd/f9/', type: 'directory' },
      { name: 'd/f9/inner', body: 'under a file that became a dir' },
      { name: 'e/last', body: 'after them' },
    ]);
    await unpackLayer(Readable.from([t]), dir, 'none');
    assert.equal(fs.statSync(path.join(dir, 'd/hard')).ino, fs.statSync(path.join(dir, 'd/f3')).ino);
    assert.equal(fs.lstatSync(path.join(dir, 'd/f5')).isCharacterDevice(), true, 'the whiteout replaced f5');
    assert.equal(fs.readFileSync(path.join(dir, 'd/f7'), 'utf8'), 'replaced');
    assert.equal(fs.readFileSync(path.join(dir, 'd/f9/inner'), 'utf8'), 'under a file that became a dir');
    assert.equal(fs.readFileSync(path.join(dir, 'd/f19'), 'utf8'), 'file 19');
    assert.equal(fs.readFileSync(path.join(dir, 'e/last'), 'utf8'), 'after them');
  });

  const hostile: [string, Entry[], RegExp][] = [
    ['an absolute path', [{ name: '/etc/evil', body: 'x' }], /absolute path/],
    ['".." out of the layer', [{ name: '../outside/evil', body: 'x' }], /"\.\." leaves the layer/],
    ['".." in the middle', [{ name: 'a/../../outside/evil', body: 'x' }], /"\.\." leaves the layer/],
    ['a write through a symlink to an absolute dir', [{ name: 'link', type: 'symlink', linkname: '/' }, { name: 'link/outside/evil', body: 'x' }], /goes through the symlink link/],
    ['a write through a relative symlink', [{ name: 'up', type: 'symlink', linkname: '../outside' }, { name: 'up/evil', body: 'x' }], /goes through the symlink up/],
    ['a hardlink to a file outside', [{ name: 'h', type: 'link', linkname: '../outside/target' }], /"\.\." leaves the layer/],
    ['a hardlink through a symlink', [{ name: 'l', type: 'symlink', linkname: '../outside' }, { name: 'h', type: 'link', linkname: 'l/target' }], /goes through the symlink l/],
  ];
  for (const [what, entries, re] of hostile) {
    it(`refuses ${what} and writes nothing outside`, async () => {
      fs.writeFileSync(path.join(outside, 'target'), 'precious');
      const t = await makeTar(entries);
      await assert.rejects(unpackLayer(Readable.from([t]), dir, 'none'), (e: Error) => e instanceof LayerEscape && re.test(e.message));
      assert.deepEqual(fs.readdirSync(outside), ['target']);
      assert.equal(fs.readFileSync(path.join(outside, 'target'), 'utf8'), 'precious');
    });
  }

  it('replaces a symlink with the file a later entry names, instead of writing through it', async () => {
    fs.writeFileSync(path.join(outside, 'target'), 'precious');
    const t = await makeTar([
      { name: 'f', type: 'symlink', linkname: path.join(outside, 'target') },
      { name: 'f', body: 'overwritten?' },
    ]);
    await unpackLayer(Readable.from([t]), dir, 'none');
    assert.equal(fs.readFileSync(path.join(outside, 'target'), 'utf8'), 'precious');
    assert.equal(fs.lstatSync(path.join(dir, 'f')).isFile(), true);
  });

  it('does not let a layer fake overlay metadata through xattrs', async () => {
    const t = await makeTar([{ name: 'd/', type: 'directory', pax: { 'SCHILY.xattr.trusted.overlay.opaque': 'y' } }]);
    await unpackLayer(Readable.from([t]), dir, 'none');
    const r = spawnSync('getfattr', ['-n', 'trusted.overlay.opaque', path.join(dir, 'd')]);
    assert.equal(r.error, undefined, 'getfattr runs');
    assert.match(r.stderr.toString(), /No such attribute/);
  });

  it('fails on a corrupt or truncated stream', async () => {
    const t = await makeTar([{ name: 'big', body: 'x'.repeat(100000) }]);
    const gz = gzipSync(t);
    await assert.rejects(unpackLayer(Readable.from([gz.subarray(0, gz.length / 2)]), dir, 'gzip'), (e: Error) => e instanceof InvalidArgument && /unexpected end/.test(e.message));
    await assert.rejects(unpackLayer(Readable.from([Buffer.from('not gzip at all')]), path.join(work, 'outside'), 'gzip'), (e: Error) => e instanceof InvalidArgument && /incorrect header check/.test(e.message));
  });

  it('fails when the inflating thread finds the data cut short, while the files of the first megabytes are being made', async () => {
    const lines = Array.from({ length: 200000 }, (_, i) => `line ${i} of a log that compresses ${i % 7}\n`).join('');
    const t = await makeTar([
      { name: 'first', body: lines },
      { name: 'second', body: lines },
    ]);
    const gz = gzipSync(t);
    assert.ok(t.length > 4 * 1024 * 1024, 'more than the slots between the two threads hold');
    const cut = gz.subarray(0, Math.floor(gz.length * 0.8));
    await assert.rejects(unpackLayer(Readable.from(chunked(cut, 64 * 1024)), dir, 'gzip'), (e: Error) => e instanceof InvalidArgument && /gzip: unexpected end of file/.test(e.message));
    assert.ok(fs.statSync(path.join(dir, 'first')).size > 0, 'the first file was being made meanwhile');
  });

  it('unpacks a layer of many chunks: a big file, links, a whiteout, and the diff_id', async () => {
    const big = Buffer.alloc(3 * 1024 * 1024 + 17, 'x');
    const t = await makeTar([
      { name: 'bin/', type: 'directory', mode: 0o755 },
      { name: 'bin/tool', body: big, mode: 0o755 },
      { name: 'bin/link', type: 'symlink', linkname: 'tool' },
      { name: 'bin/hard', type: 'link', linkname: 'bin/tool' },
      { name: 'etc/.wh.gone', body: '' },
      { name: 'etc/conf', body: 'a=1\n', mode: 0o600, uid: 1000, gid: 1000 },
    ]);
    const r = await unpackLayer(Readable.from(chunked(gzipSync(t), 64 * 1024)), dir, 'gzip');
    assert.equal(r.diffId, sha(t));
    assert.deepEqual(fs.readFileSync(path.join(dir, 'bin/tool')), big);
    assert.equal(fs.readlinkSync(path.join(dir, 'bin/link')), 'tool');
    assert.equal(fs.statSync(path.join(dir, 'bin/hard')).ino, fs.statSync(path.join(dir, 'bin/tool')).ino);
    assert.equal(fs.lstatSync(path.join(dir, 'etc/gone')).isCharacterDevice(), true);
    const conf = fs.statSync(path.join(dir, 'etc/conf'));
    assert.equal(conf.mode & 0o777, 0o600);
    if (process.getuid?.() === 0) assert.equal(conf.uid, 1000);
  });

  it('reads PAX long names, owners and times, and hashes what follows the end blocks', async () => {
    const long = `deep/${'n'.repeat(120)}/${'m'.repeat(120)}`;
    const t = await makeTar([
      { name: long, body: 'long', pax: { uid: '70000', gid: '70001', mtime: '1600000000.5' } },
      { name: 'l', type: 'symlink', linkname: `${'t'.repeat(150)}` },
    ]);
    const withJunk = Buffer.concat([t, Buffer.alloc(4096)]);
    const r = await unpackLayer(Readable.from(chunked(gzipSync(withJunk), 1000)), dir, 'gzip');
    assert.equal(r.diffId, sha(withJunk));
    const st = fs.statSync(path.join(dir, long));
    assert.equal(fs.readFileSync(path.join(dir, long), 'utf8'), 'long');
    if (process.getuid?.() === 0) assert.deepEqual([st.uid, st.gid], [70000, 70001]);
    assert.equal(st.mtimeMs, 1600000000500);
    assert.equal(fs.readlinkSync(path.join(dir, 'l')), 't'.repeat(150));
  });

  it('unpacks gzip of several members', async () => {
    const t = await makeTar([{ name: 'a', body: 'x'.repeat(5000) }, { name: 'b', body: 'y'.repeat(5000) }]);
    const r = await unpackLayer(Readable.from([Buffer.concat([gzipSync(t.subarray(0, 3000)), gzipSync(t.subarray(3000))])]), dir, 'gzip');
    assert.equal(r.diffId, sha(t));
    assert.equal(fs.readFileSync(path.join(dir, 'b'), 'utf8'), 'y'.repeat(5000));
  });

  it('fails with the source error when the source breaks, once nothing writes any more', async () => {
    const t = await makeTar(Array.from({ length: 200 }, (_, i) => ({ name: `d/f${i}`, body: Buffer.alloc(8 * 1024, i) })));
    const broken = Readable.from(
      (async function* () {
        yield t.subarray(0, t.length / 2);
        throw new Error('connection reset by the registry');
      })(),
    );
    await assert.rejects(unpackLayer(broken, dir, 'none'), /connection reset by the registry/);
    // Settled: nothing writes into the dir any more, so it can go and stays gone.
    fs.rmSync(dir, { recursive: true });
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(fs.existsSync(dir), false);
  });

  it('fails when the source was destroyed before the unpack began', async () => {
    const gone = Readable.from([Buffer.from('x')]);
    gone.destroy(new Error('pull stopped'));
    await assert.rejects(unpackLayer(gone, dir, 'none'), /pull stopped/);
  });

  it('unpacks several layers at once', async () => {
    const tars = await Promise.all([0, 1, 2, 3].map((i) => makeTar(Array.from({ length: 50 }, (_, j) => ({ name: `l${i}/f${j}`, body: `layer ${i} file ${j}` })))));
    const dirs = tars.map((_, i) => path.join(work, `l${i}`));
    for (const d of dirs) fs.mkdirSync(d);
    const results = await Promise.all(tars.map((t, i) => unpackLayer(Readable.from(chunked(gzipSync(t), 1024)), dirs[i], 'gzip')));
    assert.deepEqual(
      results.map((r) => r.diffId),
      tars.map((t) => sha(t)),
    );
    for (const [i, d] of dirs.entries()) assert.equal(fs.readFileSync(path.join(d, `l${i}/f49`), 'utf8'), `layer ${i} file 49`);
  });

  it('refuses a malformed tar as InvalidArgument, naming what is wrong', async () => {
    const t = await makeTar([{ name: 'f', body: 'x' }]);
    const bad = Buffer.from(t);
    bad[148] = '9'.charCodeAt(0); // the checksum field
    await assert.rejects(unpackLayer(Readable.from([bad]), dir, 'none'), (e: Error) => e instanceof InvalidArgument && /bad checksum/.test(e.message));
    await assert.rejects(unpackLayer(Readable.from([t.subarray(0, 700)]), dir, 'none'), (e: Error) => e instanceof InvalidArgument && /unexpected end of data/.test(e.message));
  });

  it('reads a blob file itself while it is written, and reports the digest of the whole blob', async () => {
    const t = await makeTar([
      { name: 'big', body: Buffer.alloc(3 * 1024 * 1024, 'b') },
      { name: 'small', body: 'end' },
    ]);
    const gz = gzipSync(t);
    const g = growingFile(path.join(work, 'blob'), gz);
    const unpacking = unpackLayer(g.followed, dir, 'gzip');
    for (let i = 0; i < 5; i++) {
      await tick();
      g.grow(Math.ceil(gz.length / 5));
    }
    g.finish(null);
    const r = await unpacking;
    assert.equal(r.diffId, sha(t));
    assert.equal(g.told.digest, sha(gz), 'the blob digest, read by skiff-unpack');
    assert.equal(fs.readFileSync(path.join(dir, 'small'), 'utf8'), 'end');
    assert.equal(fs.statSync(path.join(dir, 'big')).size, 3 * 1024 * 1024);
  });

  it('stops with the download error when a followed blob fails, and releases it', async () => {
    const t = await makeTar(Array.from({ length: 100 }, (_, i) => ({ name: `f${i}`, body: Buffer.alloc(20000, i) })));
    const g = growingFile(path.join(work, 'blob'), t);
    const unpacking = unpackLayer(g.followed, dir, 'none');
    await tick();
    g.grow(t.length >> 1);
    await tick();
    g.finish(new Error('the registry reset the connection'));
    await assert.rejects(unpacking, /the registry reset the connection/);
    assert.deepEqual(g.told, { digest: undefined, released: true });
  });

  it('reads links and devices as header-only whatever their size says, drops global PAX headers, and takes an old entry named with a slash for a dir, as Go\'s archive/tar', async () => {
    const globalPax = '23 path=global-renamed\n';
    const t = Buffer.concat([
      rawHeader('pax_global_header', 'g', globalPax.length),
      blocks(globalPax),
      rawHeader('l', '2', 1024, 'target'),
      rawHeader('f', '0', 5),
      blocks('hello'),
      rawHeader('olddir/', '\0', 0),
      Buffer.alloc(1024),
    ]);
    await unpackLayer(Readable.from([t]), dir, 'none');
    assert.equal(fs.readlinkSync(path.join(dir, 'l')), 'target');
    assert.equal(fs.readFileSync(path.join(dir, 'f'), 'utf8'), 'hello');
    assert.ok(fs.statSync(path.join(dir, 'olddir')).isDirectory(), 'a pre-POSIX entry named with a slash is a dir');
    assert.deepEqual(fs.readdirSync(dir).sort(), ['f', 'l', 'olddir']);
  });

  it('reads GNU long names and long link targets (L and K entries)', async () => {
    const long = `gnu/${'x'.repeat(150)}`;
    const target = `/${'t'.repeat(180)}`;
    const t = Buffer.concat([
      rawHeader('././@LongLink', 'L', long.length + 1),
      blocks(`${long}\0`),
      rawHeader('short-name', '0', 3),
      blocks('abc'),
      rawHeader('././@LongLink', 'K', target.length + 1),
      blocks(`${target}\0`),
      rawHeader('gnu/link', '2', 0, 'short-target'),
      Buffer.alloc(1024),
    ]);
    await unpackLayer(Readable.from([t]), dir, 'none');
    assert.equal(fs.readFileSync(path.join(dir, long), 'utf8'), 'abc');
    assert.equal(fs.readlinkSync(path.join(dir, 'gnu/link')), target);
    assert.equal(fs.existsSync(path.join(dir, 'short-name')), false);
  });

  it('follows a zstd blob while it is written', async () => {
    const t = await makeTar([{ name: 'z', body: Buffer.alloc(2 * 1024 * 1024, 'z') }]);
    const zst = execFileSync('zstd', ['-q', '-c'], { input: t });
    const g = growingFile(path.join(work, 'blob'), zst);
    const unpacking = unpackLayer(g.followed, dir, 'zstd');
    await tick();
    g.grow(zst.length >> 1);
    await tick();
    g.grow(zst.length);
    g.finish(null);
    assert.equal((await unpacking).diffId, sha(t));
    assert.equal(g.told.digest, sha(zst));
    assert.equal(fs.statSync(path.join(dir, 'z')).size, 2 * 1024 * 1024);
  });

  it('refuses a PAX record whose length does not hold it, and ignores what follows the last gzip member', async () => {
    const bad = '3 path=x\n';
    const t = Buffer.concat([rawHeader('PaxHeader/f', 'x', bad.length), blocks(bad), rawHeader('f', '0', 0), Buffer.alloc(1024)]);
    await assert.rejects(unpackLayer(Readable.from([t]), dir, 'none'), (e: Error) => e instanceof InvalidArgument && /bad PAX record/.test(e.message));
    const good = await makeTar([{ name: 'g', body: 'gzip then junk' }]);
    const r = await unpackLayer(Readable.from([gzipSync(good), Buffer.from('trailing junk, not gzip')]), path.join(work, 'outside'), 'gzip');
    assert.equal(r.diffId, sha(good));
    assert.equal(fs.readFileSync(path.join(work, 'outside', 'g'), 'utf8'), 'gzip then junk');
  });

  it('knows the layer media types', () => {
    assert.equal(layerCompression('application/vnd.oci.image.layer.v1.tar+zstd'), 'zstd');
    assert.equal(layerCompression('application/vnd.docker.image.rootfs.diff.tar.gzip'), 'gzip');
    assert.throws(() => layerCompression('application/x-evil'), (e: Error) => e instanceof InvalidArgument);
  });
});
