// The List replies kept while nothing changed: every change to the records (one added, a
// state changed, one removed) shows in the next list, filters included, and a list with
// nothing changed is the reply kept.
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { ContainerRecord } from '../container/container_service';
import type { ImageRecord } from '../image/image_service';
import type { PodRecord } from '../sandbox/pod_registry';
import { RecordSet } from '../store/record_set';
import type { ContainerFilter, ListContainersResponse, ListImagesResponse, ListPodSandboxResponse, PodSandboxFilter } from './gen/cri';
import { ContainerState, PodSandboxState } from './gen/cri';
import { listImages } from './image/image_list';
import { ENCODED, Encoded, codec } from './proto';
import { containerLists } from './runtime/container_list';
import { podSandboxLists } from './runtime/sandbox_list';

const podsOf = (e: Encoded) => codec<ListPodSandboxResponse>('ListPodSandboxResponse').decode(e[ENCODED]).items;
const containersOf = (e: Encoded) => codec<ListContainersResponse>('ListContainersResponse').decode(e[ENCODED]).containers;
const imagesOf = (e: Encoded) => codec<ListImagesResponse>('ListImagesResponse').decode(e[ENCODED]).images;

/** A record set on a throwaway dir, as the services hold theirs. */
function recordSet<R extends { id: string; state: string }>(dir: string, podOf?: (r: R) => string) {
  const set = new RecordSet<R>({ dir, validate: (v): v is R => typeof v === 'object', warn: () => {}, idField: 'id', what: 'record', podOf });
  return { set, service: { list: () => set.list(), get: (id: string) => set.get(id), generation: () => set.generation } };
}

function pod(n: number, state: 'ready' | 'notready', app: string): PodRecord {
  return {
    id: String(n).repeat(64).slice(0, 64),
    config: { metadata: { name: `pod${n}`, uid: `uid${n}`, namespace: 'ns', attempt: 0 }, labels: { app }, annotations: {} },
    runtimeHandler: '',
    createdAt: 1_700_000_000_000_000_000 + n,
    state,
  } as unknown as PodRecord;
}

function container(n: number, podId: string, state: 'created' | 'running' | 'exited'): ContainerRecord {
  return {
    id: `c${n}`.repeat(32).slice(0, 64),
    podId,
    config: { metadata: { name: `c${n}`, attempt: 0 }, image: { image: 'busybox', annotations: {} }, labels: { n: String(n) }, annotations: {} },
    imageId: 'sha256:1',
    imageRef: 'busybox@sha256:1',
    createdAt: 1_700_000_000_000_000_000 + n,
    state,
  } as unknown as ContainerRecord;
}

describe('List replies kept while nothing changed', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-list-cache-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('ListPodSandbox shows each pod added, changed and removed, with and without filters', async () => {
    const { set, service } = recordSet<PodRecord>(dir);
    const { ListPodSandbox } = podSandboxLists(service);
    const list = (filter: Partial<PodSandboxFilter> | null = null) => ListPodSandbox({ filter: filter && { id: '', state: null, label_selector: {}, ...filter } });
    const ready = { state: { state: PodSandboxState.SANDBOX_READY } };
    const notReady = { state: { state: PodSandboxState.SANDBOX_NOTREADY } };
    const names = async (filter?: Partial<PodSandboxFilter>) => podsOf(await list(filter)).map((p) => `${p.metadata!.name}:${p.state}`);

    assert.deepEqual(await names(), []);
    await set.save(pod(1, 'ready', 'a'));
    assert.deepEqual(await names(), ['pod1:0']);
    assert.deepEqual(await names(ready), ['pod1:0']);
    assert.deepEqual(await names({ label_selector: { app: 'a' } }), ['pod1:0']);
    const kept = await list();
    assert.equal(await list(), kept, 'nothing changed: the reply kept');

    await set.save(pod(2, 'ready', 'b'));
    assert.deepEqual(await names(), ['pod1:0', 'pod2:0']);
    assert.deepEqual(await names({ label_selector: { app: 'b' } }), ['pod2:0']);
    assert.deepEqual(await names(notReady), []);

    await set.save(pod(1, 'notready', 'a'));
    assert.deepEqual(await names(), ['pod1:1', 'pod2:0']);
    assert.deepEqual(await names(ready), ['pod2:0']);
    assert.deepEqual(await names(notReady), ['pod1:1']);
    assert.deepEqual(await names({ label_selector: { app: 'a' } }), ['pod1:1']);

    await set.delete(set.get(pod(1, 'notready', 'a').id)!);
    assert.deepEqual(await names(), ['pod2:0']);
    assert.deepEqual(await names(notReady), []);
    assert.deepEqual(await names({ label_selector: { app: 'a' } }), []);
  });

  it('ListContainers shows each container added, started, stopped and removed, by pod and by state', async () => {
    const { set, service } = recordSet<ContainerRecord>(dir, (r) => r.podId);
    const { ListContainers } = containerLists(service);
    const list = (filter: Partial<ContainerFilter> | null = null) => ListContainers({ filter: filter && { id: '', pod_sandbox_id: '', state: null, label_selector: {}, ...filter } });
    const byState = (state: ContainerState) => ({ state: { state } });
    const names = async (filter?: Partial<ContainerFilter>) => containersOf(await list(filter)).map((c) => `${c.metadata!.name}:${c.state}`);
    const [podA, podB] = ['a'.repeat(64), 'b'.repeat(64)];

    await set.save(container(1, podA, 'created'));
    await set.save(container(2, podB, 'created'));
    assert.deepEqual(await names(), ['c1:0', 'c2:0']);
    assert.deepEqual(await names({ pod_sandbox_id: podA }), ['c1:0']);
    assert.deepEqual(await names(byState(ContainerState.CONTAINER_RUNNING)), []);
    const kept = await list({ pod_sandbox_id: podB });
    assert.equal(await list({ pod_sandbox_id: podB }), kept, 'nothing changed: the reply kept');

    await set.save(container(1, podA, 'running'));
    assert.deepEqual(await names(), ['c1:1', 'c2:0']);
    assert.deepEqual(await names(byState(ContainerState.CONTAINER_RUNNING)), ['c1:1']);
    assert.deepEqual(await names(byState(ContainerState.CONTAINER_CREATED)), ['c2:0']);
    assert.deepEqual(await names({ pod_sandbox_id: podA }), ['c1:1']);

    await set.save(container(1, podA, 'exited'));
    assert.deepEqual(await names(byState(ContainerState.CONTAINER_RUNNING)), []);
    assert.deepEqual(await names(byState(ContainerState.CONTAINER_EXITED)), ['c1:2']);
    assert.deepEqual(await names({ label_selector: { n: '1' } }), ['c1:2']);

    await set.delete(set.get(container(1, podA, 'exited').id)!);
    assert.deepEqual(await names(), ['c2:0']);
    assert.deepEqual(await names({ pod_sandbox_id: podA }), []);
    assert.deepEqual(await names(byState(ContainerState.CONTAINER_EXITED)), []);
    assert.notEqual(await list({ pod_sandbox_id: podB }), kept, 'a change anywhere makes the replies anew');
    assert.deepEqual(await names({ pod_sandbox_id: podB }), ['c2:0']);
  });

  it('ListImages shows images added, retagged and removed, and pinned as containers come and go', async () => {
    const image = (n: number, tags: string[]): ImageRecord => ({ id: `sha256:${String(n).repeat(64)}`, repoTags: tags, repoDigests: [], size: n, config: {} }) as unknown as ImageRecord;
    // As ImageService does: its generation changes with every change to its records.
    const images = {
      records: [image(1, ['a:1'])],
      generation: 0,
      set(records: ImageRecord[]) {
        this.records = records;
        this.generation++;
      },
    };
    let used = new Set<string>();
    let containers = 0;
    const ListImages = listImages(
      { list: () => [...images.records], find: (ref) => images.records.find((r) => r.repoTags.includes(ref)), keptIds: () => used, get generation() { return images.generation; } },
      [''],
      () => containers,
    );
    const list = (image = '') => ListImages({ filter: image ? { image: { image, annotations: {}, user_specified_image: '', runtime_handler: '', image_ref: '' } } : null });
    const shown = async (ref?: string) => imagesOf(await list(ref)).map((i) => `${i.repo_tags.join(',')}${i.pinned ? ' pinned' : ''}`);

    assert.deepEqual(await shown(), ['a:1']);
    const kept = await list();
    assert.equal(await list(), kept, 'nothing changed: the reply kept');
    images.set([...images.records, image(2, ['b:1'])]);
    assert.deepEqual(await shown(), ['a:1', 'b:1']);
    assert.deepEqual(await shown('b:1'), ['b:1']);
    images.set([image(1, ['a:1']), image(2, ['b:1', 'b:2'])]); // a pull retags
    assert.deepEqual(await shown(), ['a:1', 'b:1,b:2']);
    used = new Set([images.records[0].id]);
    containers++;
    assert.deepEqual(await shown(), ['a:1 pinned', 'b:1,b:2']);
    assert.deepEqual(await shown('a:1'), ['a:1 pinned']);
    images.set([images.records[1]]);
    assert.deepEqual(await shown(), ['b:1,b:2']);
    assert.deepEqual(await shown('a:1'), []);
  });
});
