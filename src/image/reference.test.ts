import assert from 'node:assert/strict';
import { InvalidArgument } from '../errors';
import { formatReference, parseReference } from './reference';

describe('image references', () => {
  const cases: [string, string][] = [
    ['busybox', 'docker.io/library/busybox:latest'],
    ['busybox:1.36', 'docker.io/library/busybox:1.36'],
    ['library/busybox', 'docker.io/library/busybox:latest'],
    ['docker.io/busybox', 'docker.io/library/busybox:latest'],
    ['index.docker.io/library/busybox:1', 'docker.io/library/busybox:1'],
    ['bitnami/redis:7', 'docker.io/bitnami/redis:7'],
    ['registry.k8s.io/pause:3.9', 'registry.k8s.io/pause:3.9'],
    ['127.0.0.1:5000/test/img', '127.0.0.1:5000/test/img:latest'],
    ['localhost/img:v1', 'localhost/img:v1'],
    ['gcr.io/a/b/c:d', 'gcr.io/a/b/c:d'],
    [`busybox@sha256:${'a'.repeat(64)}`, `docker.io/library/busybox@sha256:${'a'.repeat(64)}`],
    [`busybox:1.36@sha256:${'b'.repeat(64)}`, `docker.io/library/busybox:1.36@sha256:${'b'.repeat(64)}`],
    ['[::1]:5000/x:y', '[::1]:5000/x:y'],
  ];
  for (const [input, want] of cases) {
    it(`normalizes ${input}`, () => assert.equal(formatReference(parseReference(input)), want));
  }

  const bad: [string, RegExp][] = [
    ['', /empty/],
    ['Busybox', /bad repository component "Busybox"/],
    ['busybox:', /bad tag ""/],
    ['busybox:bad tag', /bad tag/],
    ['busybox@sha256:short', /bad digest/],
    ['a//b', /bad repository component ""/],
    ['../etc/passwd', /bad registry host "\.\."/],
    ['reg.io/a/../b', /bad repository component "\.\."/],
  ];
  for (const [input, re] of bad) {
    it(`refuses ${JSON.stringify(input)}`, () => {
      assert.throws(() => parseReference(input), (e: Error) => e instanceof InvalidArgument && re.test(e.message));
    });
  }
});
