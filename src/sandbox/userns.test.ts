import assert from 'node:assert/strict';
import { NamespaceMode } from '../cri/gen/cri';
import { InvalidArgument } from '../errors';
import { MAX_ID_MAP_LINES, checkIdMappings, checkPodUserNamespace } from './userns';

const m = (container_id: number, host_id: number, length: number) => ({ container_id, host_id, length });
const refused = (fn: () => void, message: RegExp) => assert.throws(fn, (e: Error) => e instanceof InvalidArgument && message.test(e.message));

describe('pod user namespace mappings', () => {
  it('takes one range or several that do not overlap, with container id 0 mapped', () => {
    checkIdMappings([m(0, 100000, 65536)], 'uids');
    checkIdMappings([m(1000, 200000, 64536), m(0, 100000, 1000)], 'uids');
    checkIdMappings([m(0, 2 ** 32 - 1 - 65536, 65536)], 'uids');
    // A mount's map need not hold the pod's root.
    checkIdMappings([m(1000, 200000, 10)], 'mounts[0].uidMappings', { rootMapped: false });
  });

  it('refuses empty, overflowing and overlapping ranges, and an unmapped root, naming the entry', () => {
    refused(() => checkIdMappings([m(0, 1, 0)], 'uids'), /^uids\[0\]\.length must be at least 1$/);
    refused(() => checkIdMappings([m(0, 2 ** 32 - 10, 11)], 'uids'), /uids\[0\]: host ids \d+\+11 overflow 2\^32/);
    refused(() => checkIdMappings([m(2 ** 32 - 1, 0, 2)], 'uids'), /container ids \d+\+2 overflow/);
    // The kernel refuses a range that takes in 2^32-1, the invalid id.
    refused(() => checkIdMappings([m(0, 2 ** 32 - 65536, 65536)], 'uids'), /host ids \d+\+65536 overflow 2\^32/);
    refused(() => checkIdMappings([m(0, 100000, 10), m(9, 200000, 5)], 'gids'), /gids: \[0\] and \[1\] overlap in their container ids/);
    refused(() => checkIdMappings([m(10, 100000, 10), m(0, 100005, 5)], 'gids'), /gids: \[0\] and \[1\] overlap in their host ids/);
    refused(() => checkIdMappings([m(1, 100000, 10)], 'uids'), /uids: container id 0 is not mapped/);
    refused(() => checkIdMappings(Array.from({ length: MAX_ID_MAP_LINES + 1 }, (_, i) => m(i, 100000 + i, 1)), 'uids'), /at most 340/);
  });

  it('asks POD for mappings of both kinds and NODE for none', () => {
    const ok = [m(0, 100000, 65536)];
    checkPodUserNamespace(null);
    checkPodUserNamespace({ mode: NamespaceMode.NODE, uids: [], gids: [] });
    checkPodUserNamespace({ mode: NamespaceMode.POD, uids: ok, gids: ok });
    refused(() => checkPodUserNamespace({ mode: NamespaceMode.NODE, uids: ok, gids: [] }), /userns_options: mode NODE takes no mappings/);
    refused(() => checkPodUserNamespace({ mode: NamespaceMode.POD, uids: ok, gids: [] }), /mode POD needs uid and gid mappings/);
    refused(() => checkPodUserNamespace({ mode: NamespaceMode.CONTAINER, uids: ok, gids: ok }), /mode CONTAINER is not supported for pods/);
    refused(() => checkPodUserNamespace({ mode: NamespaceMode.POD, uids: ok, gids: [m(1, 5, 5)] }), /userns_options\.gids: container id 0 is not mapped/);
  });
});
