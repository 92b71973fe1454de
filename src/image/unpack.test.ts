import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'child_process';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Readable } from 'stream';
import { gzipSync } from 'zlib';
import { InvalidArgument } from '../errors';
import { LayerEscape, layerCompression, unpackLayer } from './unpack';
import { makeTar, type TarEntry as Entry } from '../../e2e/fixtures/tar';


const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

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

  it('keeps the layer order while small files are made several at once', async () => {
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
    await assert.rejects(unpackLayer(Readable.from([gz.subarray(0, gz.length / 2)]), dir, 'gzip'));
    await assert.rejects(unpackLayer(Readable.from([Buffer.from('not gzip at all')]), path.join(work, 'outside'), 'gzip'));
  });

  it('knows the layer media types', () => {
    assert.equal(layerCompression('application/vnd.oci.image.layer.v1.tar+zstd'), 'zstd');
    assert.equal(layerCompression('application/vnd.docker.image.rootfs.diff.tar.gzip'), 'gzip');
    assert.throws(() => layerCompression('application/x-evil'), (e: Error) => e instanceof InvalidArgument);
  });
});
