// Runs critest (kubernetes-sigs/cri-tools, built by you; not part of skiff) against a
// skiffd of its own: local copies of critest's images behind registry mirrors, then the
// summary, the failed specs and a JUnit report.
// Usage: npm run critest -- [--critest PATH] [--runtime-handler NAME] [ginkgo flags];
// critest is looked up on $PATH (then $CRITEST) when --critest is not given.
// --runtime-handler runs every pod of the suite under that handler (critest's flag of the
// same name: RunPodSandbox's runtime_handler, and the handler whose features the user
// namespace specs read), e.g. skiff-userns; its logs and report are named after it.
// e2e/critest.sh runs this.
import { execFileSync, spawn } from 'child_process';
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { TestRegistry } from '../fixtures/registry';
import { TestSkiffd } from '../fixtures/skiffd';
import { pushCritestImages } from './images';

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const critestFlag = takeOption(argv, '--critest');
  const handler = takeOption(argv, '--runtime-handler') ?? '';
  const onPath = (process.env.PATH ?? '').split(':').map((d) => path.join(d, 'critest')).find((p) => fs.existsSync(p));
  const critest = critestFlag ?? onPath ?? process.env.CRITEST;
  const extra = [...argv, ...(handler ? [`--runtime-handler=${handler}`] : [])];
  if (!critest || !fs.existsSync(critest)) {
    process.stderr.write('critest not found: put it on $PATH, or: npm run critest -- --critest /path/to/critest [critest/ginkgo flags]\n(or CRITEST=/path/to/critest)\n');
    return 2;
  }
  const suffix = handler ? `-${handler}` : '';
  const junit = path.resolve(process.env.CRITEST_JUNIT ?? `/tmp/skiff-critest${suffix}-junit.xml`);
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
    console.log(`critest: skiffd at ${sock} (log ${skiffd.logFile})${handler ? `, runtime handler ${handler}` : ''}`);
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
    console.log(`\n=== critest summary${handler ? ` (runtime handler ${handler})` : ''} ===`);
    if (summary) console.log(`ran ${summary[1]} of ${summary[2]}: ${summary[3]} passed, ${summary[4]} failed, ${summary[6]} skipped`);
    if (handler && fs.existsSync(junit)) printByDesign(fs.readFileSync(junit, 'utf8'), handler);
    for (const m of text.matchAll(/^\s*\[FAIL\] (.*)$/gm)) console.log(`FAIL: ${m[1]}`);
    fs.copyFileSync(path.join(work, 'critest.log'), `/tmp/skiff-critest${suffix}.log`);
    fs.copyFileSync(skiffd.logFile, `/tmp/skiff-critest${suffix}-skiffd.log`);
    console.log(`logs: /tmp/skiff-critest${suffix}.log, /tmp/skiff-critest${suffix}-skiffd.log`);
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

/**
 * Under the userns handler, the failures it causes on purpose, by reason: the pods it
 * refuses (privileged, host namespaces: skiffd's message says so) and the NamespaceMode_NODE
 * spec, whose pod gets a user namespace all the same (kubelet sends NODE for every pod that
 * does not set hostUsers: false, so NODE cannot mean "no user namespace" there). The rest
 * are printed below as usual, and are the ones to look at.
 */
function printByDesign(junitXml: string, handler: string): void {
  const unescape = (t: string) => t.replace(/&#34;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
  const reasons = new Map<string, number>();
  let other = 0;
  for (const m of junitXml.matchAll(/<testcase name="([^"]*)"[^>]*status="failed"[^>]*>\s*<failure message="([^"]*)"/g)) {
    const [name, message] = [unescape(m[1]), unescape(m[2])];
    const refused = new RegExp(`runtime handler "${handler}" runs every pod in a user namespace of its own: (.*?) is refused`).exec(message);
    const reason = refused ? `refused: ${refused[1]}` : /NamespaceMode_NODE/.test(name) ? 'NamespaceMode_NODE: the pod gets a user namespace of its own all the same' : undefined;
    if (reason) reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
    else other++;
  }
  const byDesign = [...reasons.values()].reduce((a, b) => a + b, 0);
  console.log(`failed by design under ${handler}: ${byDesign}; otherwise: ${other}`);
  for (const [reason, n] of reasons) console.log(`  ${n} x ${reason}`);
}

/** Remove `--name VALUE` or `--name=VALUE` from argv; its value. */
function takeOption(argv: string[], name: string): string | undefined {
  const i = argv.findIndex((a) => a === name || a.startsWith(`${name}=`));
  if (i < 0) return undefined;
  const value = argv[i].includes('=') ? argv[i].slice(name.length + 1) : argv[i + 1];
  if (!value) throw new Error(`${name} needs a value`);
  argv.splice(i, argv[i].includes('=') ? 1 : 2);
  return value;
}

main().then((c) => process.exit(c), (e: unknown) => {
  console.error(e);
  process.exit(1);
});
