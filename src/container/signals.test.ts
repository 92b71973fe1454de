import assert from 'node:assert/strict';
import { Signal } from '../cri/gen/cri';
import { InvalidArgument } from '../errors';
import { criSignal, criSignalNumber, parseInitDropsSignal, recordedStopSignal, signalName, signalNumber, stopSignalInForce } from './signals';

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
  it('delivers SIGKILL and SIGSTOP to an init without handlers (they come from the ancestor namespace)', () => {
    assert.equal(parseInitDropsSignal(status('4242\t1', '0000000000000000'), 9), false);
    assert.equal(parseInitDropsSignal(status('4242\t1', '0000000000000000'), 19), false);
  });
  it('tests real-time signals by their bit (SIGRTMIN+3 = 37 is bit 36)', () => {
    assert.equal(parseInitDropsSignal(status('4242\t1', '0000001000000000'), 37), false);
    assert.equal(parseInitDropsSignal(status('4242\t1', '0000001000000000'), 38), true);
  });
});

// Every value of the CRI enum with the number the kernel (and `kill -l`) gives it.
const LINUX: [keyof typeof Signal, number][] = [
  ['SIGABRT', 6], ['SIGALRM', 14], ['SIGBUS', 7], ['SIGCHLD', 17], ['SIGCLD', 17], ['SIGCONT', 18], ['SIGFPE', 8],
  ['SIGHUP', 1], ['SIGILL', 4], ['SIGINT', 2], ['SIGIO', 29], ['SIGIOT', 6], ['SIGKILL', 9], ['SIGPIPE', 13],
  ['SIGPOLL', 29], ['SIGPROF', 27], ['SIGPWR', 30], ['SIGQUIT', 3], ['SIGSEGV', 11], ['SIGSTKFLT', 16], ['SIGSTOP', 19],
  ['SIGSYS', 31], ['SIGTERM', 15], ['SIGTRAP', 5], ['SIGTSTP', 20], ['SIGTTIN', 21], ['SIGTTOU', 22], ['SIGURG', 23],
  ['SIGUSR1', 10], ['SIGUSR2', 12], ['SIGVTALRM', 26], ['SIGWINCH', 28], ['SIGXCPU', 24], ['SIGXFSZ', 25],
  ['SIGRTMIN', 34], ['SIGRTMINPLUS1', 35], ['SIGRTMINPLUS2', 36], ['SIGRTMINPLUS3', 37], ['SIGRTMINPLUS4', 38],
  ['SIGRTMINPLUS5', 39], ['SIGRTMINPLUS6', 40], ['SIGRTMINPLUS7', 41], ['SIGRTMINPLUS8', 42], ['SIGRTMINPLUS9', 43],
  ['SIGRTMINPLUS10', 44], ['SIGRTMINPLUS11', 45], ['SIGRTMINPLUS12', 46], ['SIGRTMINPLUS13', 47], ['SIGRTMINPLUS14', 48],
  ['SIGRTMINPLUS15', 49], ['SIGRTMAXMINUS14', 50], ['SIGRTMAXMINUS13', 51], ['SIGRTMAXMINUS12', 52], ['SIGRTMAXMINUS11', 53],
  ['SIGRTMAXMINUS10', 54], ['SIGRTMAXMINUS9', 55], ['SIGRTMAXMINUS8', 56], ['SIGRTMAXMINUS7', 57], ['SIGRTMAXMINUS6', 58],
  ['SIGRTMAXMINUS5', 59], ['SIGRTMAXMINUS4', 60], ['SIGRTMAXMINUS3', 61], ['SIGRTMAXMINUS2', 62], ['SIGRTMAXMINUS1', 63],
  ['SIGRTMAX', 64],
];
// Aliases map back to the name the enum lists first for their number.
const ALIAS: Partial<Record<keyof typeof Signal, keyof typeof Signal>> = { SIGCLD: 'SIGCHLD', SIGIOT: 'SIGABRT', SIGPOLL: 'SIGIO' };

describe('CRI Signal <-> Linux signal numbers', () => {
  it('covers every value of the enum but RUNTIME_DEFAULT', () => {
    const values = Object.values(Signal).filter((v): v is Signal => typeof v === 'number' && v !== Signal.RUNTIME_DEFAULT);
    assert.deepEqual(LINUX.map(([name]) => Signal[name]).sort((a, b) => a - b), values.sort((a, b) => a - b));
  });
  for (const [name, n] of LINUX) {
    it(`${name} is ${n}, and ${n} is ${ALIAS[name] ?? name}`, () => {
      assert.equal(criSignalNumber(Signal[name]), n);
      assert.equal(criSignal(n), Signal[ALIAS[name] ?? name]);
    });
  }
  it('has no number for RUNTIME_DEFAULT or a value outside the enum', () => {
    for (const v of [0, 66, 99, -1]) assert.equal(criSignalNumber(v as Signal), undefined, String(v));
  });
  it('reports RUNTIME_DEFAULT for numbers without a CRI name (32, 33: glibc keeps them)', () => {
    for (const n of [0, 32, 33, 65]) assert.equal(criSignal(n), Signal.RUNTIME_DEFAULT, String(n));
  });
});

describe('signalNumber and signalName (image STOPSIGNAL forms)', () => {
  it('reads names with or without SIG, any case, and numbers', () => {
    assert.equal(signalNumber('SIGQUIT'), 3);
    assert.equal(signalNumber('quit'), 3);
    assert.equal(signalNumber('9'), 9);
    assert.equal(signalNumber('RTMIN'), 34);
    assert.equal(signalNumber('SIGRTMIN+3'), 37);
    assert.equal(signalNumber('rtmax-2'), 62);
    assert.equal(signalNumber('SIGRTMAX'), 64);
  });
  it('refuses unknown names, 0 and numbers or offsets past the real-time range', () => {
    for (const s of ['', 'SIGFLY', '0', '65', 'SIGRTMIN+31', 'SIGRTMAX+1', 'SIGRTMIN-1', 'SIG', 'constructor']) assert.equal(signalNumber(s), undefined, s);
  });
  it('names numbers as the CRI enum and kill -l do', () => {
    assert.equal(signalName(6), 'SIGABRT');
    assert.equal(signalName(34), 'SIGRTMIN');
    assert.equal(signalName(49), 'SIGRTMIN+15');
    assert.equal(signalName(50), 'SIGRTMAX-14');
    assert.equal(signalName(64), 'SIGRTMAX');
    assert.equal(signalName(32), undefined);
  });
  it('round-trips every number from 1 to 64 that has a name', () => {
    for (let n = 1; n <= 64; n++) {
      const name = signalName(n);
      if (name) assert.equal(signalNumber(name), n, name);
    }
  });
});

describe('stopSignalInForce', () => {
  it("takes the config's stop_signal over the image's STOPSIGNAL", () => {
    assert.equal(stopSignalInForce(Signal.SIGUSR1, 'SIGUSR2'), 'SIGUSR1');
    assert.equal(stopSignalInForce(Signal.SIGRTMINPLUS3, undefined), 'SIGRTMIN+3');
  });
  it("takes the image's STOPSIGNAL, in any form, when the config has none", () => {
    assert.equal(stopSignalInForce(Signal.RUNTIME_DEFAULT, 'SIGUSR2'), 'SIGUSR2');
    assert.equal(stopSignalInForce(Signal.RUNTIME_DEFAULT, 'quit'), 'SIGQUIT');
    assert.equal(stopSignalInForce(Signal.RUNTIME_DEFAULT, '37'), 'SIGRTMIN+3');
    assert.equal(stopSignalInForce(Signal.RUNTIME_DEFAULT, '32'), '32');
  });
  it('falls back to SIGTERM without either, or for an image STOPSIGNAL that names no signal', () => {
    assert.equal(stopSignalInForce(Signal.RUNTIME_DEFAULT, undefined), 'SIGTERM');
    assert.equal(stopSignalInForce(Signal.RUNTIME_DEFAULT, ''), 'SIGTERM');
    assert.equal(stopSignalInForce(Signal.RUNTIME_DEFAULT, 'SIGFLY'), 'SIGTERM');
  });
  it('accepts SIGKILL and SIGSTOP, as Kubernetes and containerd do', () => {
    assert.equal(stopSignalInForce(Signal.SIGKILL, undefined), 'SIGKILL');
    assert.equal(stopSignalInForce(Signal.SIGSTOP, undefined), 'SIGSTOP');
  });
  it('refuses a value outside the enum with InvalidArgument naming stop_signal', () => {
    assert.throws(() => stopSignalInForce(99 as Signal, 'SIGUSR2'), (e: unknown) => e instanceof InvalidArgument && /^stop_signal: 99 /.test(e.message));
  });
});

describe('recordedStopSignal', () => {
  it("reads a record's stop signal, SIGTERM for '' (records written before stop signals)", () => {
    assert.equal(recordedStopSignal('SIGRTMAX-1'), 63);
    assert.equal(recordedStopSignal('USR1'), 10);
    assert.equal(recordedStopSignal('32'), 32);
    assert.equal(recordedStopSignal(''), 15);
    assert.equal(recordedStopSignal('SIGFLY'), 15);
  });
});
