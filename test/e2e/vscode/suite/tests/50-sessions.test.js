// The remocal view lives from daemon notifications: a second client (a
// script speaking JSON-RPC to the same daemon) starting and stopping a
// session shows up and goes away, and when it holds the target's port the
// conflict with our own session is shown.
'use strict';
const vscode = require('vscode');
const { spawn } = require('node:child_process');
const h = require('../lib/harness');
const d = require('../lib/debug');
const { Client } = require('../lib/rpc');

const secondLabel = 'second client';
const secondOwner = 'vscode-e2e-second-client';

// treeText is every label, description and tooltip of the sessions view.
async function treeText(api) {
  const parts = [];
  const walk = (items) => {
    for (const it of items ?? []) {
      parts.push([it.label, it.description, typeof it.tooltip === 'string' ? it.tooltip : JSON.stringify(it.tooltip), it.contextValue]
        .filter(Boolean).join(' | '));
      walk(it.children);
    }
  };
  walk(await api.sessionsTree());
  return parts.join('\n');
}

function shows(text, sess) {
  return text.includes(sess.id) || text.includes(secondLabel) || text.includes(secondOwner);
}

async function openView() {
  await vscode.commands.executeCommand('workbench.view.extension.remocal');
  return h.driver({ do: 'waitFor', selector: '.pane-body .monaco-list-row' });
}

async function second() {
  const { remocal } = h.context();
  const c = new Client(remocal, {});
  await c.initialize([h.context().secondWorkspace]);
  return c;
}

h.test('a second client\'s session appears in the sessions view and goes away', async () => {
  const api = await h.remocal();
  const c = await second();
  try {
    const { session } = await c.request('remocal/session/start', {
      target: h.context().target, workspaceFolder: h.context().secondWorkspace, incoming: 'mirror', label: secondLabel,
    }, 90000);
    await h.waitFor('the sessions view to show the second client\'s session', async () => shows(await treeText(api), session));
    await openView();
    await h.driver({ do: 'waitFor', selector: '.pane-body .monaco-list-row', hasText: h.context().target });
    await h.screenshot('sessions-view-second-client');
    await c.request('remocal/session/stop', { id: session.id });
    await h.waitFor('the sessions view to drop the stopped session', async () => !shows(await treeText(api), session));
  } finally {
    await c.close();
  }
});

h.test('the conflict is shown when the second client holds the port', async () => {
  const api = await h.remocal();
  const { target, secondWorkspace, appPort } = h.context();
  const c = await second();
  let prog;
  let sessionId;
  try {
    // Its workspace steals the target's port 8080 into local port 9080.
    const res = await c.request('remocal/session/start', {
      target, workspaceFolder: secondWorkspace, incoming: 'steal', label: secondLabel,
      program: { path: process.execPath, args: ['-e', holder], launch: 'auto' },
    }, 90000);
    sessionId = res.session.id;
    const argv = res.wrapper?.length ? res.wrapper : [process.execPath, '-e', holder];
    h.log(`second client: session ${res.session.id}, running ${argv.join(' ').slice(0, 200)}`);
    prog = spawn(argv[0], argv.slice(1), { env: { ...process.env, ...res.env }, stdio: 'ignore', detached: true });
    await h.waitFor('the second client to hold the target\'s port', async () => {
      const detail = await c.request('remocal/session/detail', { id: res.session.id });
      return detail.subscriptions.some((s) => s.port === appPort && s.mode === 'steal');
    }, 60000);
    // The view shows who holds the port before our session asks for it.
    await openView();
    const holderText = await treeText(api);
    h.assert(shows(holderText, res.session) && holderText.includes('steal'),
      `the sessions view shows the second client's steal: ${holderText}`);
    // Our session asks for the same port, and keeps running without it
    // (onConflict "continue" from the launch configuration's overrides):
    // the conflict is shown, in a notification and in the view.
    const cfg = 'node app (steal, keep going)';
    h.log(`second client holds the port; starting ${cfg}`);
    const since = h.mark();
    await d.start(cfg);
    const texts = await h.notification('conflict', 60000);
    h.log(`conflict notification: ${texts.join(' / ')}`);
    h.assert(texts.some((t) => t.includes(String(appPort))), `the conflict names port ${appPort}: ${JSON.stringify(texts)}`);
    h.log(`the daemon's sessions: ${JSON.stringify((await c.request('remocal/session/list')).sessions.map((x) => [x.id, x.label, x.state, x.incoming]))}`);
    await openView();
    let last = '';
    const text = await h.waitFor(() => `the sessions view to highlight the conflict (it shows: ${last})`, async () => {
      last = await treeText(api);
      return /conflict/i.test(last) && last;
    }, 30000);
    h.log(`sessions view with the conflict: ${text}`);
    h.assertIncludes(text, `${appPort}`, 'the highlighted conflict names the port');
    await h.driver({ do: 'waitFor', selector: '.pane-body .monaco-list-row', hasText: 'conflict' });
    await h.screenshot('sessions-view-conflict');
    h.log(`${cfg} printed: ${h.outputOf(cfg, since).slice(0, 600)}`);
    await d.stopAll();
  } finally {
    if (sessionId) await c.request('remocal/session/stop', { id: sessionId }).catch((e) => h.log(`stopping the second client's session: ${e.message}`));
    if (prog?.pid) {
      try {
        process.kill(-prog.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await c.close();
  }
}, { timeoutMs: 180000 });

// holder listens on 9080, the local port the second workspace maps to the
// target's 8080.
const holder = "require('node:http').createServer((q, s) => s.end('second client\\n')).listen(9080)";
