// Every golden vector of protocol/testdata/daemon decodes strictly with the
// TypeScript types (no field they do not declare, nothing lost on the way),
// and a file the test cannot map to a type fails it: a new payload on the
// Go side needs its type here.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

import { type Check, decode, DecodeError } from '../src/check';
import * as p from '../src/protocol';

export const repoRoot = path.resolve(__dirname, '../../../..');
const goldenDir = path.join(repoRoot, 'protocol/testdata/daemon');

/** Each method or notification (its name with "/" as ".") and the checkers of its params and result. */
const payloads: Record<string, { params?: Check<unknown>; result?: Check<unknown> }> = {
  'initialize': { params: p.checkInitializeParams, result: p.checkInitializeResult },
  'remocal.daemon.info': { result: p.checkDaemonInfo },
  'remocal.daemon.shutdown': { params: p.checkDaemonShutdownParams },
  'remocal.namespaces': { result: p.checkNamespacesResult },
  'remocal.targets': { params: p.checkTargetsParams, result: p.checkTargetsResult },
  'remocal.config.resolve': { params: p.checkConfigParams, result: p.checkConfigResult },
  'remocal.config.verify': { params: p.checkConfigParams, result: p.checkConfigResult },
  'remocal.session.start': { params: p.checkSessionStartParams, result: p.checkSessionStartResult },
  'remocal.session.stop': { params: p.checkSessionParams, result: p.checkNull },
  'remocal.session.kill': { params: p.checkSessionKillParams, result: p.checkNull },
  'remocal.session.list': { result: p.checkSessionListResult },
  'remocal.session.detail': { params: p.checkSessionParams, result: p.checkSessionDetail },
  'remocal.sessionChanged': { params: p.checkSessionChanged },
  'remocal.conflict': { params: p.checkConflict },
  'remocal.targetsChanged': { params: p.checkTargetsChanged },
  'remocal.configChanged': { params: p.checkConfigChanged },
  'window.showMessage': { params: p.checkShowMessageParams },
  'window.logMessage': { params: p.checkShowMessageParams },
  '$.progress': { params: p.checkProgressParams },
  'error': { params: p.checkErrorData },
};

/**
 * The checker of a golden file: NAME[.VARIANT].(params|result).json,
 * where NAME is the longest key of payloads the file name starts with.
 */
export function checkerFor(file: string): Check<unknown> | undefined {
  const m = /^(.*)\.(params|result)\.json$/.exec(file);
  if (!m) {
    return undefined;
  }
  const [, stem, kind] = m;
  const name = Object.keys(payloads)
    .filter((k) => stem === k || stem.startsWith(`${k}.`))
    .sort((a, b) => b.length - a.length)[0];
  if (name === undefined) {
    return undefined;
  }
  return kind === 'params' ? payloads[name].params : payloads[name].result;
}

const files = readdirSync(goldenDir).filter((f) => f.endsWith('.json')).sort();

test('the golden vectors are there', () => {
  assert.ok(files.length >= 20, `only ${files.length} files in ${goldenDir}`);
});

for (const file of files) {
  test(`golden ${file} decodes strictly and completely`, () => {
    const check = checkerFor(file);
    assert.ok(check, `${file}: no TypeScript type for it; add its method to payloads in test/protocol.test.ts and its type to src/protocol.ts`);
    const raw = JSON.parse(readFileSync(path.join(goldenDir, file), 'utf8')) as unknown;
    const decoded = decode(check, raw, true);
    // Everything the Go side wrote survives decoding (null is "absent").
    assert.deepEqual(JSON.parse(JSON.stringify(decoded)), raw);
  });
}

test('goldens of protocol 1.1 are typed', () => {
  // These decode whether or not the Go side has written them yet.
  const session = { id: 's3', target: 'pid/1', workspaceFolder: '/w', owner: 'o', label: 'debug: Launch', state: 'active', startedAt: '2026-11-25T09:30:00Z', incoming: 'mirror' };
  assert.equal(decode(p.checkSession, session, true).label, 'debug: Launch');
  const start = decode(p.checkSessionStartParams, {
    target: 'pid/1', workspaceFolder: '/w', label: 'terminal', overrides: { network: { incoming: { mode: 'steal' } } },
  }, true);
  assert.deepEqual(start.overrides, { network: { incoming: { mode: 'steal' } } });
  const init = decode(p.checkInitializeResult, { capabilities: { experimental: { remocal: { protocolVersion: '1.1' } } }, serverInfo: { name: 'remocal', version: '0.3.0' } }, true);
  assert.equal(init.capabilities.experimental?.remocal?.protocolVersion, '1.1');
  assert.equal(decode(p.checkDaemonInfo, { version: 'v', protocolVersion: '1.1', pid: 1, socket: 's', sessions: 0, clients: 1, startedAt: '2026-11-25T09:30:00Z' }).protocolVersion, '1.1');
  assert.deepEqual(decode(p.checkSessionKillParams, { namespace: 'shop', name: 's-1' }, true), { namespace: 'shop', name: 's-1' });
});

test('a wrong payload fails at its JSON path', () => {
  assert.throws(() => decode(p.checkSessionListResult, { sessions: [{ id: 's1' }] }),
    (e: unknown) => e instanceof DecodeError && e.path === '$.sessions[0].target');
  assert.throws(() => decode(p.checkConflict, { sessionId: 's1', target: 't', port: -1, mode: 'steal', message: 'm' }),
    (e: unknown) => e instanceof DecodeError && e.path === '$.port');
  assert.throws(() => decode(p.checkSession, { id: 's', target: 't', workspaceFolder: '/', owner: 'o', state: 'weird', startedAt: '2026-11-25T09:30:00Z', incoming: 'mirror' }),
    (e: unknown) => e instanceof DecodeError && e.path === '$.state' && /one of "starting"/.test(e.message));
  // Unknown fields are ignored outside strict mode (the protocol's rule).
  assert.equal(decode(p.checkTargetsChanged, { provider: 'local', extra: 1 }).provider, 'local');
  assert.throws(() => decode(p.checkTargetsChanged, { provider: 'local', extra: 1 }, true), /\$\.extra/);
  assert.equal(decode(p.checkNull, null), null);
  assert.throws(() => decode(p.checkNull, { x: 1 }), DecodeError);
});

test('progress values decode by kind', () => {
  const begin = decode(p.checkProgressParams, { token: 'start-1', value: { kind: 'begin', title: 'remocal', message: 'starting' } }, true);
  assert.deepEqual(begin.value, { kind: 'begin', title: 'remocal', message: 'starting' });
  const end = decode(p.checkProgressParams, { token: 7, value: { kind: 'end' } }, true);
  assert.equal(end.token, 7);
  assert.throws(() => decode(p.checkProgressParams, { token: 't', value: { kind: 'begin' } }), /title/);
});

test('an unknown golden file name maps to nothing', () => {
  assert.equal(checkerFor('remocal.nothing.params.json'), undefined);
  assert.equal(checkerFor('notes.txt'), undefined);
  assert.equal(checkerFor('remocal.session.stop.result.json'), p.checkNull);
  assert.equal(checkerFor('remocal.sessionChanged.remote-ended.params.json'), p.checkSessionChanged);
  // remocal.session.list must not be taken for remocal.session.
  assert.equal(checkerFor('remocal.session.list.remote.result.json'), p.checkSessionListResult);
});

test('queue splits of sessions decode strictly (protocol 1.4)', () => {
  const list = decode(p.checkSessionListResult, JSON.parse(readFileSync(path.join(goldenDir, 'remocal.session.list.queues.result.json'), 'utf8')) as unknown, true);
  assert.equal(list.sessions[0].queueSplits?.[0].env.ORDERS_GROUP, 'workers');
  assert.equal(list.remote?.[0].queueSplits?.[0].delivered, 412);
  // A daemon before 1.4 sends no queueSplits: still a session.
  assert.equal(decode(p.checkSession, { ...list.sessions[0], queueSplits: undefined }, true).queueSplits, undefined);
  const bad = { consumer: 'orders-worker', queue: 'orders', mode: 'steal', since: '2026-11-25T09:30:00Z', delivered: -1 };
  assert.throws(() => decode(p.checkRemoteQueueSplit, bad), (e: unknown) => e instanceof DecodeError && e.path === '$.delivered');
  assert.throws(() => decode(p.checkSessionQueueSplit, { consumer: 'c', queue: 'q', mode: 'copy', env: {} }),
    (e: unknown) => e instanceof DecodeError && e.path === '$.mode');
  // An own session's split always says which variables its programs got.
  assert.throws(() => decode(p.checkSessionQueueSplit, { consumer: 'c', queue: 'q', mode: 'steal' }),
    (e: unknown) => e instanceof DecodeError && e.path === '$.env');
});
