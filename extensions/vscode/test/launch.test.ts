// The debug-configuration rewrite: which configurations run in a session,
// the session asked for (the launch "remocal" field merged with the
// workspace's choice), and the configuration handed to the debugger.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';

import {
  apply, type DebugConfig, LaunchFieldError, marker, mergeOverrides, parseLaunchField, plan, type PlanInput, programFor, stealWithHeader,
} from '../src/launch';
import type { SessionStartResult } from '../src/protocol';

const target = { ref: 'deployment/inventory', namespace: 'shop', provider: 'kubernetes' };

function input(config: Partial<DebugConfig>, more: Partial<PlanInput> = {}): PlanInput {
  return {
    config: { type: 'go', request: 'launch', name: 'Run', ...config },
    enabled: true, target, workspaceFolder: '/w', pathEnv: '', isLive: () => false, ...more,
  };
}

function result(more: Partial<SessionStartResult> = {}): SessionStartResult {
  return {
    session: { id: 's7', target: 'deployment/inventory', workspaceFolder: '/w', owner: 'me', state: 'active', startedAt: '2026-11-25T09:30:00Z', incoming: 'mirror' },
    env: { API_TOKEN: 'remote', LD_PRELOAD: '/run/lib.so' }, warnings: [], ...more,
  };
}

test('overrides merge objects key by key and replace everything else', () => {
  const base = { network: { incoming: { mode: 'mirror', ports: [8080] } }, env: { include: ['A*'] } };
  const over = { network: { incoming: { mode: 'steal', ports: [9090] } }, hostname: false };
  assert.deepEqual(mergeOverrides(base, over), {
    network: { incoming: { mode: 'steal', ports: [9090] } }, env: { include: ['A*'] }, hostname: false,
  });
  assert.equal(mergeOverrides(undefined, undefined), undefined);
  assert.deepEqual(mergeOverrides(undefined, over), over);
  // An object replaces a scalar and the other way round.
  assert.deepEqual(mergeOverrides({ a: 1 }, { a: { b: 2 } }), { a: { b: 2 } });
  assert.deepEqual(mergeOverrides({ a: { b: 2 } }, { a: null }), { a: null });
});

test('the launch field is false, absent or a checked object', () => {
  assert.equal(parseLaunchField(undefined, 'x'), undefined);
  assert.equal(parseLaunchField(false, 'x'), false);
  assert.deepEqual(parseLaunchField({ target: 'pid/1', incoming: 'steal' }, 'x'), { target: 'pid/1', incoming: 'steal' });
  // Fields set to undefined (a relaunch built in code) count as absent.
  assert.deepEqual(parseLaunchField({ target: undefined, overrides: { hostname: false } }, 'x'), { overrides: { hostname: false } });
  assert.throws(() => parseLaunchField('yes', 'Run'), (e: unknown) => e instanceof LaunchFieldError && /"Run": "remocal" must be false or an object/.test(e.message));
  assert.throws(() => parseLaunchField({ incoming: 'copy' }, 'x'), /incoming must be "mirror", "steal" or "off"/);
  assert.throws(() => parseLaunchField({ traget: 'pid/1' }, 'x'), /unknown field "traget"/);
  assert.throws(() => parseLaunchField({ overrides: [1] }, 'x'), /overrides must be an object/);
});

test('the session asked for: the workspace target, or the configuration\'s own', () => {
  const p = plan(input({ program: '/w/bin/app', args: ['-v'] }));
  assert.equal(p.kind, 'start');
  assert.deepEqual(p.kind === 'start' && p.params, {
    target: 'deployment/inventory', namespace: 'shop', workspaceFolder: '/w', label: 'debug: Run',
    program: { path: '/w/bin/app', args: ['-v'], launch: 'auto' },
  });
  const own = plan(input({ remocal: { target: 'pid/42', incoming: 'steal', overrides: { hostname: false } } }));
  // The configuration's target does not inherit the workspace target's namespace.
  assert.deepEqual(own.kind === 'start' && own.params, {
    target: 'pid/42', workspaceFolder: '/w', label: 'debug: Run', incoming: 'steal', overrides: { hostname: false },
  });
  const ns = plan(input({ remocal: { namespace: 'qa' } }));
  assert.equal(ns.kind === 'start' && ns.params.namespace, 'qa');
  const extra = plan(input({ remocal: { overrides: { network: { incoming: { mode: 'mirror' } }, hostname: false } } }, { extraOverrides: stealWithHeader('alice') }));
  assert.deepEqual(extra.kind === 'start' && extra.params.overrides, {
    hostname: false, network: { incoming: { mode: 'steal', httpFilter: { headers: { 'X-Remocal-User': 'alice' } } } },
  });
});

test('attach, opt-out, off and already-rewritten configurations are left alone', () => {
  assert.equal(plan(input({ request: 'attach' })).kind, 'skip');
  assert.equal(plan(input({ remocal: false })).kind, 'skip');
  assert.equal(plan(input({}, { enabled: false })).kind, 'skip');
  // A configuration naming its own target runs in it even when remocal is off.
  assert.equal(plan(input({ remocal: { target: 'pid/1' } }, { enabled: false })).kind, 'start');
  const live = plan(input({ [marker]: 'm1' }, { isLive: (m) => m === 'm1' }));
  assert.deepEqual(live, { kind: 'skip', why: 'already in remocal session m1' });
  // js-debug's child sessions carry __pendingTargetId and nothing of the parent's.
  assert.equal(plan(input({ type: 'pwa-node', name: 'app.js [8618]', __pendingTargetId: 'ab12' })).kind, 'skip');
  // A marker of an ended session (a restart) starts a new session.
  assert.equal(plan(input({ [marker]: 'gone' })).kind, 'start');
});

test('env is merged into the configuration\'s env, and the rewrite is idempotent', () => {
  const config = { type: 'go', request: 'launch', name: 'Run', program: '/w/app', env: { DEBUG: '1', API_TOKEN: 'local' } } as DebugConfig;
  const out = apply(config, result(), 'm1');
  assert.deepEqual(out.env, { DEBUG: '1', API_TOKEN: 'remote', LD_PRELOAD: '/run/lib.so' });
  assert.equal(out[marker], 'm1');
  assert.equal(out.program, '/w/app');
  assert.deepEqual(config.env, { DEBUG: '1', API_TOKEN: 'local' }, 'the input is not modified');
  // The same configuration coming back (js-debug children, node→pwa-node) is skipped.
  assert.equal(plan({ ...input({}), config: { ...out, type: 'pwa-node' }, isLive: (m) => m === 'm1' }).kind, 'skip');
});

test('a wrapper replaces the program, or the runtime for node', () => {
  const wrapper = ['/usr/bin/remocal', 'exec', '--join', '/run/s7.sock', '--', '/w/static', '-v'];
  const generic = apply({ type: 'fixture', request: 'launch', name: 'Static', program: '/w/static', args: ['-v'] }, result({ wrapper }));
  assert.equal(generic.program, '/usr/bin/remocal');
  assert.deepEqual(generic.args, wrapper.slice(1));
  const node = apply({ type: 'pwa-node', request: 'launch', name: 'Node', program: '/w/index.js', runtimeArgs: ['--inspect-brk'] },
    result({ wrapper: ['/usr/bin/remocal', 'exec', '--join', '/run/s7.sock', '--', '/usr/bin/node', '--inspect-brk'] }));
  assert.equal(node.runtimeExecutable, '/usr/bin/remocal');
  assert.deepEqual(node.runtimeArgs, ['exec', '--join', '/run/s7.sock', '--', '/usr/bin/node', '--inspect-brk']);
  assert.equal(node.program, '/w/index.js', 'js-debug still passes the script to the runtime');
});

test('the daemon judges node\'s runtime, found on PATH', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'remocal-launch-'));
  try {
    const fakeNode = path.join(dir, 'node');
    writeFileSync(fakeNode, '#!/bin/sh\n', { mode: 0o755 });
    assert.deepEqual(programFor({ type: 'node', request: 'launch', name: 'n', program: '/w/i.js' }, dir), { path: fakeNode, args: [], launch: 'auto' });
    assert.deepEqual(programFor({ type: 'pwa-node', request: 'launch', name: 'n', runtimeExecutable: '/opt/node/bin/node', runtimeArgs: ['--x'] }, ''),
      { path: '/opt/node/bin/node', args: ['--x'], launch: 'auto' });
    // Not on PATH: the name as it is (the daemon then injects env).
    assert.equal(programFor({ type: 'node', request: 'launch', name: 'n' }, '')?.path, 'node');
    assert.equal(programFor({ type: 'python', request: 'launch', name: 'p' }, ''), undefined);
    assert.deepEqual(programFor({ type: 'x', request: 'launch', name: 'p', program: '/a', args: 'not a list' }, ''), { path: '/a', args: [], launch: 'auto' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
