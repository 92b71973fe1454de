// The images critest v1.32 pulls, rebuilt locally under the same names: a busybox that
// behaves like upstream's (Debian's dynamic busybox with the host's libc, unpacked from
// its .deb), a busybox httpd standing in for the nginx web servers, the USER variants,
// and the tag/list test images. Pushed to a loopback registry that skiff reaches
// through hosts.toml mirrors of registry.k8s.io and gcr.io.
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { layerOf, Layer } from '../fixtures/images';
import type { TestRegistry } from '../fixtures/registry';

const PASSWD = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
`;
const GROUP = `root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
wheel:x:10:root
mail:x:12:
www-data:x:33:
operator:x:37:
users:x:100:
nogroup:x:65534:
`;

/** The host's libraries a binary links against, copied into root at the same paths. */
export function copyLibs(binary: string, root: string): void {
  for (const [lib] of execFileSync('ldd', [binary]).toString().matchAll(/(\/\S+\.so[.\d]*)/g)) {
    const dst = path.join(root, lib);
    if (fs.existsSync(dst)) continue;
    fs.mkdirSync(path.dirname(dst), { recursive: true });
    fs.copyFileSync(fs.realpathSync(lib), dst);
  }
}

export function copyWithLibs(binary: string, root: string): void {
  const dst = path.join(root, binary);
  fs.mkdirSync(path.dirname(dst), { recursive: true });
  fs.copyFileSync(binary, dst);
  fs.chmodSync(dst, 0o755);
  copyLibs(binary, root);
}

/** A busybox root like upstream's busybox image: dynamic busybox (from work/deb/*.deb,
 * downloaded there when missing), its libraries, /etc. */
export function busyboxRoot(work: string): string {
  const deb = path.join(work, 'deb');
  fs.mkdirSync(deb, { recursive: true });
  // Downloaded once: a caller without network (a namespace of its own) fetches it first.
  if (!fs.readdirSync(deb).some((f) => f.endsWith('.deb'))) execFileSync('apt-get', ['download', 'busybox'], { cwd: deb, stdio: 'ignore' });
  const file = fs.readdirSync(deb).find((f) => f.endsWith('.deb'));
  if (!file) throw new Error('apt-get download busybox gave no .deb');
  execFileSync('dpkg-deb', ['-x', path.join(deb, file), path.join(deb, 'x')]);
  const root = path.join(work, 'busybox-root');
  for (const d of ['bin', 'etc', 'tmp', 'root', 'home', 'var/www', 'proc', 'sys', 'dev', 'usr/share/nginx/html']) fs.mkdirSync(path.join(root, d), { recursive: true });
  fs.chmodSync(path.join(root, 'tmp'), 0o1777);
  fs.copyFileSync(path.join(deb, 'x/bin/busybox'), path.join(root, 'bin/busybox'));
  fs.chmodSync(path.join(root, 'bin/busybox'), 0o755);
  copyLibs(path.join(root, 'bin/busybox'), root);
  // Debian's busybox has no ipcs applet, which critest's IPC specs run: the host's.
  copyWithLibs('/usr/bin/ipcs', root);
  copyWithLibs('/usr/bin/pgrep', root);
  // nginx stand-in: a process named nginx whose pid is in /var/run/nginx.pid, serving
  // the page with busybox httpd, its first argument showing "master process" as nginx's.
  fs.mkdirSync(path.join(root, 'usr/sbin'), { recursive: true });
  fs.mkdirSync(path.join(root, 'var/run'), { recursive: true });
  fs.writeFileSync(path.join(root, 'usr/sbin/nginx'), '#!/bin/sh\necho $$ > /var/run/nginx.pid\nhttpd -f -p "${PORT:-80}" -h /usr/share/nginx/html\n', { mode: 0o755 });
  const applets = execFileSync(path.join(root, 'bin/busybox'), ['--list']).toString().split('\n').filter((a) => a && a !== 'busybox');
  // Hard links, as upstream's image has: masking /bin/ls must not mask /bin/busybox.
  for (const a of applets) fs.linkSync(path.join(root, 'bin/busybox'), path.join(root, 'bin', a));
  fs.writeFileSync(path.join(root, 'etc/passwd'), PASSWD);
  fs.writeFileSync(path.join(root, 'etc/group'), GROUP);
  fs.writeFileSync(path.join(root, 'usr/share/nginx/html/index.html'), '<html><body><h1>Welcome to nginx!</h1></body></html>\n');
  return root;
}

export function fileLayer(work: string, name: string, files: Record<string, string>): Layer {
  const dir = path.join(work, `layer-${name}`);
  for (const [p, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, p)), { recursive: true });
    fs.writeFileSync(path.join(dir, p), content);
  }
  return layerOf(dir);
}

/** A setuid-root program that prints its effective uid, as the nonewprivs test image. */
export function nonewprivsLayer(work: string): Layer {
  const dir = path.join(work, 'layer-nnp');
  fs.mkdirSync(path.join(dir, 'usr/local/bin'), { recursive: true });
  const src = path.join(work, 'nnp.c');
  fs.writeFileSync(src, '#include <stdio.h>\n#include <unistd.h>\nint main(void) { printf("Effective uid: %d\\n", (int) geteuid()); return 0; }\n');
  execFileSync('cc', ['-static', '-O2', '-o', path.join(dir, 'usr/local/bin/nnp'), src]);
  fs.chmodSync(path.join(dir, 'usr/local/bin/nnp'), 0o4755);
  return layerOf(dir);
}

const STAGING = 'k8s-staging-cri-tools';
export const PATH_ENV = ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'];

/** Build and push every critest image; returns the registry names they are served as. */
export async function pushCritestImages(reg: TestRegistry, work: string, arch: string): Promise<void> {
  const base = layerOf(busyboxRoot(work));
  const sh = { Cmd: ['sh'], Env: PATH_ENV };
  const push = (repo: string, tag: string, layers: Layer[], config: Record<string, unknown> = sh) => reg.pushImage(repo, tag, [base, ...layers], undefined, config);
  await push('e2e-test-images/busybox', '1.29-2', []);
  // The web servers: busybox httpd where critest expects nginx (port 80; host network 12003).
  const nginx = ['/usr/sbin/nginx', 'nginx: master process nginx -g daemon off;'];
  await push('e2e-test-images/nginx', '1.14-2', [], { Cmd: nginx, Env: PATH_ENV });
  await push(`${STAGING}/hostnet-nginx-${arch}`, 'latest', [], { Cmd: nginx, Env: [...PATH_ENV, 'PORT=12003'] });
  // Apache logs its start; critest looks for "httpd" in the log.
  await push('e2e-test-images/httpd', '2.4.39-4', [], { Cmd: ['sh', '-c', 'echo "httpd: serving /usr/share/nginx/html on port 80"; exec httpd -f -p 80 -h /usr/share/nginx/html'], Env: PATH_ENV });
  await push('e2e-test-images/nonewprivs', '1.3', [nonewprivsLayer(work)], { Cmd: ['/usr/local/bin/nnp'], Env: PATH_ENV });
  await push(`${STAGING}/test-image-user-uid`, 'latest', [], { ...sh, User: '1002' });
  await push(`${STAGING}/test-image-user-username`, 'latest', [], { ...sh, User: 'www-data' });
  await push(`${STAGING}/test-image-user-uid-group`, 'latest', [], { ...sh, User: '1003:users' });
  await push(`${STAGING}/test-image-user-username-group`, 'latest', [], { ...sh, User: 'www-data:users' });
  const predefined = fileLayer(work, 'predefined', {
    'etc/passwd': PASSWD + 'default-user:x:1000:1000::/home/default-user:/bin/sh\n',
    'etc/group': GROUP + 'default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n',
  });
  await push(`${STAGING}/test-image-predefined-group`, 'latest', [predefined], { ...sh, User: '1000' });
  const tagged = (n: string) => fileLayer(work, n, { [n]: `${n}\n` });
  await push(`${STAGING}/test-image-latest`, 'latest', [tagged('latest')]);
  await push(`${STAGING}/test-image-tag`, 'test', [tagged('test')]);
  await push(`${STAGING}/test-image-tag`, 'all', [tagged('all')]);
  for (const i of [1, 2, 3]) await push(`${STAGING}/test-image-${i}`, 'latest', [tagged(`image-${i}`)]);
  const same = tagged('tags');
  for (const i of [1, 2, 3]) await push(`${STAGING}/test-image-tags`, String(i), [same]);
}
