// Mandatory access control through a real skiffd over gRPC: what kubelet asks of AppArmor
// and SELinux on a host with neither (pods start, the isolation report says unconfined, a
// named Localhost profile is refused), and, where the LSM enforces, that containers and
// their execs run in the profile or label skiffd chose (skipped elsewhere, saying why).
import assert from 'node:assert/strict';
import * as fs from 'fs';
import type { ServiceError } from '@grpc/grpc-js';
import { SecurityProfile_ProfileType } from '../../src/cri/gen/cri';
import type { Isolation } from '../../src/container/isolation';
import { APPARMOR_DEFAULT_PROFILE, detectHostLsm, HostLsm } from '../../src/container/lsm';
import { startTestNode, TestNode } from '../fixtures/node';
import type { TestSkiffd } from '../fixtures/skiffd';
import { CriPods } from '../fixtures/cri_pods';

const FAILED_PRECONDITION = 9;

/** The process's current LSM label as the kernel has it (AppArmor's own file first). */
function currentLabel(pid: number | 'self'): string {
  for (const f of [`/proc/${pid}/attr/apparmor/current`, `/proc/${pid}/attr/current`]) {
    try {
      return fs.readFileSync(f, 'utf8').replace(/\0/g, '').trim();
    } catch {
      /* try the next */
    }
  }
  return '';
}

describe('mandatory access control: AppArmor and SELinux (skiffd over gRPC)', function () {
  this.timeout(120_000);
  let node: TestNode;
  let skiffd: TestSkiffd;
  let lsm: HostLsm;

  let cri: CriPods;
  const info = async (id: string) =>
    JSON.parse((await skiffd.client.runtime('ContainerStatus', { container_id: id, verbose: true })).info.info) as { pid: number; isolation: Isolation };
  const containersOf = async (podId: string) => (await skiffd.client.runtime('ListContainers', { filter: { pod_sandbox_id: podId } })).containers;
  // What kubelet sends for a pod with seLinuxOptions {level: s0} (the EmptyDir conformance
  // pods'): the pod's options, copied into each container's security context.
  const SELINUX_S0 = { user: '', role: '', type: '', level: 's0' };
  const runtimeDefault = { profile_type: SecurityProfile_ProfileType.RuntimeDefault, localhost_ref: '' };
  const localhost = (ref: string) => ({ profile_type: SecurityProfile_ProfileType.Localhost, localhost_ref: ref });

  before(async () => {
    lsm = await detectHostLsm();
    console.log(`      (this host: AppArmor ${lsm.apparmor ? 'enabled' : 'not enabled'}, SELinux ${lsm.selinux ? 'enabled' : 'not enabled'})`);
    node = await startTestNode();
    skiffd = node.skiffd;
    cri = new CriPods(skiffd, { prefix: 'lsm', namespace: 'e2e', uidPrefix: 'lsm-uid-' });
  });
  after(async () => {
    await node?.stop();
  });

  it('runs a pod with seLinuxOptions level s0 and a RuntimeDefault AppArmor container, and its execs', async () => {
    const pod = await cri.runPod({ linux: { security_context: { selinux_options: SELINUX_S0 } } });
    const id = await cri.startCtr(pod, 'confined', { linux: { security_context: { selinux_options: SELINUX_S0, apparmor: runtimeDefault, apparmor_profile: 'runtime/default' } } });
    const r = await cri.exec(id, ['echo', 'ran']);
    assert.deepEqual([r.code, r.out], [0, 'ran\n'], r.err);
    const { isolation } = await info(id);
    assert.equal(isolation.lsm.apparmor, lsm.apparmor ? APPARMOR_DEFAULT_PROFILE : null);
    if (lsm.selinux) assert.match(isolation.lsm.selinux ?? '', /:s0$/);
    else assert.equal(isolation.lsm.selinux, null);
    assert.equal(isolation.lsmUnconfined, !lsm.apparmor && !lsm.selinux);
  });

  it('says "not confined" in the report and the gauge where neither LSM enforces', async function () {
    if (lsm.apparmor || lsm.selinux) {
      console.log('      (skipped: this host has an LSM; the confined case is checked below)');
      this.skip();
    }
    const pod = await cri.runPod();
    const id = await cri.startCtr(pod, 'plain');
    const { isolation } = await info(id);
    assert.deepEqual([isolation.lsm, isolation.lsmUnconfined], [{ apparmor: null, selinux: null }, true]);
    const status = await skiffd.client.runtime('Status', { verbose: true });
    const address = (JSON.parse(status.info.config) as { metricsAddress: string }).metricsAddress;
    const text = await (await fetch(`http://${address}/metrics`)).text();
    assert.match(text, new RegExp(`skiff_container_isolation\\{namespace="e2e",pod="${pod.config.metadata!.name}",container="plain",check="lsm_unconfined"\\} 1`));
  });

  it('refuses a Localhost AppArmor profile where AppArmor is not enabled, naming it and why, leaving nothing', async function () {
    if (lsm.apparmor) {
      console.log('      (skipped: AppArmor is enabled on this host)');
      this.skip();
    }
    const pod = await cri.runPod();
    for (const sc of [{ apparmor: localhost('my-profile') }, { apparmor_profile: 'localhost/my-profile' }]) {
      await assert.rejects(cri.createCtr(pod, 'named', { linux: { security_context: sc } }), (e: ServiceError) => {
        assert.equal(e.code, FAILED_PRECONDITION, e.message);
        assert.match(e.message, /AppArmor profile "my-profile" was requested, but AppArmor is not enabled on this host/);
        return true;
      });
    }
    assert.deepEqual(await containersOf(pod.id), []);
    // The name is free again: nothing of the refused create was kept.
    await cri.startCtr(pod, 'named');
  });

  it('where AppArmor enforces: the container and its execs run in skiff-default, which skiffd loaded', async function () {
    if (!lsm.apparmor) {
      console.log('      (skipped: AppArmor is not enabled on this host)');
      this.skip();
    }
    const pod = await cri.runPod();
    const caps = { add_capabilities: ['SYS_ADMIN'], drop_capabilities: [], add_ambient_capabilities: [] };
    const id = await cri.startCtr(pod, 'aa', { linux: { security_context: { capabilities: caps } } });
    assert.match(fs.readFileSync('/sys/kernel/security/apparmor/profiles', 'utf8'), new RegExp(`^${APPARMOR_DEFAULT_PROFILE} \\(enforce\\)$`, 'm'));
    assert.equal(currentLabel((await info(id)).pid), `${APPARMOR_DEFAULT_PROFILE} (enforce)`);
    const inExec = await cri.exec(id, ['cat', '/proc/self/attr/current']);
    assert.equal(inExec.out.replace(/\0/g, '').trim(), `${APPARMOR_DEFAULT_PROFILE} (enforce)`, inExec.err);
    // The profile, not the capability set, stops this: CAP_SYS_ADMIN was granted.
    const mount = await cri.exec(id, ['mount', '-t', 'tmpfs', 'none', '/mnt']);
    assert.notEqual(mount.code, 0, 'mount is denied by skiff-default');
    const unconfined = await cri.startCtr(pod, 'free', { linux: { security_context: { apparmor: { profile_type: SecurityProfile_ProfileType.Unconfined, localhost_ref: '' } } } });
    assert.equal(currentLabel((await info(unconfined)).pid), 'unconfined');
    await assert.rejects(cri.createCtr(pod, 'absent', { linux: { security_context: { apparmor: localhost('skiff-test-no-such-profile') } } }), (e: ServiceError) =>
      e.code === FAILED_PRECONDITION && /"skiff-test-no-such-profile" is not loaded/.test(e.message),
    );
  });

  it('where SELinux enforces: the process label and the mount label of its file systems', async function () {
    if (!lsm.selinux) {
      console.log('      (skipped: SELinux is not enabled on this host)');
      this.skip();
    }
    const pod = await cri.runPod({ linux: { security_context: { selinux_options: { ...SELINUX_S0, level: 's0:c4,c5' } } } });
    const id = await cri.startCtr(pod, 'se', { linux: { security_context: { selinux_options: { ...SELINUX_S0, level: 's0:c4,c5' } } } });
    const { pid, isolation } = await info(id);
    assert.equal(currentLabel(pid), isolation.lsm.selinux);
    assert.match(isolation.lsm.selinux ?? '', /:s0:c4,c5$/);
    const inExec = await cri.exec(id, ['cat', '/proc/self/attr/current']);
    assert.equal(inExec.out.replace(/\0/g, '').trim(), isolation.lsm.selinux, inExec.err);
    const mountinfo = fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8');
    assert.match(mountinfo, /\/dev\/mqueue .*context="?[^"\s]*container_file_t:s0:c4,c5/);
  });
});
