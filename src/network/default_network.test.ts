import assert from 'node:assert/strict';
import { InvalidArgument } from '../errors';
import { parsePodCidrs } from './default_network';

describe('parsePodCidrs', () => {
  const texts = (v: string) => parsePodCidrs(v, 'pod_cidr').map((c) => c.text);

  it('reads one range or an IPv4 and an IPv6 one, IPv4 first, host bits cleared', () => {
    assert.deepEqual(texts('10.244.1.0/24'), ['10.244.1.0/24']);
    assert.deepEqual(texts('10.244.1.7/24'), ['10.244.1.0/24']);
    assert.deepEqual(texts('fd00:10:244:1::/64, 10.244.1.0/24'), ['10.244.1.0/24', 'fd00:10:244:1::/64']);
    assert.deepEqual(texts('FD00:0:0:0:0:0:0:1/64'), ['fd00::/64']);
    assert.deepEqual(texts('2001:db8:0:0:1:0:0:1/112'), ['2001:db8:0:0:1::/112']);
  });

  it('refuses what is not a pod CIDR with InvalidArgument naming the field', () => {
    for (const bad of ['', 'nonsense', '10.1.2.0', '10.1.2.0/33', '10.1.2.0/31', '256.1.2.0/24', '10.1.0.0/16,10.2.0.0/16', 'fd00::1::/64', '10.1.0.0/16,,fd00::/64', 'a,b,c']) {
      assert.throws(() => parsePodCidrs(bad, 'pod_cidr'), (e: Error) => e instanceof InvalidArgument && e.message.startsWith('pod_cidr "'), bad);
    }
  });
});
