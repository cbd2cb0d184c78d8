import assert from 'node:assert/strict';
import { test } from 'node:test';

import { FrameGuard } from '../src/framing';

function frame(body: string): Buffer {
  return Buffer.from(`Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
}

function run(chunks: Buffer[], limit = 100): Promise<{ out: Buffer; err?: Error }> {
  return new Promise((resolve) => {
    const g = new FrameGuard(limit);
    const parts: Buffer[] = [];
    g.on('data', (b: Buffer) => parts.push(b));
    g.on('error', (err) => resolve({ out: Buffer.concat(parts), err }));
    g.on('end', () => resolve({ out: Buffer.concat(parts) }));
    for (const c of chunks) {
      g.write(c);
    }
    g.end();
  });
}

test('frames pass through unchanged, split anywhere', async () => {
  const all = Buffer.concat([frame('{"a":1}'), frame('{"b":"\\r\\n\\r\\n"}'), frame('{}')]);
  for (let cut = 1; cut < all.length; cut += 3) {
    const r = await run([all.subarray(0, cut), all.subarray(cut)]);
    assert.equal(r.err, undefined);
    assert.deepEqual(r.out, all);
  }
});

test('a message over the limit fails the stream with what to do', async () => {
  const r = await run([frame('x'.repeat(101))]);
  assert.match(r.err?.message ?? '', /message of 101 bytes, over the limit of 100; restart it/);
});

test('a header without Content-Length fails the stream', async () => {
  const r = await run([Buffer.from('Content-Type: x\r\n\r\n{}')]);
  assert.match(r.err?.message ?? '', /without Content-Length/);
});
