import assert from 'node:assert/strict';
import type { ExecSyncResponse } from '../gen/cri';
import { ENCODED, codec } from '../proto';
import { ExecSyncReply } from './container_exec_sync';

describe('ExecSyncReply (the reply encoded around the output)', () => {
  const replyCodec = codec<ExecSyncResponse>('ExecSyncResponse');
  const fill = (b: Buffer, seed: number) => {
    for (let i = 0; i < b.length; i++) b[i] = (i * 31 + seed) & 0xff;
    return b;
  };

  it('is the ExecSyncResponse the codec encodes, for every size and exit code', () => {
    // Lengths on both sides of each varint byte boundary, the cap among them.
    const sizes = [1, 127, 128, 16383, 16384, 2_097_152, 16 * 1024 * 1024 - 1024];
    for (const [out, err, code] of [[sizes[0], sizes[1], 0], [0, sizes[2], 2], [sizes[3], 0, 0], [sizes[2], sizes[3], 1], [sizes[4], 1, 127], [sizes[5], 300, -1], [sizes[6], 1, 2147483647]] as const) {
      const reply = new ExecSyncReply();
      const { stdout, stderr } = reply.buffers(out, err);
      assert.deepEqual([stdout.length, stderr.length], [out, err]);
      fill(stdout, 1);
      fill(stderr, 2);
      const bytes = reply.encoded(code)[ENCODED];
      const want = replyCodec.encode({ stdout: fill(Buffer.alloc(out), 1), stderr: fill(Buffer.alloc(err), 2), exit_code: code });
      assert.ok(bytes.equals(want), `stdout ${out}, stderr ${err}, exit code ${code}`);
    }
  });

  it('leaves out empty output and a zero exit code, as the codec does', () => {
    const reply = new ExecSyncReply();
    const { stdout, stderr } = reply.buffers(0, 5);
    stderr.write('oops\n');
    assert.equal(stdout.length, 0);
    const bytes = reply.encoded(3)[ENCODED];
    assert.ok(bytes.equals(replyCodec.encode({ stderr: Buffer.from('oops\n'), exit_code: 3 })));
    const decoded = replyCodec.decode(bytes);
    assert.deepEqual([decoded.stdout.length, Buffer.from(decoded.stderr).toString(), decoded.exit_code], [0, 'oops\n', 3]);
    const nothing = new ExecSyncReply();
    nothing.buffers(0, 0);
    assert.equal(nothing.encoded(0)[ENCODED].length, 0);
  });
});
