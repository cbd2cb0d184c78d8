// A session start that takes long shows a cancellable progress
// notification; its Cancel button, clicked in the page, cancels the start
// ($/cancelRequest, which the daemon answers with -32800): the launch is
// abandoned without an error message, no session is left, and the hung
// connection to the cluster is released. The cluster is the Go test's
// silent API server (it accepts and never answers), named by the launch
// configuration's own remocal settings.
'use strict';
const vscode = require('vscode');
const h = require('../lib/harness');
const d = require('../lib/debug');

const cfg = 'node app (silent cluster)';
// The notification center lists it: the extension host of a test run
// shows no toasts.
const center = '.notifications-center';

// abandon ends a start the test could not cancel through the UI: the
// notification's Cancel if it shows, else the daemon stops the session,
// and the launch is awaited (bounded: a start that hangs on is the
// failure already reported).
async function abandon(api, launched) {
  await vscode.commands.executeCommand('notifications.showList');
  await h.driver({ do: 'click', selector: `${center} .monaco-button`, hasText: 'Cancel', timeoutMs: 2000 }).catch(async () => {
    const { sessions } = await api.request('remocal/session/list');
    for (const s of sessions.filter((x) => x.target === 'deployment/api')) {
      await api.request('remocal/session/stop', { id: s.id }).catch((e) => h.log(`stopping ${s.id}: ${e.message}`));
    }
  });
  await vscode.commands.executeCommand('notifications.hideList');
  let timer;
  await Promise.race([launched.catch(() => undefined), new Promise((r) => { timer = setTimeout(r, 20000); })]);
  clearTimeout(timer);
}

h.test('the progress notification of a hung start cancels it', async () => {
  const api = await h.remocal();
  const before = await h.control('/silent-api');
  const launched = vscode.debug.startDebugging(d.folder(), cfg);
  let cancelled = false;
  try {
    // Shown after a second, with the step the daemon reported
    // ($/progress). The center, opened before the notification exists,
    // closes again: open it until the notification is in it.
    let texts = [];
    await h.waitFor(() => `the progress notification (the notification center shows ${JSON.stringify(texts)})`, async () => {
      await vscode.commands.executeCommand('notifications.showList');
      texts = (await h.driver({ do: 'texts', selector: center })).texts;
      return texts.some((t) => t.includes('connecting to deployment/api'));
    }, 20000);
    h.log(`progress notification: ${texts.join(' / ')}`);
    await h.waitFor('the session host to hang in the silent API server', async () => (await h.control('/silent-api')).open > before.open, 30000);
    const { sessions } = await api.request('remocal/session/list');
    const starting = sessions.filter((s) => s.target === 'deployment/api');
    h.assert(starting.length === 1 && starting[0].state === 'starting', `one session starting on deployment/api: ${JSON.stringify(starting)}`);
    await h.screenshot('progress-notification');
    await h.driver({ do: 'click', selector: `${center} .monaco-button`, hasText: 'Cancel' });
    cancelled = true;
    await vscode.commands.executeCommand('notifications.hideList');
    const ok = await launched;
    h.assert(ok === false, `startDebugging(${cfg}) resolved ${ok} after the cancel, want false (the launch abandoned)`);
  } finally {
    if (!cancelled) await abandon(api, launched);
  }
  await h.waitFor('the cancelled session to leave the daemon', async () => {
    const { sessions } = await api.request('remocal/session/list');
    return !sessions.some((s) => s.target === 'deployment/api' && s.state !== 'ended');
  }, 20000);
  await h.waitFor('the hung connection to the API server to be released', async () => (await h.control('/silent-api')).open === 0, 20000);
  h.assert(h.debugSessions().length === 0, `no debug session runs: ${h.debugSessions().map((s) => s.name).join(', ')}`);
  // A cancel is not a failure: no error message about it.
  await vscode.commands.executeCommand('notifications.showList');
  try {
    const { texts } = await h.driver({ do: 'texts', selector: center });
    h.assert(!texts.some((t) => t.includes(cfg) || /cancel/i.test(t)), `no notification about the cancelled start: ${JSON.stringify(texts)}`);
  } finally {
    await vscode.commands.executeCommand('notifications.hideList');
  }
}, { timeoutMs: 120000 });
