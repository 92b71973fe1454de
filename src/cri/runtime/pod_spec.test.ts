import assert from 'node:assert/strict';
import { NamespaceMode, type PodSandboxConfig } from '../gen/cri';
import { FailedPrecondition, InvalidArgument } from '../../errors';
import { podSpec, servedHandlerNames, type ServedHandlers } from './pod_spec';

const POOL = { first: 1 << 30, end: (1 << 30) + 4 * 65536 };
const served: ServedHandlers = { default: 'skiff', userns: 'skiff-userns', usernsUnavailable: '', usernsPool: POOL };

/** A pod config as kubelet sends it; `sc` goes into linux.security_context. */
const config = (sc: Record<string, unknown> = {}) =>
  ({ metadata: { name: 'p', namespace: 'ns', uid: 'u', attempt: 0 }, port_mappings: [], linux: { security_context: sc, sysctls: {} } }) as unknown as PodSandboxConfig;
const map = (host_id: number, length = 65536) => [{ container_id: 0, host_id, length }];
const nsOptions = (o: Record<string, unknown>) => ({ namespace_options: { network: NamespaceMode.POD, pid: NamespaceMode.CONTAINER, ipc: NamespaceMode.POD, ...o } });
const refused = (fn: () => unknown, kind: typeof InvalidArgument | typeof FailedPrecondition, message: RegExp) =>
  assert.throws(fn, (e: Error) => e instanceof kind && message.test(e.message));

describe('RunPodSandbox under each runtime handler', () => {
  it('gives a pod of the userns handler a range of the pool when kubelet sends no mappings (hostUsers unset: mode NODE or none)', () => {
    for (const sc of [{}, nsOptions({ userns_options: { mode: NamespaceMode.NODE, uids: [], gids: [] } })]) {
      const spec = podSpec(config(sc), 'skiff-userns', served);
      assert.equal(spec.usernsFromPool, true);
      assert.equal(spec.userns, null);
      assert.equal(spec.runtimeHandler, 'skiff-userns');
    }
    for (const handler of ['', 'skiff']) assert.equal(podSpec(config(), handler, served).usernsFromPool, false, handler);
  });

  it("keeps kubelet's own mappings (hostUsers: false), which its volumes' mappings match", () => {
    const spec = podSpec(config(nsOptions({ userns_options: { mode: NamespaceMode.POD, uids: map(1000, 100000), gids: map(1000, 100000) } })), 'skiff-userns', served);
    assert.equal(spec.usernsFromPool, false);
    assert.deepEqual(spec.userns?.uidMappings, [{ containerID: 0, hostID: 1000, size: 100000 }]);
  });

  it('refuses the host network, PID and IPC namespaces and privileged pods under the userns handler, naming why', () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [nsOptions({ network: NamespaceMode.NODE }), /namespace_options\.network NODE \(the host's network\) is refused \(the host's loopback services/],
      [nsOptions({ pid: NamespaceMode.NODE }), /namespace_options\.pid NODE .* is refused \(a user namespace cannot mount the host PID namespace's \/proc\)/],
      [nsOptions({ ipc: NamespaceMode.NODE }), /namespace_options\.ipc NODE .* is refused \(a user namespace cannot mount the host IPC namespace's \/dev\/mqueue\)/],
      [{ privileged: true }, /security_context\.privileged \(a privileged pod\) is refused/],
    ];
    for (const [sc, message] of cases) {
      refused(() => podSpec(config(sc), 'skiff-userns', served), InvalidArgument, /^runtime handler "skiff-userns" runs every pod in a user namespace of its own/);
      refused(() => podSpec(config(sc), 'skiff-userns', served), InvalidArgument, message);
      podSpec(config(sc), 'skiff', served);
    }
  });

  it('refuses mappings that reach into the pool, under either handler', () => {
    for (const handler of ['skiff', 'skiff-userns']) {
      refused(
        () => podSpec(config(nsOptions({ userns_options: { mode: NamespaceMode.POD, uids: map(POOL.first - 10, 11), gids: map(5000) } })), handler, served),
        InvalidArgument,
        /userns_options\.uids\[0\]: host ids 1073741814\+11 overlap the ids skiff gives the userns handler's pods \(1073741824 to 1074003967/,
      );
      refused(() => podSpec(config(nsOptions({ userns_options: { mode: NamespaceMode.POD, uids: map(5000), gids: map(POOL.end - 1, 1) } })), handler, served), InvalidArgument, /gids\[0\]/);
    }
    // With the handler off there is no pool to keep clear of.
    podSpec(config(nsOptions({ userns_options: { mode: NamespaceMode.POD, uids: map(POOL.first), gids: map(POOL.first) } })), 'skiff', { ...served, userns: '', usernsPool: undefined });
  });

  it('answers FAILED_PRECONDITION for the userns handler on a kernel that cannot run it, and INVALID_ARGUMENT for an unknown handler', () => {
    refused(() => podSpec(config(), 'skiff-userns', { ...served, usernsUnavailable: 'idmapMounts: EINVAL' }), FailedPrecondition, /"skiff-userns": this kernel cannot .* \(idmapMounts: EINVAL\)/);
    refused(() => podSpec(config(), 'kata', served), InvalidArgument, /runtime handler "kata" is not configured \(skiff serves "skiff", "skiff-userns" and the default ""\)/);
    refused(() => podSpec(config(), 'skiff-userns', { ...served, userns: '' }), InvalidArgument, /"skiff-userns" is not configured \(skiff serves "skiff" and/);
  });

  it('lets image calls name every configured handler', () => {
    assert.deepEqual(servedHandlerNames(served), ['skiff', 'skiff-userns']);
    assert.deepEqual(servedHandlerNames({ ...served, userns: '' }), ['skiff']);
  });
});
