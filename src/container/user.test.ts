import assert from 'node:assert/strict';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { InvalidArgument } from '../errors';
import { imageSupplementalGroups, parseGroup, parsePasswd, PasswdDb, readPasswdDb, resolveUser } from './user';

const PASSWD = `# the image's users
root:x:0:0:root:/root:/bin/sh

daemon:x:1:1::/usr/sbin:/usr/sbin/nologin
app:x:1000:1000:App:/home/app:/bin/sh
broken line without colons
short:x:5
bad:x:notanumber:1:::
+nisuser::::::
huge:x:4294967294:1000::/:/bin/sh
app:x:2222:2222:duplicate, first wins:/:/bin/sh
`;
const GROUP = `root:x:0:
daemon:x:1:app
app:x:1000:app
staff:x:50: app , other
wheel:x:10:root
nogid:x:
biggid:x:3000000000:app2
`;

const db: PasswdDb = { users: parsePasswd(PASSWD), groups: parseGroup(GROUP) };
const invalid = (re: RegExp) => (e: unknown) => e instanceof InvalidArgument && re.test((e as Error).message);

describe('container users: /etc/passwd and /etc/group', () => {
  it('parses entries and skips comments, blank, malformed and NIS lines', () => {
    assert.deepEqual(
      db.users.map((u) => [u.name, u.uid, u.gid, u.home]),
      [
        ['root', 0, 0, '/root'],
        ['daemon', 1, 1, '/usr/sbin'],
        ['app', 1000, 1000, '/home/app'],
        ['huge', 4294967294, 1000, '/'],
        ['app', 2222, 2222, '/'],
      ],
    );
    assert.deepEqual(
      db.groups.map((g) => [g.name, g.gid, g.members]),
      [
        ['root', 0, []],
        ['daemon', 1, ['app']],
        ['app', 1000, ['app']],
        ['staff', 50, ['app', 'other']],
        ['wheel', 10, ['root']],
        ['biggid', 3000000000, ['app2']],
      ],
    );
  });

  it('resolves every USER form', () => {
    assert.deepEqual(resolveUser(db, ''), { uid: 0, gid: 0 });
    assert.deepEqual(resolveUser(db, 'app'), { uid: 1000, gid: 1000 }, 'a name: the first entry');
    assert.deepEqual(resolveUser(db, '1000'), { uid: 1000, gid: 1000 }, 'a listed uid takes its primary gid');
    assert.deepEqual(resolveUser(db, '4242'), { uid: 4242, gid: 0 }, 'an unlisted uid gets gid 0');
    assert.deepEqual(resolveUser(db, 'app:staff'), { uid: 1000, gid: 50 });
    assert.deepEqual(resolveUser(db, 'app:77'), { uid: 1000, gid: 77 });
    assert.deepEqual(resolveUser(db, '1000:2000'), { uid: 1000, gid: 2000 });
    assert.deepEqual(resolveUser(db, '1:staff'), { uid: 1, gid: 50 });
  });

  it('refuses unknown names and malformed USER strings naming them', () => {
    assert.throws(() => resolveUser(db, 'nobody'), invalid(/user "nobody" not found/));
    assert.throws(() => resolveUser(db, 'app:nogroup'), invalid(/group "nogroup" not found/));
    assert.throws(() => resolveUser(db, 'a:b:c'), invalid(/must be user, uid/));
    assert.throws(() => resolveUser(db, ':staff'), invalid(/names no user/));
    assert.throws(() => resolveUser(db, 'app:'), invalid(/empty group/));
    assert.throws(() => resolveUser({ users: [], groups: [] }, 'app'), invalid(/user "app" not found/));
  });

  it('refuses ids above 2^31-1 instead of wrapping them', () => {
    assert.throws(() => resolveUser(db, '2147483648'), invalid(/uid 2147483648 is out of range/));
    assert.throws(() => resolveUser(db, '4294967296'), invalid(/out of range/));
    assert.throws(() => resolveUser(db, '99999999999999999999999'), invalid(/out of range/));
    assert.throws(() => resolveUser(db, '0:2147483648'), invalid(/gid 2147483648 is out of range/));
    assert.throws(() => resolveUser(db, 'huge'), invalid(/uid of user "huge" 4294967294 is out of range/));
    assert.throws(() => resolveUser(db, 'app:biggid'), invalid(/gid of group "biggid"/));
    assert.deepEqual(resolveUser(db, '2147483647'), { uid: 2147483647, gid: 0 });
  });

  it("finds the image's supplemental groups by name or uid, not the user's own group", () => {
    assert.deepEqual(imageSupplementalGroups(db, 'app'), [1, 50]);
    assert.deepEqual(imageSupplementalGroups(db, '1000'), [1, 50]);
    assert.deepEqual(imageSupplementalGroups(db, '0'), [10]);
    assert.deepEqual(imageSupplementalGroups(db, '4242'), [], 'an unlisted uid has no name to match');
    assert.throws(() => imageSupplementalGroups(db, 'app2'), invalid(/gid of group "biggid"/));
  });
});

describe('readPasswdDb', () => {
  let dir: string;
  let root: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-user-'));
    root = path.join(dir, 'rootfs');
    fs.mkdirSync(path.join(root, 'etc'), { recursive: true });
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('reads both files', async () => {
    fs.writeFileSync(path.join(root, 'etc/passwd'), 'app:x:1000:1000::/home/app:/bin/sh\n');
    fs.writeFileSync(path.join(root, 'etc/group'), 'staff:x:50:app\n');
    const got = await readPasswdDb(root);
    assert.deepEqual(got.users, [{ name: 'app', uid: 1000, gid: 1000, home: '/home/app' }]);
    assert.deepEqual(got.groups, [{ name: 'staff', gid: 50, members: ['app'] }]);
  });

  it('gives an empty db when the files are missing, or /etc is not a directory', async () => {
    assert.deepEqual(await readPasswdDb(root), { users: [], groups: [] });
    fs.rmSync(path.join(root, 'etc'), { recursive: true });
    fs.writeFileSync(path.join(root, 'etc'), 'a file');
    assert.deepEqual(await readPasswdDb(root), { users: [], groups: [] });
  });

  it('resolves symlinks inside the rootfs, never on the host', async () => {
    // A host file the image must not be able to name.
    const hostFile = path.join(dir, 'host-passwd');
    fs.writeFileSync(hostFile, 'evil:x:0:0::/:/bin/sh\n');
    fs.symlinkSync(hostFile, path.join(root, 'etc/passwd'));
    fs.symlinkSync(`../../../../../../../..${hostFile}`, path.join(root, 'etc/group'));
    assert.deepEqual(await readPasswdDb(root), { users: [], groups: [] });
    // The same absolute target made to exist inside the rootfs is what gets read.
    fs.mkdirSync(path.join(root, path.dirname(hostFile)), { recursive: true });
    fs.writeFileSync(path.join(root, hostFile), 'inside:x:7:7::/:/bin/sh\n');
    const got = await readPasswdDb(root);
    assert.deepEqual(got.users.map((u) => u.name), ['inside']);
    // ".." above the rootfs stops at it: the relative link lands on the same file.
    assert.deepEqual(got.groups.map((g) => [g.name, g.gid]), [['inside', 7]]);
  });

  it('follows an /etc that is itself a symlink inside the rootfs', async () => {
    fs.rmSync(path.join(root, 'etc'), { recursive: true });
    fs.mkdirSync(path.join(root, 'private/etc'), { recursive: true });
    fs.writeFileSync(path.join(root, 'private/etc/passwd'), 'app:x:1000:1000::/:/bin/sh\n');
    fs.symlinkSync('/private/etc', path.join(root, 'etc'));
    assert.deepEqual((await readPasswdDb(root)).users.map((u) => u.uid), [1000]);
  });

  it('refuses symlink loops and oversized files, and skips FIFOs without blocking', async () => {
    fs.symlinkSync('passwd2', path.join(root, 'etc/passwd'));
    fs.symlinkSync('passwd', path.join(root, 'etc/passwd2'));
    await assert.rejects(readPasswdDb(root), invalid(/too many levels of symbolic links/));
    fs.rmSync(path.join(root, 'etc/passwd'));
    fs.rmSync(path.join(root, 'etc/passwd2'));
    execFileSync('mkfifo', [path.join(root, 'etc/passwd')]);
    assert.deepEqual(await readPasswdDb(root), { users: [], groups: [] });
    fs.rmSync(path.join(root, 'etc/passwd'));
    fs.closeSync(fs.openSync(path.join(root, 'etc/group'), 'w'));
    fs.truncateSync(path.join(root, 'etc/group'), 17 * 1024 * 1024);
    await assert.rejects(readPasswdDb(root), invalid(/larger than/));
  });

  it('needs an absolute rootfs', async () => {
    await assert.rejects(readPasswdDb('relative/rootfs'), invalid(/must be an absolute path/));
  });
});
