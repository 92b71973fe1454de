import assert from 'node:assert/strict';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as protobuf from 'protobufjs';
import type { ListPodSandboxResponse, PodSandbox } from './gen/cri';
import { CRI_PACKAGES, ENCODED, EncodedItems, PROTO_FILE, codec, keptDecoder, methodNames, serviceDefinition } from './proto';

describe('EncodedItems (list replies encoded once per item version)', () => {
  const podCodec = codec<PodSandbox>('PodSandbox');
  const listCodec = codec<ListPodSandboxResponse>('ListPodSandboxResponse');
  const pod = (i: number, state: number) => ({
    id: `${i}`.repeat(64).slice(0, 64),
    metadata: { name: `pod${i}`, uid: `uid-${i}`, namespace: 'ns', attempt: 0 },
    state,
    created_at: 1_700_000_000_000_000_000 + i,
    // Long enough that an item's length needs two varint bytes.
    labels: { app: 'x'.repeat(200), 'io.kubernetes.pod.name': `pod${i}` },
    annotations: { a: 'b' },
    runtime_handler: '',
  });

  it('gives the bytes the codec gives for the whole reply, and re-encodes only a changed item', () => {
    let encodes = 0;
    const items = new EncodedItems<ReturnType<typeof pod>>((p) => {
      encodes++;
      return podCodec.encode(p);
    });
    const pods = [pod(1, 0), pod(2, 0), pod(3, 1)];
    const list = () => pods.map((p) => ({ id: p.id, version: String(p.state), item: p }));
    const first = items.reply(1, list(), () => true)[ENCODED];
    assert.deepEqual(first, listCodec.encode({ items: pods }));
    assert.deepEqual(listCodec.decode(first).items.map((p) => p.metadata!.name), ['pod1', 'pod2', 'pod3']);
    assert.equal(encodes, 3);
    pods[1] = pod(2, 1);
    const second = items.reply(1, list(), () => true)[ENCODED];
    assert.equal(encodes, 4, 'only the pod whose state changed is encoded again');
    assert.deepEqual(second, listCodec.encode({ items: pods }));
    assert.equal(listCodec.decode(second).items[1].state, 1);
  });

  it('is sent as it is by the codec, empty when the list is', () => {
    const items = new EncodedItems<ReturnType<typeof pod>>((p) => podCodec.encode(p));
    const reply = items.reply(1, [], () => true);
    assert.equal(listCodec.encode(reply).length, 0);
    assert.deepEqual(listCodec.decode(listCodec.encode(items.reply(1, [{ id: 'x', version: '0', item: pod(7, 0) }], () => true))).items[0].metadata!.name, 'pod7');
  });

  it('forgets items that are gone once it holds many more than a reply', () => {
    let encodes = 0;
    const items = new EncodedItems<ReturnType<typeof pod>>((p) => {
      encodes++;
      return podCodec.encode(p);
    });
    const many = Array.from({ length: 100 }, (_, i) => pod(i, 0));
    items.reply(1, many.map((p) => ({ id: `${p.metadata.name}`, version: '0', item: p })), () => true);
    const kept = many[0];
    // Only pod0 is left: the other 99 are pruned, pod0 stays encoded.
    items.reply(1, [{ id: 'pod0', version: '0', item: kept }], (id) => id === 'pod0');
    encodes = 0;
    items.reply(1, [{ id: 'pod0', version: '0', item: kept }], (id) => id === 'pod0');
    assert.equal(encodes, 0);
    // A pruned id comes back encoded afresh.
    items.reply(1, [{ id: 'pod5', version: '0', item: many[5] }], () => true);
    assert.equal(encodes, 1);
  });
});

describe('the served CRI proto (api/cri/v1/api.proto)', () => {
  /** Every RPC, field and enum value of a protobufjs namespace, one line each, in wire-facts.txt's format. */
  function wireFacts(ns: protobuf.Namespace): string[] {
    const out: string[] = [];
    const walk = (t: protobuf.ReflectionObject, prefix: string): void => {
      if (t instanceof protobuf.Enum) for (const [k, v] of Object.entries(t.values)) out.push(`enum ${prefix}${t.name}.${k} = ${v}`);
      else if (t instanceof protobuf.Service)
        for (const m of t.methodsArray) out.push(`rpc ${t.name}.${m.name}(${m.requestType}) returns (${m.responseStream ? 'stream ' : ''}${m.responseType})`);
      else if (t instanceof protobuf.Type) {
        for (const f of t.fieldsArray) {
          const type = f instanceof protobuf.MapField ? `map<${f.keyType},${f.type}>` : `${f.repeated ? 'repeated ' : ''}${f.type}`;
          out.push(`field ${prefix}${t.name}.${f.name} = ${f.id} ${type}`);
        }
        for (const n of t.nestedArray) walk(n, `${prefix}${t.name}.`);
      }
    };
    for (const t of ns.nestedArray) walk(t, '');
    return out.sort();
  }

  it('states every RPC, field number and enum value of cri-api v0.36.3, and nothing else', () => {
    const served = wireFacts(protobuf.parse(fs.readFileSync(PROTO_FILE, 'utf8'), { keepCase: true }).root.lookup('runtime.v1') as protobuf.Namespace);
    const expected = fs
      .readFileSync(path.join(path.dirname(PROTO_FILE), 'wire-facts.txt'), 'utf8')
      .split('\n')
      .filter((l) => l && !l.startsWith('#'));
    const missing = expected.filter((l) => !served.includes(l));
    const extra = served.filter((l) => !expected.includes(l));
    assert.deepEqual({ missing, extra }, { missing: [], extra: [] });
  });

  it('serves every RPC under runtime.v1 and runtime.v1alpha2, streams as streams', () => {
    for (const service of ['RuntimeService', 'ImageService'] as const) {
      const names = methodNames(service);
      assert.ok(names.length > 0);
      for (const pkg of CRI_PACKAGES) {
        const def = serviceDefinition(pkg, service);
        assert.deepEqual(Object.keys(def).sort(), [...names].sort());
        for (const m of ['StreamPodSandboxes', 'StreamContainers', 'StreamContainerStats', 'StreamPodSandboxStats', 'StreamPodSandboxMetrics', 'StreamImages'])
          if (def[m]) assert.equal(def[m].responseStream, true, `${pkg}.${service}/${m} streams`);
        if (service === 'RuntimeService') assert.equal(def.UpdatePodSandboxResources.path, `/${pkg}.RuntimeService/UpdatePodSandboxResources`);
      }
    }
  });

  it('has TypeScript types in src/cri/gen that are what hack/gen-cri-types.js makes of it', () => {
    const repo = path.resolve(__dirname, '../../..');
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'skiff-gen-cri-'));
    try {
      execFileSync(process.execPath, [path.join(repo, 'hack/gen-cri-types.js'), out]);
      const checkedIn = path.join(repo, 'src/cri/gen');
      assert.deepEqual(fs.readdirSync(checkedIn).sort(), fs.readdirSync(out).sort());
      for (const f of fs.readdirSync(out))
        assert.equal(fs.readFileSync(path.join(checkedIn, f), 'utf8'), fs.readFileSync(path.join(out, f), 'utf8'), `src/cri/gen/${f} is stale: npm run gen:cri`);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  });
});

describe('keptDecoder (List requests decoded once by their bytes)', () => {
  const req = codec<{ filter: { label_selector: Record<string, string> } | null }>('ListPodSandboxRequest');
  const bytes = (uid: string) => req.encode({ filter: { label_selector: { 'io.kubernetes.pod.uid': uid } } });

  it('answers the same bytes with the same read-only object, other bytes with another', () => {
    let decoded = 0;
    const decode = keptDecoder((b: Buffer) => {
      decoded++;
      return req.decode(b);
    });
    const a = decode(bytes('a'));
    assert.equal(decode(Buffer.from(bytes('a'))), a);
    assert.equal(decoded, 1);
    assert.deepEqual(a.filter?.label_selector, { 'io.kubernetes.pod.uid': 'a' });
    assert.throws(() => ((a.filter!.label_selector as Record<string, string>).x = 'y'), TypeError, 'a kept request cannot be changed by a handler');
    assert.notEqual(decode(bytes('b')), a);
    assert.equal(decoded, 2);
  });

  it('decodes a big request each time, without keeping it', () => {
    let decoded = 0;
    const decode = keptDecoder((b: Buffer) => {
      decoded++;
      return req.decode(b);
    }, 16);
    const big = bytes('x'.repeat(64));
    assert.notEqual(decode(big), decode(big));
    assert.equal(decoded, 2);
  });
});
