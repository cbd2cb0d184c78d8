// What the sessions view shows for sessions, remote sessions and conflicts.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

import { decode } from '../src/check';
import { checkConflict, checkSessionChanged, checkSessionListResult } from '../src/protocol';
import { conflictNode, formatFilter, keepConflictsMs, remoteNode, sessionNode, SessionsModel } from '../src/sessionsModel';

const golden = (f: string): unknown =>
  JSON.parse(readFileSync(path.resolve(__dirname, '../../../../protocol/testdata/daemon', f), 'utf8')) as unknown;

const list = decode(checkSessionListResult, golden('remocal.session.list.remote.result.json'));

test('a session shows its label, target, mode and since', () => {
  const n = sessionNode({ ...list.sessions[0], label: 'debug: Launch API' }, []);
  assert.equal(n.label, 'debug: Launch API');
  assert.equal(n.description, 'shop/deployment/inventory · steal · since 09:30 UTC');
  assert.match(n.tooltip ?? '', /resolved: deployment\/inventory \(pod shop\/inventory-7c9f8d5b6-2xk4q, container inventory\)/);
  assert.match(n.tooltip ?? '', /note: deployment\/inventory has 2 running pods/);
  assert.equal(n.contextValue, 'session');
  assert.equal(n.sessionId, 's2');
  assert.equal(n.icon?.id, 'vm-running');
  // Without a label the target names it.
  assert.equal(sessionNode({ ...list.sessions[0], label: undefined }, []).label, 'deployment/inventory');
});

test('a degraded session says so', () => {
  const changed = decode(checkSessionChanged, golden('remocal.sessionChanged.params.json'));
  assert.ok(changed.session);
  const n = sessionNode(changed.session, []);
  assert.equal(n.description, 'pid/4242 · mirror · degraded · since 09:30 UTC');
  assert.match(n.tooltip ?? '', /state: degraded \(lost the connection to the agent\)/);
  assert.equal(n.icon?.id, 'warning');
});

test('a session a policy limits names the policy and the rule', () => {
  const changed = decode(checkSessionChanged, golden('remocal.sessionChanged.policy.params.json'));
  assert.ok(changed.session);
  const n = sessionNode(changed.session, []);
  assert.equal(n.description, 'shop/deployment/inventory · steal · degraded · limited by RemocalPolicy shop/no-steal · since 09:30 UTC');
  assert.match(n.tooltip ?? '', /policy: RemocalPolicy shop\/no-steal refused a port \(rule incoming\.blockSteal\)/);
  assert.equal(n.icon?.id, 'warning');
});

test('a remote session shows user, target, ports with filters and locks', () => {
  assert.ok(list.remote);
  const n = remoteNode(list.remote[0], []);
  assert.equal(n.label, 'bob on deployment/inventory');
  assert.equal(n.description, 'deployment/inventory · :8080 steal [X-User: bob] lock, :9090 mirror · since 09:30 UTC');
  assert.equal(n.contextValue, 'remoteSession');
  assert.deepEqual(n.remote, { namespace: 'shop', name: 's-0bq3n8c2zd' });
  assert.deepEqual(n.children.map((c) => [c.label, c.description]), [[':8080 steal', 'X-User: bob · lock since 09:30 UTC'], [':9090 mirror', '']]);
  assert.match(n.tooltip ?? '', /user: bob \(bob@desk, vscode\)/);
});

test('conflicts are highlighted on their session', () => {
  const c = decode(checkConflict, golden('remocal.conflict.params.json'));
  const model = new SessionsModel();
  model.reset(decode(checkSessionListResult, golden('remocal.session.list.result.json')));
  model.conflict(c);
  model.conflict(c); // a repeated report replaces the first
  const [mine] = model.render();
  const s1 = mine.children.find((n) => n.sessionId === 's1');
  assert.ok(s1);
  assert.equal(s1.icon?.id, 'error');
  assert.equal(s1.icon?.color, 'errorForeground');
  assert.match(s1.description ?? '', /conflict on :8080$/);
  assert.equal(s1.children.length, 1);
  assert.equal(s1.children[0].label, ':8080 held by bob@desk');
  assert.equal(s1.children[0].tooltip, c.message);
  // The session ends (onConflict: abort): its conflict stays a while, apart, saying why.
  model.sessionChanged({ ...list.sessions[0], id: 's1', state: 'ended' }, undefined);
  assert.deepEqual(model.render()[0].children.map((n) => n.sessionId), ['s2']);
  const loose = model.render().find((n) => n.id === 'conflicts');
  assert.ok(loose);
  assert.equal(loose.label, 'Conflicts');
  assert.deepEqual(loose.children.map((n) => [n.label, n.description]), [[':8080 held by bob@desk', 'pid/4242 · steal · session s1']]);
});

test('a lock taken on the cluster shows on the remote session', () => {
  const taken = decode(checkConflict, golden('remocal.conflict.taken.params.json'));
  assert.equal(conflictNode(taken).label, ':8080 taken by carol (carol@desk)');
  const model = new SessionsModel();
  model.reset(list);
  model.conflict(taken);
  const cluster = model.render().find((n) => n.id === 'cluster');
  assert.ok(cluster);
  assert.equal(cluster.children[0].icon?.id, 'error');
  assert.match(cluster.children[0].description ?? '', /taken :8080$/);
  // The remote session ends: it leaves the view; its conflict stays a while.
  const ended = decode(checkSessionChanged, golden('remocal.sessionChanged.remote-ended.params.json'));
  model.sessionChanged(ended.session, ended.remote);
  assert.deepEqual(model.render().map((n) => n.id), ['mine', 'conflicts']);
});

test('conflicts of ended sessions leave the view after a while', () => {
  let now = 0;
  const model = new SessionsModel(() => now);
  model.reset(decode(checkSessionListResult, golden('remocal.session.list.result.json')));
  model.conflict(decode(checkConflict, golden('remocal.conflict.params.json')));
  model.sessionChanged({ ...list.sessions[0], id: 's1', state: 'ended' }, undefined);
  now += keepConflictsMs - 1;
  assert.deepEqual(model.render().map((n) => n.id), ['mine', 'conflicts']);
  now += 1;
  assert.deepEqual(model.render().map((n) => n.id), ['mine']);
});

test('notifications update the model live', () => {
  const model = new SessionsModel();
  model.reset(undefined);
  assert.equal(model.render()[0].description, 'none');
  const remote = decode(checkSessionChanged, golden('remocal.sessionChanged.remote.params.json'));
  model.sessionChanged(remote.session, remote.remote);
  assert.deepEqual(model.render().map((n) => n.label), ['My sessions', 'Cluster sessions']);
  model.sessionChanged({ ...list.sessions[0], id: 's9', state: 'starting', incoming: '' }, undefined);
  const n = model.render()[0].children[0];
  assert.equal(n.icon?.id, 'loading~spin');
  assert.match(n.description ?? '', /starting/);
});

test('filters read as headers, path and methods', () => {
  assert.equal(formatFilter({ headers: { 'X-User': 'a' }, path: '/api/*', methods: ['GET', 'POST'] }), 'X-User: a, path /api/*, GET,POST');
  assert.equal(formatFilter(undefined), '');
});
