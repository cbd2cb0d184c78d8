import assert from 'node:assert/strict';
import { test } from 'node:test';

import { problemSpan } from '../src/problems';

const file = [
  '{',
  '  "target": "pid/4242",',
  '  "network": { "incoming": { "mode": "copy" } },',
  '  "env": { "include": [1] }',
  '}',
];

test('a problem covers the value at its line and column', () => {
  // The daemon's line and column are 1-based; the column is the value's first character.
  const col = file[2].indexOf('"copy"') + 1;
  assert.deepEqual(problemSpan({ path: '$.network.incoming.mode', line: 3, column: col, message: 'm' }, file),
    { line: 2, character: col - 1, endLine: 2, endCharacter: col - 1 + '"copy"'.length });
  const num = file[3].indexOf('1') + 1;
  assert.deepEqual(problemSpan({ path: '$.env.include[0]', line: 4, column: num, message: 'm' }, file),
    { line: 3, character: num - 1, endLine: 3, endCharacter: num });
});

test('a problem without a position marks the first line', () => {
  assert.deepEqual(problemSpan({ path: '$', message: 'm' }, file), { line: 0, character: 0, endLine: 0, endCharacter: 1 });
  assert.deepEqual(problemSpan({ path: '$', message: 'm' }, []), { line: 0, character: 0, endLine: 0, endCharacter: 0 });
});

test('positions past the text are clamped to it', () => {
  assert.deepEqual(problemSpan({ path: '$.x', line: 99, column: 99, message: 'm' }, file), { line: 4, character: 1, endLine: 4, endCharacter: 1 });
  // The file changed since the daemon read it: still a valid range.
  assert.deepEqual(problemSpan({ path: '$.x', line: 2, column: 500, message: 'm' }, file).line, 1);
});
