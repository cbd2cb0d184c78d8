// A running session's detail (remocal.showSessionDetail: subscriptions and
// counters), and restarting the debug session: a new remocal session, the
// old one ended, served by the same warm agent.
'use strict';
const vscode = require('vscode');
const h = require('../lib/harness');
const d = require('../lib/debug');

const cfg = 'node app';

async function activeSessions(api) {
  const { sessions } = await api.request('remocal/session/list');
  return sessions.filter((s) => s.state !== 'ended');
}

// agents lists the local agents serving the App pod (the Go test reads
// them from /proc).
async function agents() {
  return (await h.control('/agents')).agents;
}

// startApp runs the node app and waits until it listens in its session.
async function startApp(api, name = cfg) {
  h.assert(api.state().enabled && api.state().target,
    'remocal is on with a target (20-picker picks it: run it before this suite, e.g. REMOCAL_VSCODE_SUITES=20,35)');
  const since = h.mark();
  await d.start(name);
  await d.waitOutput(name, since, `app: listening on ${h.context().appPort}`, 90000);
  const active = await activeSessions(api);
  h.assert(active.length === 1, `one remocal session runs the app: ${JSON.stringify(active.map((s) => [s.id, s.label, s.state]))}`);
  return { since, session: active[0] };
}

h.test('the session detail shows the subscription and non-zero counters', async () => {
  const api = await h.remocal();
  const { appPort } = h.context();
  const { since, session } = await startApp(api);
  // One mirrored request reaches the debuggee (the mirror is in place once
  // the app listens; send until one arrives).
  let n = 0;
  await h.waitFor('a mirrored request to reach the debuggee', async () => {
    await h.control('/send', { path: `/detail-${++n}`, timeoutMs: 10000 });
    return h.outputOf(cfg, since).includes('app: got GET /detail-');
  }, 45000);
  await vscode.commands.executeCommand('remocal.showSessionDetail', session.id);
  const editor = await h.waitFor('the session detail document to open', () =>
    vscode.window.visibleTextEditors.find((e) => e.document.uri.scheme === 'remocal-detail' && e.document.uri.path.includes(session.id)), 20000);
  const text = editor.document.getText();
  h.log(`session detail:\n${text}`);
  h.assertIncludes(text, `remocal session ${session.id}`, 'the detail document');
  const sub = new RegExp(`target port ${appPort} -> local port ${appPort}: mirror, (\\d+) delivered`).exec(text);
  h.assert(sub && Number(sub[1]) > 0, `the detail shows port ${appPort} mirrored with deliveries: ${text}`);
  const counters = text.split('intercepted system calls:')[1]?.split('recent errors:')[0] ?? '';
  const values = [...counters.matchAll(/^\s+(\S+)\s+(\d+)$/gm)].map((m) => [m[1], Number(m[2])]);
  h.assert(values.some(([k, v]) => k === 'notified' && v > 0), `non-zero intercepted-call counters: ${JSON.stringify(values)}`);
  await h.driver({ do: 'waitFor', selector: '.editor-instance .view-lines', hasText: `target port ${appPort}` });
  await h.screenshot('session-detail');
  await vscode.commands.executeCommand('workbench.action.closeActiveEditor');
}, { timeoutMs: 150000 });

// restart restarts the debug session of name (running the node app) and
// checks that the restarted app runs in the target's context, in the same
// remocal session (it lives as long as the debug session, restarts
// included), served by the same agent, the only one. It returns the
// session and the agent's pid.
async function restart(api, name) {
  const { appPort, apiToken } = h.context();
  const { session } = await startApp(api, name);
  const agentsBefore = await agents();
  h.assert(agentsBefore.length === 1, `one agent serves the target: ${JSON.stringify(agentsBefore)}`);
  const since = h.mark();
  await vscode.commands.executeCommand('workbench.action.debug.restart');
  await d.waitOutput(name, since, `app: listening on ${appPort}`, 90000);
  h.assertIncludes(h.outputOf(name, since), `API_TOKEN=${apiToken}`, 'the restarted app\'s output (it runs in the target\'s context)');
  const active = await activeSessions(api);
  h.assert(active.length === 1 && active[0].id === session.id && active[0].state === 'active',
    `the restarted app stays in session ${session.id}: ${JSON.stringify(active.map((s) => [s.id, s.label, s.state]))}`);
  // Incoming traffic still reaches it: it is in the session, not just given its env.
  let n = 0;
  await h.waitFor('a mirrored request to reach the restarted app', async () => {
    await h.control('/send', { path: `/restarted-${++n}`, timeoutMs: 10000 });
    return h.outputOf(name, since).includes('app: got GET /restarted-');
  }, 45000);
  // The port is subscribed once: the exited program's subscription went
  // with it (else every request reached the restarted app twice).
  let subs = [];
  await h.waitFor(() => `one subscription of port ${appPort} after the restart (got ${JSON.stringify(subs)})`, async () => {
    subs = (await api.request('remocal/session/detail', { id: session.id })).subscriptions.filter((x) => x.port === appPort);
    return subs.length === 1;
  }, 20000);
  const agentsAfter = await agents();
  h.assert(agentsAfter.length === 1 && agentsAfter[0].pid === agentsBefore[0].pid,
    `the same agent (pid ${agentsBefore[0].pid}) serves session ${session.id} after the restart: ${JSON.stringify(agentsAfter)}`);
  h.log(`restart of ${name}: still session ${session.id}, agent pid ${agentsAfter[0].pid}`);
  // What a user sees: the session view still lists the session.
  await vscode.commands.executeCommand('workbench.view.extension.remocal');
  await h.driver({ do: 'waitFor', selector: '.pane-body .monaco-list-row', hasText: `debug: ${name}` });
  return { session, agentPid: agentsAfter[0].pid };
}

// js-debug restarts the program itself (a new child debug session), inside
// the same top-level debug session.
h.test('restarting a js-debug session keeps its remocal session and agent; the next F5 gets a new session on the warm agent', async () => {
  const api = await h.remocal();
  const { session, agentPid } = await restart(api, cfg);
  await h.screenshot('debug-restarted-js-debug');
  await d.stopAll();
  await h.waitFor(`session ${session.id} to end with its debug session`, async () => (await activeSessions(api)).length === 0);
  const { session: next } = await startApp(api);
  h.assert(next.id !== session.id, `a new session for the next F5 (got ${next.id} again)`);
  const now = await agents();
  h.assert(now.length === 1 && now[0].pid === agentPid,
    `the warm agent (pid ${agentPid}) serves the new session ${next.id}: ${JSON.stringify(now)}`);
}, { timeoutMs: 180000 });

// The fixture's adapter cannot restart: VS Code ends the debug session and
// launches the same resolved configuration again, which must find its
// remocal session still there.
h.test('restarting a session of an adapter that cannot restart keeps its remocal session and agent', async () => {
  const api = await h.remocal();
  await restart(api, 'fixture node app');
  await h.screenshot('debug-restarted-fixture');
}, { timeoutMs: 150000 });
