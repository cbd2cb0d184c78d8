// What the sessions view shows for sessions, remote sessions and conflicts.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

import { decode } from '../src/check';
import { checkConflict, checkSessionChanged, checkSessionListResult } from '../src/protocol';
import { detailText } from '../src/detail';
import { conflictNode, formatFilter, formatQueueFilter, keepConflictsMs, remoteNode, sessionNode, SessionsModel } from '../src/sessionsModel';

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

test('a session shows the queues it splits like ports, with the variables its programs get', () => {
  const queues = decode(checkSessionListResult, golden('remocal.session.list.queues.result.json'));
  const n = sessionNode(queues.sessions[0], []);
  assert.deepEqual(n.children.map((c) => [c.label, c.description, c.contextValue, c.icon?.id]), [
    ['queue orders-worker/orders', 'steal · tenant=a', 'queueSplit', 'inbox'],
    ['queue orders-worker/invoices', 'mirror · region=eu-.*, body $.amount=4[2-9]|[5-9][0-9]', 'queueSplit', 'mirror'],
  ]);
  assert.match(n.children[0].tooltip ?? '', /^ORDERS_STREAM=\{orders\}\.remocal\.session-s-4l1c3xq7de$/m);
  assert.match(n.children[0].tooltip ?? '', /matching messages come to this session only/);
  assert.match(n.tooltip ?? '', /queue orders-worker\/orders steal \[tenant=a\]/);
  // Ids are unique in the tree (VS Code refuses duplicates).
  assert.equal(new Set(n.children.map((c) => c.id)).size, 2);
  // The detail document lists them with their variables.
  const text = detailText({ session: queues.sessions[0], subscriptions: [], processes: [], counters: {}, errors: [] });
  assert.match(text, /queue splits:\n {2}queue orders-worker\/orders steal \[tenant=a\]: ORDERS_GROUP=workers ORDERS_STREAM=\{orders\}\.remocal\.session-s-4l1c3xq7de\n/);
  // A session without splits has no queue children and no such section.
  assert.equal(sessionNode(list.sessions[0], []).children.length, 0);
  assert.doesNotMatch(detailText({ session: list.sessions[0], subscriptions: [], processes: [], counters: {}, errors: [] }), /queue splits/);
});

test('an operator session shows its queue splits with the messages delivered', () => {
  const changed = decode(checkSessionChanged, golden('remocal.sessionChanged.remote-queues.params.json'));
  assert.ok(changed.remote);
  const n = remoteNode(changed.remote, []);
  assert.equal(n.description, 'deployment/orders-worker · queue orders-worker/orders steal [tenant=b] 412 delivered, queue orders-worker/invoices mirror 0 delivered · since 09:30 UTC');
  assert.deepEqual(n.children.map((c) => [c.label, c.description]), [
    ['queue orders-worker/orders', 'steal · tenant=b · 412 delivered · since 09:30 UTC'],
    ['queue orders-worker/invoices', 'mirror · 0 delivered · since 10:02 UTC'],
  ]);
  assert.match(n.children[1].tooltip ?? '', /filter: none \(every message\)/);
  // A new count replaces the old one in the view.
  const model = new SessionsModel();
  model.reset(decode(checkSessionListResult, golden('remocal.session.list.queues.result.json')));
  const splits = changed.remote.queueSplits ?? [];
  model.sessionChanged(undefined, { ...changed.remote, queueSplits: [{ ...splits[0], delivered: 413 }, splits[1]] });
  const cluster = model.render().find((x) => x.id === 'cluster');
  assert.ok(cluster);
  assert.equal(cluster.children.length, 1);
  assert.equal(cluster.children[0].children[0].description, 'steal · tenant=b · 413 delivered · since 09:30 UTC');
  // Ended: gone with its splits.
  model.sessionChanged(undefined, { ...changed.remote, phase: 'Ended', queueSplits: undefined, ports: [] });
  assert.equal(model.render().find((x) => x.id === 'cluster'), undefined);
});

test('queue filters read as headers, then body paths', () => {
  assert.equal(formatQueueFilter({ body: { '$.b': '2', '$.a': '1' }, headers: { z: 'x', a: 'y' } }), 'a=y, z=x, body $.a=1, body $.b=2');
  assert.equal(formatQueueFilter(undefined), '');
  assert.equal(formatQueueFilter({}), '');
});
