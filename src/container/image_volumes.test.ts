// Image volume sub paths: checked for shape before anything is mounted, then resolved
// inside the image's view with its symbolic links followed within it, never out of it.
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { GrpcCode, grpcCode } from '../errors';
import { checkSubPath, resolveSubPath } from './image_volumes';

const FIELD = 'config.mounts[0].image_sub_path';

describe('image volume sub paths', () => {
  let root: string;
  let outside: string;

  before(() => {
    outside = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-imgvol-'));
    root = path.join(outside, 'image');
    // The image: /usr/share/data (a directory), /etc/conf (a file), and links of every kind.
    fs.mkdirSync(path.join(root, 'usr/share/data/deep'), { recursive: true });
    fs.mkdirSync(path.join(root, 'etc'), { recursive: true });
    fs.writeFileSync(path.join(root, 'etc/conf'), 'x');
    fs.mkdirSync(path.join(outside, 'secret'));
    const link = (target: string, at: string) => fs.symlinkSync(target, path.join(root, at));
    link('usr/share/data', 'data'); // relative, inside
    link('/usr/share', 'share'); // absolute: the image's own root
    link('../share/data/deep', 'usr/lib'); // relative with "..", inside
    link('../../secret', 'etc/escape'); // climbs out of the image
    link('/../../secret', 'rooted-escape'); // absolute, then climbs above the image's root
    link('escape', 'etc/via'); // a link to a link that climbs out
    link('loop-b', 'loop-a');
    link('loop-a', 'loop-b');
    link('nowhere', 'dangling');
    link('etc/conf', 'conf');
  });
  after(() => fs.rmSync(outside, { recursive: true, force: true }));

  const resolves = async (sub: string, want: string) => assert.equal(await resolveSubPath(root, checkSubPath(sub, FIELD), FIELD), want, sub);
  const refused = async (sub: string, code: GrpcCode, message: RegExp) =>
    assert.rejects(resolveSubPath(root, checkSubPath(sub, FIELD), FIELD), (e: Error) => grpcCode(e) === code && message.test(e.message) && e.message.includes(FIELD));

  it('resolves a plain directory, and ignores "." and repeated or trailing slashes', async () => {
    await resolves('usr/share/data', 'usr/share/data');
    await resolves('./usr//share/./data/', 'usr/share/data');
    await resolves('', '');
    await resolves('.', '');
  });

  it('follows links inside the image: relative, absolute (from the image root), and with ".." that stays inside', async () => {
    await resolves('data', 'usr/share/data');
    await resolves('data/deep', 'usr/share/data/deep');
    await resolves('share/data', 'usr/share/data');
    await resolves('usr/lib', 'usr/share/data/deep');
  });

  it('refuses a link that resolves out of the image with INVALID_ARGUMENT, however it gets there', async () => {
    await refused('etc/escape', GrpcCode.INVALID_ARGUMENT, /resolves through a symbolic link to outside the image/);
    await refused('etc/via', GrpcCode.INVALID_ARGUMENT, /outside the image/);
    await refused('rooted-escape', GrpcCode.INVALID_ARGUMENT, /outside the image/);
    await refused('loop-a', GrpcCode.INVALID_ARGUMENT, /too many levels of symbolic links/);
  });

  it('refuses an absolute path, "..", or a NUL before looking at the image', () => {
    for (const [sub, message] of [
      ['/usr/share', /must be a path relative to the image's root/],
      ['..', /must not contain "\.\."/],
      ['usr/../../x', /must not contain "\.\."/],
      ['usr\0x', /NUL/],
    ] as const)
      assert.throws(() => checkSubPath(sub, FIELD), (e: Error) => grpcCode(e) === GrpcCode.INVALID_ARGUMENT && message.test(e.message) && e.message.startsWith(`ImageVolumeMountFailed: ${FIELD}`));
  });

  it('answers a missing path or a file as containerd does (UNKNOWN), naming the field and what is missing', async () => {
    await refused('usr/share/none', GrpcCode.UNKNOWN, /"usr\/share\/none" does not exist in the image \(no "usr\/share\/none"\)/);
    await refused('dangling', GrpcCode.UNKNOWN, /does not exist in the image \(no "nowhere"\)/);
    await refused('etc/conf', GrpcCode.UNKNOWN, /"etc\/conf" is not a directory/);
    await refused('conf', GrpcCode.UNKNOWN, /is not a directory/);
    await refused('etc/conf/x', GrpcCode.UNKNOWN, /is not a directory/);
  });
});
