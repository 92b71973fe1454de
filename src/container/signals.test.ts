import assert from 'node:assert/strict';
import { parseInitDropsSignal } from './signals';

const status = (nspid: string, sigcgt: string) => `Name:\tsh\nNSpid:\t${nspid}\nSigIgn:\t0000000000000000\nSigCgt:\t${sigcgt}\n`;

describe('parseInitDropsSignal', () => {
  it('drops a signal a namespace init has no handler for', () => {
    assert.equal(parseInitDropsSignal(status('4242\t1', '0000000000000000'), 15), true);
  });
  it('delivers a signal the init catches (SIGTERM is bit 14)', () => {
    assert.equal(parseInitDropsSignal(status('4242\t1', '0000000000004000'), 15), false);
    assert.equal(parseInitDropsSignal(status('4242\t1', '0000000000004000'), 10), true);
  });
  it('delivers to a process that is not a namespace init', () => {
    assert.equal(parseInitDropsSignal(status('4242\t7', '0000000000000000'), 15), false);
    assert.equal(parseInitDropsSignal(status('4242', '0000000000000000'), 15), false);
  });
});
