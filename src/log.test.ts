import assert from 'node:assert/strict';
import { PassThrough } from 'stream';
import { Logger } from './log';

function capture(level: 'debug' | 'info' | 'warn' | 'error', human: boolean) {
  const out = new PassThrough();
  let text = '';
  out.on('data', (d: Buffer) => (text += d.toString()));
  return { log: new Logger(level, { component: 'test' }, out, human), text: () => text };
}

describe('Logger', () => {
  it('writes one JSON object a line with time, level, message and fields', () => {
    const c = capture('info', false);
    c.log.with({ pod: 'p1' }).info('started', { ms: 1.5 });
    const line = JSON.parse(c.text().trim());
    assert.equal(line.level, 'info');
    assert.equal(line.msg, 'started');
    assert.deepEqual({ component: line.component, pod: line.pod, ms: line.ms }, { component: 'test', pod: 'p1', ms: 1.5 });
    assert.ok(!Number.isNaN(Date.parse(line.time)));
  });
  it('drops lines under its level, and follows setLevel', () => {
    const c = capture('warn', false);
    c.log.info('hidden');
    c.log.warn('shown');
    c.log.setLevel('debug');
    c.log.debug('now shown');
    assert.deepEqual(c.text().trim().split('\n').map((l) => JSON.parse(l).msg), ['shown', 'now shown']);
  });
  it('writes readable lines for a terminal', () => {
    const c = capture('info', true);
    c.log.error('failed', { error: 'boom', n: 2 });
    assert.match(c.text(), /^\S+Z ERROR failed component=test error=boom n=2\n$/);
  });
});
