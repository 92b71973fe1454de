// The images the [NodeConformance] specs of Kubernetes 1.20's test/e2e_node run, made
// offline under their upstream names: agnhost built from Debian's kubernetes source
// (hack/build-e2e-node.sh) on the critest busybox root, busybox, busybox httpd standing in
// for nginx and Apache httpd, nonewprivs, nonroot, ipc-utils and pause.
// What cannot be had offline is listed in UNAVAILABLE with the reason.
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { busyboxRoot, copyLibs, copyWithLibs, fileLayer, nonewprivsLayer, PATH_ENV } from '../critest/images';
import { layerOf, Layer } from '../fixtures/images';
import type { TestRegistry } from '../fixtures/registry';

const KUBE_CACHE = process.env.SKIFF_KUBE_CACHE ?? '/var/cache/skiff/kube';
export const AGNHOST_BIN = path.join(KUBE_CACHE, 'bin', 'agnhost');
const AGNHOST_SRC = path.join(KUBE_CACHE, 'gopath/src/k8s.io/kubernetes/test/images/agnhost');

/** Registries the images are named under; each is mirrored to the loopback registry. */
export const MIRRORED_REGISTRIES = ['k8s.gcr.io', 'gcr.io', 'docker.io', 'registry.k8s.io'];

/** The sandbox image containerd runs (kubelet 1.20's default pause image). */
export const PAUSE_IMAGE = 'k8s.gcr.io/pause:3.2';

/** Where under the image work dir Debian's netcat-openbsd package is (or is fetched to). */
export const NETCAT_DEB_DIR = 'deb-netcat';

/** Images some specs name that cannot be made offline, and why (their specs fail on every runtime). */
export const UNAVAILABLE: Record<string, string> = {
  'gcr.io/authenticated-image-pulling/alpine:3.7': 'needs credentials to a Google registry',
  'k8s.gcr.io/busybox@sha256:4bdd623e848417d96127e16037743f0cd8b528c026e9175e22a84f639eca58ff': 'pins the digest of the upstream image, which cannot be rebuilt byte for byte',
  'k8s.gcr.io/stress:v1': 'not used by a [NodeConformance] spec',
  'docker.io/library/perl:5.26': 'not used by a [NodeConformance] spec',
};

/** A static pause: sleeps until SIGINT/SIGTERM, reaps children (PID 1 of a pod). */
function pauseLayer(work: string): Layer {
  const dir = path.join(work, 'layer-pause');
  fs.mkdirSync(dir, { recursive: true });
  const src = path.join(work, 'pause.c');
  fs.writeFileSync(
    src,
    [
      '#include <signal.h>',
      '#include <sys/wait.h>',
      '#include <unistd.h>',
      'static void down(int s) { (void) s; _exit(0); }',
      'static void reap(int s) { (void) s; while (waitpid(-1, 0, WNOHANG) > 0) {} }',
      'int main(void) { signal(SIGINT, down); signal(SIGTERM, down); signal(SIGCHLD, reap); for (;;) pause(); }',
      '',
    ].join('\n'),
  );
  execFileSync('cc', ['-static', '-O2', '-o', path.join(dir, 'pause'), src]);
  return layerOf(dir);
}

/** agnhost as upstream lays it out: /agnhost, /agnhost-2, porter's TLS pair, /uploads; the
 * tools its specs call that busybox lacks (curl) from the host with their libraries. */
function agnhostLayer(work: string): Layer {
  const dir = path.join(work, 'layer-agnhost');
  fs.mkdirSync(path.join(dir, 'uploads'), { recursive: true });
  fs.copyFileSync(AGNHOST_BIN, path.join(dir, 'agnhost'));
  fs.chmodSync(path.join(dir, 'agnhost'), 0o755);
  fs.symlinkSync('agnhost', path.join(dir, 'agnhost-2'));
  for (const f of ['localhost.crt', 'localhost.key']) fs.copyFileSync(path.join(AGNHOST_SRC, 'porter', f), path.join(dir, f));
  if (fs.existsSync('/usr/bin/curl')) copyWithLibs('/usr/bin/curl', dir);
  // OpenBSD netcat as upstream's image has (the specs run `nc -u`, which busybox's lacks),
  // from Debian's package (NETCAT_DEB_DIR: fetched by the caller, this may run offline).
  const debDir = path.join(work, NETCAT_DEB_DIR);
  fs.mkdirSync(debDir, { recursive: true });
  if (!fs.readdirSync(debDir).some((f) => f.endsWith('.deb'))) execFileSync('apt-get', ['download', 'netcat-openbsd'], { cwd: debDir, stdio: 'ignore' });
  const deb = fs.readdirSync(debDir).find((f) => f.endsWith('.deb'))!;
  execFileSync('dpkg-deb', ['-x', path.join(debDir, deb), path.join(debDir, 'x')]);
  fs.mkdirSync(path.join(dir, 'usr/bin'), { recursive: true });
  fs.copyFileSync(path.join(debDir, 'x/bin/nc.openbsd'), path.join(dir, 'usr/bin/nc'));
  fs.chmodSync(path.join(dir, 'usr/bin/nc'), 0o755);
  copyLibs(path.join(dir, 'usr/bin/nc'), dir);
  return layerOf(dir);
}

/** The host's ipcmk and ipcs (util-linux), as ipc-utils adds them to alpine. */
function ipcUtilsLayer(work: string): Layer {
  const dir = path.join(work, 'layer-ipc');
  fs.mkdirSync(dir, { recursive: true });
  for (const b of ['/usr/bin/ipcmk', '/usr/bin/ipcs', '/usr/bin/ipcrm']) if (fs.existsSync(b)) copyWithLibs(b, dir);
  return layerOf(dir);
}

/** Build every image and push it under its upstream name (registry host dropped: the
 * mirrors of every registry lead to the same loopback registry); returns the full names. */
export async function pushNodeConformanceImages(reg: TestRegistry, work: string): Promise<string[]> {
  const base = layerOf(busyboxRoot(work));
  const sh = { Cmd: ['sh'], Env: PATH_ENV };
  const pushed: string[] = [];
  const push = async (name: string, layers: Layer[], config: Record<string, unknown> = sh) => {
    const [, repoTag] = /^[^/]+\/(.*)$/.exec(name)!;
    const i = repoTag.lastIndexOf(':');
    await reg.pushImage(repoTag.slice(0, i), repoTag.slice(i + 1), [base, ...layers], undefined, config);
    pushed.push(name);
  };
  await push('docker.io/library/busybox:1.29', []);
  // The mirror pod specs' static pod manifest names this one (mirror_pod_grace_period_test.go).
  await push('docker.io/library/busybox:1.31.1', []);
  await push('k8s.gcr.io/e2e-test-images/agnhost:2.21', [agnhostLayer(work)], { Entrypoint: ['/agnhost'], Cmd: ['pause'], Env: PATH_ENV });
  // busybox httpd where the specs expect nginx (port 80) and Apache httpd (port 80).
  const nginx = { Cmd: ['/usr/sbin/nginx', 'nginx: master process nginx -g daemon off;'], Env: PATH_ENV };
  await push('docker.io/library/nginx:1.14-alpine', [], nginx);
  await push('docker.io/library/nginx:1.15-alpine', [fileLayer(work, 'nginx-new', { 'etc/nginx-version': '1.15\n' })], nginx);
  const httpd = { Cmd: ['sh', '-c', 'echo "httpd: serving /usr/share/nginx/html on port 80"; exec httpd -f -p 80 -h /usr/share/nginx/html'], Env: PATH_ENV };
  await push('docker.io/library/httpd:2.4.38-alpine', [], httpd);
  await push('docker.io/library/httpd:2.4.39-alpine', [fileLayer(work, 'httpd-new', { 'etc/httpd-version': '2.4.39\n' })], httpd);
  await push('gcr.io/kubernetes-e2e-test-images/nonewprivs:1.0', [nonewprivsLayer(work)], { Cmd: ['nnp'], Env: [...PATH_ENV] });
  await push('gcr.io/kubernetes-e2e-test-images/nonroot:1.0', [], { ...sh, User: '1234' });
  await push('gcr.io/kubernetes-e2e-test-images/ipc-utils:1.0', [ipcUtilsLayer(work)]);
  await push(PAUSE_IMAGE, [pauseLayer(work)], { Entrypoint: ['/pause'], Env: PATH_ENV });
  return pushed;
}
