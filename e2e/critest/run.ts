// Runs critest (kubernetes-sigs/cri-tools, built by you; not part of skiff) against a
// skiffd of its own: local copies of critest's images behind registry mirrors, then the
// summary, the failed specs and a JUnit report.
// Usage: npm run critest -- [--critest PATH] [ginkgo flags]; critest is looked up on
// $PATH (then $CRITEST) when --critest is not given. e2e/critest.sh runs this.
import { execFileSync, spawn } from 'child_process';
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { TestRegistry } from '../fixtures/registry';
import { TestSkiffd } from '../fixtures/skiffd';
import { pushCritestImages } from './images';

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const i = argv.indexOf('--critest');
  const onPath = (process.env.PATH ?? '').split(':').map((d) => path.join(d, 'critest')).find((p) => fs.existsSync(p));
  const critest = i >= 0 ? argv[i + 1] : (onPath ?? process.env.CRITEST);
  const extra = i >= 0 ? [...argv.slice(0, i), ...argv.slice(i + 2)] : argv;
  if (!critest || !fs.existsSync(critest)) {
    process.stderr.write('critest not found: put it on $PATH, or: npm run critest -- --critest /path/to/critest [critest/ginkgo flags]\n(or CRITEST=/path/to/critest)\n');
    return 2;
  }
  const junit = path.resolve(process.env.CRITEST_JUNIT ?? '/tmp/skiff-critest-junit.xml');
  const work = fs.mkdtempSync('/tmp/skiff-critest-');
  // A bridge, range and IPAM state of this run's own: other skiffds on the host (the
  // default skiff0, a node e2e's) keep theirs, and only this one is deleted at the end.
  const bridge = `skc${randomBytes(3).toString('hex')}`;
  const podCidr = `10.${200 + Math.floor(Math.random() * 50)}.${Math.floor(Math.random() * 250)}.0/24`;
  const reg = await TestRegistry.start();
  let skiffd: TestSkiffd | undefined;
  try {
    const arch = process.arch === 'x64' ? 'amd64' : process.arch;
    console.log('critest: building and pushing test images');
    await pushCritestImages(reg, work, arch);
    skiffd = await TestSkiffd.start({ args: ['--network.bridge', bridge, '--network.default_pod_cidr', podCidr, '--network.ipam_data_dir', path.join(work, 'ipam')] });
    for (const name of ['registry.k8s.io', 'gcr.io', 'docker.io']) skiffd.mirror(name, reg.host);
    const sock = `unix://${skiffd.socket}`;
    console.log(`critest: skiffd at ${sock} (log ${skiffd.logFile})`);
    const out = fs.openSync(path.join(work, 'critest.log'), 'w');
    const code = await new Promise<number>((resolve) => {
      const p = spawn(critest, ['--runtime-endpoint', sock, '--image-endpoint', sock, '--ginkgo.no-color', `--ginkgo.junit-report=${junit}`, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
      const write = (d: Buffer) => {
        fs.writeSync(out, d);
        process.stdout.write(d);
      };
      p.stdout.on('data', write);
      p.stderr.on('data', write);
      p.on('close', (c) => resolve(c ?? 1));
    });
    fs.closeSync(out);
    const text = fs.readFileSync(path.join(work, 'critest.log'), 'utf8');
    const summary = /Ran (\d+) of (\d+) Specs[\s\S]*?(\d+) Passed \| (\d+) Failed \| (\d+) Pending \| (\d+) Skipped/.exec(text);
    console.log('\n=== critest summary ===');
    if (summary) console.log(`ran ${summary[1]} of ${summary[2]}: ${summary[3]} passed, ${summary[4]} failed, ${summary[6]} skipped`);
    for (const m of text.matchAll(/^\s*\[FAIL\] (.*)$/gm)) console.log(`FAIL: ${m[1]}`);
    fs.copyFileSync(path.join(work, 'critest.log'), '/tmp/skiff-critest.log');
    fs.copyFileSync(skiffd.logFile, '/tmp/skiff-critest-skiffd.log');
    console.log('logs: /tmp/skiff-critest.log, /tmp/skiff-critest-skiffd.log');
    if (fs.existsSync(junit)) console.log(`JUnit report: ${junit}`);
    return code;
  } finally {
    await skiffd?.cleanup();
    await reg.stop();
    fs.rmSync(work, { recursive: true, force: true });
    try {
      execFileSync('ip', ['link', 'del', bridge], { stdio: 'ignore' });
    } catch {
      /* no bridge */
    }
  }
}

main().then((c) => process.exit(c), (e: unknown) => {
  console.error(e);
  process.exit(1);
});
