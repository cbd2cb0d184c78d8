// The picker's entries, recent targets, the status bar text and the
// actions offered for daemon errors.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

import { decode } from '../src/check';
import { DaemonError, DaemonUnavailable } from '../src/daemon';
import { actionsFor, describeError } from '../src/errors';
import { maxRecent, pickEntries, policiesArgs, rememberRecent, statusText, stored, targetless, withContainer } from '../src/pickerModel';
import { checkErrorData, checkTargetsResult, ErrorCodes } from '../src/protocol';

const goldens = path.resolve(__dirname, '../../../../protocol/testdata/daemon');
const targets = decode(checkTargetsResult, JSON.parse(readFileSync(
  path.join(goldens, 'remocal.targets.result.json'), 'utf8')) as unknown).targets;

test('entries: recent first, targetless, then targets by namespace with kind and readiness', () => {
  const recent = [{ ref: 'deployment/inventory', namespace: 'shop', provider: 'kubernetes' }];
  const e = pickEntries(targets, recent, { namespaceCount: 2, enabled: true, current: recent[0] });
  assert.deepEqual(e.map((x) => x.separator ? `--${x.label}` : x.label), [
    '--recent', '$(history) deployment/inventory',
    '--other', '$(globe) targetless', '$(list-filter) Namespace…', '$(circle-slash) Turn remocal off',
    '--local (local)', '$(server-process) pid/4242',
    '--shop (kubernetes)', '$(layers) deployment/inventory',
  ]);
  assert.equal(e[1].description, 'shop · 2/3 ready · current');
  const deploy = e[e.length - 1];
  assert.equal(deploy.description, 'shop · 2/3 ready');
  assert.equal(deploy.detail, 'remocal.local/examples/inventory:dev, istio/proxyv2:1.24 · containers: inventory, migrate');
  assert.deepEqual(deploy.choice, { kind: 'target', target: { ref: 'deployment/inventory', namespace: 'shop', provider: 'kubernetes' }, containers: ['inventory', 'migrate'] });
  // A local process has no Kubernetes namespace.
  assert.deepEqual(stored(targets[0]), { ref: 'pid/4242', provider: 'local' });
  assert.equal(pickEntries([{ ...targets[0], ready: false }], [], { namespaceCount: 1, enabled: false }).at(-1)?.description, 'local · $(warning) not ready');
});

test('a non-default container is named in the ref', () => {
  const t = stored(targets[1]);
  assert.equal(withContainer(t, ['inventory', 'migrate'], 'inventory'), t);
  assert.deepEqual(withContainer(t, ['inventory', 'migrate'], 'migrate'),
    { ref: 'deployment/inventory/container/migrate', namespace: 'shop', provider: 'kubernetes', container: 'migrate' });
});

test('recent targets: newest first, no duplicates, bounded', () => {
  let r = rememberRecent([], targetless);
  for (let i = 0; i < 10; i++) {
    r = rememberRecent(r, { ref: `pid/${i}`, provider: 'local' });
  }
  r = rememberRecent(r, { ref: 'pid/7', provider: 'local' });
  assert.equal(r.length, maxRecent);
  assert.deepEqual(r.map((x) => x.ref), ['pid/7', 'pid/9', 'pid/8', 'pid/6', 'pid/5']);
});

test('the status bar says off, or the target with its namespace', () => {
  assert.equal(statusText(false, { ref: 'pid/1' }), 'remocal: off');
  assert.equal(statusText(true, { ref: 'pid/1' }), 'remocal: pid/1');
  assert.equal(statusText(true, { ref: 'deployment/api', namespace: 'shop' }), 'remocal: deployment/api (shop)');
  assert.equal(statusText(true, undefined), 'remocal: no target');
});

test('daemon errors come with the actions that fix them', () => {
  assert.deepEqual(actionsFor(ErrorCodes.invalidConfig), ['openConfig']);
  assert.deepEqual(actionsFor(ErrorCodes.conflict), ['stealWithHeader', 'pickTarget']);
  assert.deepEqual(actionsFor(ErrorCodes.targetNotFound), ['pickTarget', 'openConfig']);
  const bad = describeError('starting a session', new DaemonError(ErrorCodes.invalidConfig, 'the overrides have 1 problem(s)', 'invalid_config',
    [{ path: '$.network.incoming.mode', message: 'got "copy"' }]));
  assert.equal(bad.message, 'remocal: starting a session failed: the overrides have 1 problem(s) — $.network.incoming.mode: got "copy"');
  assert.deepEqual(describeError('x', new DaemonUnavailable('no binary', true)).actions, ['openSettings', 'showLog']);
  assert.deepEqual(describeError('x', new DaemonUnavailable('went away')).actions, ['restartDaemon', 'showLog']);
  assert.match(describeError('x', new Error('boom')).message, /boom; the log \(remocal: Show Log\) has details/);
});

test('a policy refusal names the policy and offers to show the target\'s policies', () => {
  const data = decode(checkErrorData, JSON.parse(readFileSync(path.join(goldens, 'error.policy.params.json'), 'utf8')) as unknown);
  assert.deepEqual(actionsFor(ErrorCodes.policy), ['showPolicies', 'openConfig']);
  const named = describeError('starting a session', new DaemonError(ErrorCodes.policy,
    'RemocalPolicy shop/no-steal denies it (rule incoming.blockSteal): stealing port 8080 of deployment/api is not allowed', data.reason, [], data.policy));
  assert.equal(named.message, 'remocal: starting a session failed: RemocalPolicy shop/no-steal denies it (rule incoming.blockSteal): stealing port 8080 of deployment/api is not allowed');
  assert.deepEqual(named.actions, ['showPolicies', 'openConfig']);
  const terse = describeError('starting a session', new DaemonError(ErrorCodes.policy, 'not allowed', data.reason, [], data.policy));
  assert.equal(terse.message, 'remocal: starting a session failed: not allowed (refused by RemocalPolicy shop/no-steal, rule incoming.blockSteal)');
  assert.deepEqual(policiesArgs('deployment/api', 'shop'), ['-n', 'shop', '-t', 'deployment/api']);
  assert.deepEqual(policiesArgs('targetless', undefined), []);
});
