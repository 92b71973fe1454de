// The skiff CLI against a real skiffd: image import (docker save and OCI layout
// archives, from a file and from stdin), listing, removal, and the exit codes a
// script relies on. Run as `node dist/src/cli/skiff.js`, as an operator would.
import assert from 'node:assert/strict';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { gunzipSync } from 'zlib';
import { busyboxLayer } from '../fixtures/images';
import { sha256 } from '../fixtures/registry';
import { TestSkiffd } from '../fixtures/skiffd';

const CLI = path.resolve(__dirname, '../../src/cli/skiff.js');

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

describe('skiff CLI: images', function () {
  this.timeout(120_000);
  let skiffd: TestSkiffd;
  let work: string;
  let layerTar: Buffer;

  /** The CLI, its stdin the file `stdinFile` (as `skiff ... < file`). A socketpair fed by
   * spawnSync's `input` once never reached EOF here (the parent kept its end open with
   * every byte sent), hanging the run; a file is read to its end. A hang fails the test. */
  const skiff = (args: string[], stdinFile?: string): Run => {
    const stdin = stdinFile ? fs.openSync(stdinFile, 'r') : 'ignore';
    try {
      const r = spawnSync(process.execPath, [CLI, '--socket', skiffd.socket, ...args], { stdio: [stdin, 'pipe', 'pipe'], maxBuffer: 1 << 26, timeout: 120_000 });
      return { status: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString() + (r.error ? `\n${r.error.message}` : '') };
    } finally {
      if (typeof stdin === 'number') fs.closeSync(stdin);
    }
  };

  /** A tar(1) archive of the files given, written under work. */
  const archive = (name: string, files: Record<string, Buffer>): string => {
    const dir = path.join(work, `${name}.d`);
    for (const [f, body] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
      fs.writeFileSync(path.join(dir, f), body);
    }
    const out = path.join(work, `${name}.tar`);
    spawnSync('tar', ['-C', dir, '-cf', out, ...Object.keys(files)]);
    return out;
  };

  // Each image's config is its own (a fresh label): busybox layers built within one second
  // are byte-identical, and two imports must not become one image with both names.
  let built = 0;
  const config = (diffIds: string[]) =>
    Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/sh'], User: 'app', Labels: { 'skiff.test/image': String(++built) } }, rootfs: { type: 'layers', diff_ids: diffIds } }));

  before(async () => {
    skiffd = await TestSkiffd.start({ args: ['--network.write_default_config', 'false'] });
    work = path.join(skiffd.dir, 'archives');
    fs.mkdirSync(work);
    layerTar = gunzipSync(busyboxLayer(work).data);
  });
  after(async () => {
    await skiffd?.cleanup();
  });

  it('imports a docker save archive and runs a container from it', async () => {
    const cfg = config([sha256(layerTar)]);
    const file = archive('saved', {
      'manifest.json': Buffer.from(JSON.stringify([{ Config: 'cfg.json', RepoTags: ['saved/app:v1'], Layers: ['l1/layer.tar'] }])),
      'cfg.json': cfg,
      'l1/layer.tar': layerTar,
    });
    const r = skiff(['images', 'import', file]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `imported docker.io/saved/app:v1 (${sha256(cfg)})\n`);

    const list = skiff(['images']);
    assert.equal(list.status, 0, list.stderr);
    const [header, row] = list.stdout.trim().split('\n');
    assert.match(header, /^IMAGE\s+TAG\s+IMAGE ID\s+SIZE\s+PINNED$/);
    assert.match(row, new RegExp(`^docker.io/saved/app\\s+v1\\s+${sha256(cfg).slice(7, 19)}\\s+\\d.*\\s+no$`));

    // The image works: a container of it runs as the image's USER.
    const c = skiffd.client;
    const podConfig = { metadata: { name: 'imp', namespace: 'cli', uid: 'imp-1', attempt: 0 }, linux: { security_context: { namespace_options: { network: 2 } } } };
    const { pod_sandbox_id } = await c.runtime('RunPodSandbox', { config: podConfig });
    try {
      const { container_id } = await c.runtime('CreateContainer', {
        pod_sandbox_id,
        config: { metadata: { name: 'c', attempt: 0 }, image: { image: 'saved/app:v1' }, command: ['sleep', '60'] },
        sandbox_config: podConfig,
      });
      await c.runtime('StartContainer', { container_id });
      const out = await c.runtime('ExecSync', { container_id, cmd: ['id', '-un'], timeout: 10 });
      assert.equal(Buffer.from(out.stdout).toString(), 'app\n');
    } finally {
      await c.runtime('StopPodSandbox', { pod_sandbox_id });
      await c.runtime('RemovePodSandbox', { pod_sandbox_id });
    }
  });

  it('imports an OCI image layout from stdin, with JSON output', () => {
    const layer = busyboxLayer(work); // gzip
    const cfg = config([layer.diffId]);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(cfg), size: cfg.length },
        layers: [{ mediaType: layer.mediaType, digest: sha256(layer.data), size: layer.data.length }],
      }),
    );
    const index = { schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(manifest), size: manifest.length, annotations: { 'io.containerd.image.name': 'registry.k8s.io/oci/app:v2' } }] };
    const blob = (b: Buffer): [string, Buffer] => [`blobs/sha256/${sha256(b).slice(7)}`, b];
    const file = archive('oci', Object.fromEntries([['oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}')], ['index.json', Buffer.from(JSON.stringify(index))], blob(manifest), blob(cfg), blob(layer.data)]));
    const r = skiff(['-o', 'json', 'import', '-'], file);
    assert.equal(r.status, 0, r.stderr);
    const images = JSON.parse(r.stdout) as { id: string; repo_tags: string[] }[];
    assert.deepEqual(images.map((i) => [i.id, i.repo_tags]), [[sha256(cfg), ['registry.k8s.io/oci/app:v2']]]);
    const st = skiff(['-o', 'json', 'images', 'registry.k8s.io/oci/app:v2']);
    assert.equal((JSON.parse(st.stdout) as { id: string }[])[0].id, sha256(cfg));
  });

  it('fails a bad archive with exit 1 and the reason, recording nothing', () => {
    const before = skiff(['-o', 'json', 'images']).stdout;
    const file = archive('bad', { 'hello.txt': Buffer.from('hi') });
    const r = skiff(['import', file]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^skiff: INVALID_ARGUMENT: .*neither index\.json/);
    assert.equal(skiff(['-o', 'json', 'images']).stdout, before);
    const missing = skiff(['import', path.join(work, 'no-such.tar')]);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /ENOENT/);
  });

  it('removes images; a missing image is exit 1 with NOT_FOUND', () => {
    assert.equal(skiff(['rmi', 'saved/app:v1']).status, 0);
    const again = skiff(['images', 'saved/app:v1', '-o', 'json']);
    assert.deepEqual(JSON.parse(again.stdout), []);
    const st = skiff(['-o', 'json', 'version']);
    assert.equal((JSON.parse(st.stdout) as { runtime_name: string }).runtime_name, 'skiff');
  });

  it('exits 2 on bad usage and 69 when skiffd is not there', () => {
    const bad = skiff(['frobnicate']);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /unknown command "frobnicate"/);
    assert.equal(skiff(['-o', 'xml', 'images']).status, 2);
    const r = spawnSync(process.execPath, [CLI, '--socket', path.join(work, 'nobody.sock'), 'images']);
    assert.equal(r.status, 69);
    assert.match(r.stderr.toString(), /cannot reach skiffd/);
  });
});
