import assert from 'node:assert/strict';
import { Protocol, type PortMapping } from '../cri/gen/cri';
import { InvalidArgument } from '../errors';
import { checkPortMappings, cniPortMappings } from './port_mappings';

const pm = (container_port: number, host_port = 0, protocol = Protocol.TCP, host_ip = ''): PortMapping => ({ container_port, host_port, protocol, host_ip });
const refused = (mappings: PortMapping[], message: RegExp) =>
  assert.throws(() => checkPortMappings(mappings), (e: Error) => e instanceof InvalidArgument && message.test(e.message), JSON.stringify(mappings));

describe('pod port mappings', () => {
  it('takes what kubelet sends: container ports alone, host ports, the same port on other protocols or host IPs', () => {
    checkPortMappings([]);
    checkPortMappings([
      pm(80),
      pm(80, 0, Protocol.UDP),
      pm(8080, 8080),
      pm(8080, 8080, Protocol.UDP),
      pm(8080, 8080, Protocol.SCTP),
      pm(8081, 8080, Protocol.TCP, '127.0.0.1'),
      pm(8082, 8080, Protocol.TCP, '::1'),
      pm(1, 65535),
      pm(65535, 1),
    ]);
  });

  it('refuses ports outside their range, naming the entry and the field', () => {
    refused([pm(80), pm(0)], /^config\.port_mappings\[1\]\.container_port: 0 is not in 1-65535$/);
    refused([pm(65536)], /^config\.port_mappings\[0\]\.container_port: 65536/);
    refused([pm(-80)], /^config\.port_mappings\[0\]\.container_port: -80/);
    refused([pm(80), pm(81), pm(82, 70000)], /^config\.port_mappings\[2\]\.host_port: 70000 is not 0 \(no host port\) or in 1-65535$/);
    refused([pm(80, -1)], /^config\.port_mappings\[0\]\.host_port: -1/);
  });

  it('refuses an unknown protocol and a host_ip that is no address', () => {
    refused([pm(80, 8080, 3 as Protocol)], /^config\.port_mappings\[0\]\.protocol: 3 is not TCP \(0\), UDP \(1\) or SCTP \(2\)$/);
    refused([pm(80, 0, -1 as Protocol)], /^config\.port_mappings\[0\]\.protocol: -1/);
    refused([pm(80, 8080, Protocol.TCP, 'localhost')], /^config\.port_mappings\[0\]\.host_ip: "localhost" is not an IP address$/);
  });

  it('refuses a host port mapped twice on the same host_ip and protocol, naming both entries', () => {
    refused([pm(80, 8080), pm(81, 9090), pm(82, 8080)], /^config\.port_mappings\[2\]\.host_port: 8080\/TCP on host_ip "" is already mapped by config\.port_mappings\[0\]$/);
    refused([pm(80, 53, Protocol.UDP, '10.0.0.1'), pm(81, 53, Protocol.UDP, '10.0.0.1')], /port_mappings\[1\]\.host_port: 53\/UDP on host_ip "10\.0\.0\.1"/);
  });

  it('hands CNI only the mappings with a host port, by protocol name', () => {
    assert.deepEqual(cniPortMappings([pm(80), pm(53, 5353, Protocol.UDP, '127.0.0.1'), pm(9, 9000, Protocol.SCTP)]), [
      { protocol: 'udp', containerPort: 53, hostPort: 5353, hostIp: '127.0.0.1' },
      { protocol: 'sctp', containerPort: 9, hostPort: 9000, hostIp: undefined },
    ]);
  });
});
