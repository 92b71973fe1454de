import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tar from 'tar-stream';
import { InvalidArgument } from '../errors';
import { lsetxattr, mknod, S_IFCHR, S_IFIFO } from '../sys/libc';
import { applyRootfsDiff, writeRootfsDiff } from './rootfs_diff';

async function tarNames(file: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const extract = tar.extract();
  const done = new Promise<void>((resolve, reject) => {
    extract.on('entry', (h, stream, next) => {
      out.set(h.name, h.type);
      stream.on('end', () => next());
      stream.resume();
    });
    extract.on('finish', resolve);
    extract.on('error', reject);
  });
  extract.end(fs.readFileSync(file));
  await done;
  return out;
}

async function tarOf(entries: { name: string; data?: string; type?: 'file' | 'symlink'; linkname?: string }[]): Promise<string> {
  const f = path.join(os.tmpdir(), `skiff-diff-${process.pid}-${Math.random().toString(16).slice(2)}.tar`);
  const pack = tar.pack();
  for (const e of entries) pack.entry({ name: e.name, type: e.type ?? 'file', linkname: e.linkname }, e.data ?? '');
  pack.finalize();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => chunks.push(c as Buffer));
  await new Promise<void>((resolve) => pack.on('end', () => resolve()));
  fs.writeFileSync(f, Buffer.concat(chunks));
  return f;
}

describe('checkpoint: the writable layer (rootfs-diff.tar, deleted.files)', function () {
  if (process.geteuid?.() !== 0) return; // whiteouts and trusted.* xattrs need root
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-diff-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('writes files, links and fifos of an upper dir, and lists its whiteouts and opaque dirs as deleted', async () => {
    const upper = path.join(dir, 'upper');
    fs.mkdirSync(path.join(upper, 'etc'), { recursive: true });
    fs.writeFileSync(path.join(upper, 'etc', 'new.conf'), 'x=1\n');
    fs.symlinkSync('new.conf', path.join(upper, 'etc', 'link'));
    mknod(path.join(upper, 'etc', 'group'), S_IFCHR | 0o600, 0n); // a whiteout
    fs.mkdirSync(path.join(upper, 'var', 'cache'), { recursive: true });
    lsetxattr(path.join(upper, 'var', 'cache'), 'trusted.overlay.opaque', Buffer.from('y'));
    fs.writeFileSync(path.join(upper, 'var', 'cache', 'kept'), '');
    mknod(path.join(upper, 'var', 'fifo'), S_IFIFO | 0o644, 0n);
    const out = path.join(dir, 'diff.tar');
    const { deleted } = await writeRootfsDiff(upper, out);
    assert.deepEqual(deleted.sort(), ['etc/group', 'var/cache']);
    assert.deepEqual(
      [...(await tarNames(out))].sort(),
      [['etc', 'directory'], ['etc/link', 'symlink'], ['etc/new.conf', 'file'], ['var', 'directory'], ['var/cache', 'directory'], ['var/cache/kept', 'file'], ['var/fifo', 'fifo']].sort(),
    );
  });

  it('applies it to a new rootfs: deletions first, then the files', async () => {
    const root = path.join(dir, 'root');
    fs.mkdirSync(path.join(root, 'etc'), { recursive: true });
    fs.writeFileSync(path.join(root, 'etc', 'group'), 'root:x:0:\n');
    const diff = await tarOf([{ name: 'etc/new.conf', data: 'x=1\n' }]);
    try {
      await applyRootfsDiff(root, ['etc/group', 'etc/not-there'], diff);
    } finally {
      fs.rmSync(diff);
    }
    assert.ok(!fs.existsSync(path.join(root, 'etc', 'group')));
    assert.equal(fs.readFileSync(path.join(root, 'etc', 'new.conf'), 'utf8'), 'x=1\n');
  });

  it('refuses what would leave the rootfs: ".." or a symlink in deleted.files, ".." in the tar, a list that is not one', async () => {
    const root = path.join(dir, 'root');
    const outside = path.join(dir, 'outside');
    fs.mkdirSync(root);
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(outside, 'victim'), 'keep');
    fs.symlinkSync(outside, path.join(root, 'escape'));
    for (const bad of [['../outside/victim'], ['escape/victim'], 'etc/group', [7]])
      await assert.rejects(applyRootfsDiff(root, bad, null), InvalidArgument, JSON.stringify(bad));
    const diff = await tarOf([{ name: '../outside/planted', data: 'x' }]);
    try {
      await assert.rejects(applyRootfsDiff(root, [], diff), InvalidArgument);
    } finally {
      fs.rmSync(diff);
    }
    const through = await tarOf([{ name: 'escape/planted', data: 'x' }]);
    try {
      await assert.rejects(applyRootfsDiff(root, [], through), InvalidArgument);
    } finally {
      fs.rmSync(through);
    }
    assert.deepEqual(fs.readdirSync(outside), ['victim']);
    assert.equal(fs.readFileSync(path.join(outside, 'victim'), 'utf8'), 'keep');
  });
});
