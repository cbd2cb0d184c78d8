import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

import { incompatibility, parseVersion } from '../src/version';

test('versions parse as MAJOR.MINOR', () => {
  assert.deepEqual(parseVersion('1.1'), { major: 1, minor: 1 });
  assert.deepEqual(parseVersion(' 2.10 '), { major: 2, minor: 10 });
  assert.equal(parseVersion('1'), undefined);
  assert.equal(parseVersion('1.1.0'), undefined);
  assert.equal(parseVersion('v1.1'), undefined);
});

test('same major and a minor at least as new is compatible', () => {
  assert.equal(incompatibility('1.1', '1.1', '/b'), undefined);
  assert.equal(incompatibility('1.1', '1.4', '/b'), undefined);
  assert.equal(incompatibility('1.0', undefined, '/b'), undefined);
});

test('an older daemon names both versions and says to update remocal', () => {
  const m = incompatibility('1.1', undefined, '/usr/bin/remocal');
  assert.ok(m);
  assert.match(m, /\/usr\/bin\/remocal speaks daemon protocol 1\.0/);
  assert.match(m, /needs 1\.1/);
  assert.match(m, /update remocal/);
  assert.match(m, /remocal\.binaryPath/);
  assert.match(incompatibility('2.0', '1.9', '/b') ?? '', /update remocal/);
});

test('a newer major daemon says to update the extension', () => {
  assert.match(incompatibility('1.1', '2.0', '/b') ?? '', /update the remocal extension/);
  assert.match(incompatibility('1.1', 'garbage', '/b') ?? '', /speaks daemon protocol garbage/);
});

test('package.json declares the protocol the code needs', () => {
  const pkg = JSON.parse(readFileSync(path.resolve(__dirname, '../../package.json'), 'utf8')) as { remocalProtocol?: string };
  assert.equal(pkg.remocalProtocol, '1.1');
});
