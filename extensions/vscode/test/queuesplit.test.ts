// Every golden vector of protocol/testdata/queuesplit decodes strictly with the TypeScript
// types, and a file the test cannot map to a type fails it.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

import { arr, type Check, decode, DecodeError } from '../src/check';
import * as p from '../src/protocol';

const dir = path.join(path.resolve(__dirname, '../../../..'), 'protocol/testdata/queuesplit');

const vectors: Record<string, Check<unknown>> = {
  'splits.json': arr(p.checkQueueSplit),
  'remocalqueueconsumer.json': p.checkRemocalQueueConsumer,
  'remocalqueueconsumer-list.json': p.checkRemocalQueueConsumerList,
};

const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();

test('every mapped queue-split vector is there', () => {
  assert.deepEqual(files, Object.keys(vectors).sort());
});

for (const file of files) {
  test(`golden queuesplit/${file} decodes strictly and completely`, () => {
    const check = vectors[file];
    assert.ok(check, `${file}: no TypeScript type for it; add it to vectors in test/queuesplit.test.ts and its type to src/protocol.ts`);
    const raw = JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as unknown;
    assert.deepEqual(JSON.parse(JSON.stringify(decode(check, raw, true))), raw);
  });
}

test('a split with an unknown mode fails at its path', () => {
  assert.throws(() => decode(arr(p.checkQueueSplit), [{ consumer: 'w', mode: 'copy' }], true),
    (e: unknown) => e instanceof DecodeError && e.path === '$[0].mode');
});
