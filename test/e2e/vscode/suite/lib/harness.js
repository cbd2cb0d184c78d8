// What the in-host tests share: registration and a sequential runner,
// polling with a deadline (no sleeps as synchronisation), the driver's UI
// channel (screenshots, keys), the Go test's control channel (traffic from
// the "cluster", the run's context), and a record of every debug adapter
// message so tests can wait for output, stops and exits.
'use strict';
const vscode = require('vscode');
const fs = require('node:fs');
const path = require('node:path');

const tests = [];
const afterEachFns = [];
let file = '';
let ctx = {};
let logFile;
const messages = []; // {session, dir, msg}, every DAP message seen
const messageListeners = new Set();
const liveSessions = new Map(); // id -> vscode.DebugSession, started and not yet terminated

function currentFile(f) {
  file = f;
}

function log(msg) {
  const line = `[suite ${new Date().toISOString().slice(11, 23)}] ${msg}`;
  console.log(line);
  if (logFile) fs.appendFileSync(logFile, line + '\n');
}

// test registers fn under name; opts.timeoutMs bounds it (default 90 s).
function test(name, fn, opts = {}) {
  tests.push({ name: `${file.replace(/\.test\.js$/, '')}: ${name}`, fn, timeoutMs: opts.timeoutMs ?? 90000 });
}

// afterEach registers fn to run after every test, passed or failed, so a
// failed test leaves nothing running for the next (a debuggee holding the
// app's port, a breakpoint).
function afterEach(fn) {
  afterEachFns.push(fn);
}

async function runAll() {
  const results = [];
  for (const t of tests) {
    const t0 = Date.now();
    log(`RUN  ${t.name}`);
    let timer;
    try {
      await Promise.race([
        t.fn(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`timed out after ${t.timeoutMs / 1000}s`)), t.timeoutMs);
        }),
      ]);
      results.push({ name: t.name, ok: true });
      log(`PASS ${t.name} (${Date.now() - t0} ms)`);
    } catch (e) {
      results.push({ name: t.name, ok: false, error: e?.stack ?? String(e) });
      log(`FAIL ${t.name} (${Date.now() - t0} ms): ${e?.stack ?? e}`);
      await screenshot(`fail-${t.name}`).catch((se) => log(`failure screenshot: ${se.message}`));
    } finally {
      clearTimeout(timer);
    }
    for (const fn of afterEachFns) {
      try {
        await fn();
      } catch (e) {
        log(`cleanup after ${t.name}: ${e?.stack ?? e}`);
      }
    }
  }
  return results;
}

async function setup() {
  const artifacts = process.env.REMOCAL_ARTIFACTS;
  if (artifacts) {
    fs.mkdirSync(artifacts, { recursive: true });
    logFile = path.join(artifacts, 'suite.log');
  }
  if (process.env.REMOCAL_E2E_CONTROL) ctx = await control('/context');
  log(`context: ${JSON.stringify(ctx)}`);
  const dev = vscode.extensions.all.filter((e) => !e.packageJSON?.isBuiltin && !e.extensionPath.includes('/code-server/lib/vscode/'));
  log(`extensions under test: ${dev.map((e) => `${e.id} (${e.extensionPath})`).join(', ') || 'none'}`);
  vscode.debug.onDidStartDebugSession((ds) => liveSessions.set(ds.id, ds));
  vscode.debug.onDidTerminateDebugSession((ds) => liveSessions.delete(ds.id));
  vscode.debug.registerDebugAdapterTrackerFactory('*', {
    createDebugAdapterTracker(session) {
      const record = (dir) => (msg) => {
        const m = { session, dir, msg, at: Date.now() };
        messages.push(m);
        for (const l of messageListeners) l(m);
      };
      return { onDidSendMessage: record('out'), onWillReceiveMessage: record('in') };
    },
  });
}

async function teardown() {
  await vscode.debug.stopDebugging().catch(() => {});
}

function context() {
  return ctx;
}

// waitFor calls fn until it returns something truthy (returned) or the
// deadline passes (then it throws with what was awaited, a string or a
// function giving one, and fn's last error). Backoff from 50 ms to 1 s.
async function waitFor(what, fn, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  let delay = 50;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = undefined;
    } catch (e) {
      last = e;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${typeof what === 'function' ? what() : what}${last ? `: ${last.message ?? last}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, Math.min(delay, Math.max(0, deadline - Date.now()))));
    delay = Math.min(delay * 2, 1000);
  }
}

async function post(base, what, pathname, body, timeoutMs) {
  if (!base) throw new Error(`${what} is not set: run the suite through test/e2e/vscode (go test)`);
  const res = await fetch(base + pathname, {
    method: body === undefined ? 'GET' : 'POST',
    body: body === undefined ? undefined : JSON.stringify(body),
    headers: { 'content-type': 'application/json' },
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = (await res.text()).slice(0, 1 << 20);
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error(`${what} ${pathname} answered ${res.status} with non-JSON: ${text.slice(0, 200)}`);
  }
  if (!res.ok) throw new Error(`${what} ${pathname} failed (${res.status}): ${json.error ?? text.slice(0, 500)}`);
  return json;
}

// driver asks the driver for a UI action (see driver/ui.mjs).
function driver(action) {
  return post(process.env.REMOCAL_VSCODE_DRIVER, 'REMOCAL_VSCODE_DRIVER', '/', action, 45000);
}

// control calls the Go test's control server (see control_test.go).
function control(pathname, body) {
  return post(process.env.REMOCAL_E2E_CONTROL, 'REMOCAL_E2E_CONTROL', pathname, body, 45000);
}

function screenshot(name) {
  return driver({ do: 'screenshot', name });
}

// debugMessages returns the DAP messages seen so far (after mark since)
// matching pred.
function debugMessages(pred, since = 0) {
  return messages.slice(since).filter(pred);
}

// waitDebug resolves with the first DAP message (past or future, after
// index since) matching pred.
function waitDebug(what, pred, { since = 0, timeoutMs = 30000 } = {}) {
  const found = messages.slice(since).find(pred);
  if (found) return Promise.resolve(found);
  return new Promise((resolve, reject) => {
    const l = (m) => {
      if (!pred(m)) return;
      cleanup();
      resolve(m);
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}`));
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      messageListeners.delete(l);
    };
    messageListeners.add(l);
  });
}

function mark() {
  return messages.length;
}

// outputOf joins the output events of debug sessions whose (root) name is
// name, seen after mark since.
function outputOf(name, since = 0) {
  return messages.slice(since)
    .filter((m) => m.dir === 'out' && m.msg.type === 'event' && m.msg.event === 'output' && rootName(m.session) === name)
    .map((m) => m.msg.body?.output ?? '').join('');
}

// debugSessions are the debug sessions started and not yet terminated.
function debugSessions() {
  return [...liveSessions.values()];
}

function rootName(s) {
  let cur = s;
  while (cur.parentSession) cur = cur.parentSession;
  return cur.name;
}

// remocal returns the remocal extension's test API, activating it.
async function remocal() {
  const ext = vscode.extensions.getExtension('remocal.remocal');
  if (!ext) {
    throw new Error('the remocal extension (remocal.remocal) is not loaded: build it (make vscode) and pass extensions/vscode as an extension development path');
  }
  const api = ext.isActive ? ext.exports : await ext.activate();
  if (!api || typeof api.state !== 'function') throw new Error('remocal.remocal activate() did not return the test API');
  return api;
}

// notification returns the texts of the workbench notifications holding
// text, read from the notification center (toasts hide after a while; the
// center lists every notification shown), opened for it and closed again.
async function notification(text, timeoutMs = 20000) {
  await vscode.commands.executeCommand('notifications.showList');
  try {
    return (await driver({ do: 'waitFor', selector: '.notifications-center .notification-list-item', hasText: text, timeoutMs })).texts;
  } catch {
    const { texts } = await driver({ do: 'texts', selector: '.notification-list-item' });
    throw new Error(`no notification says ${JSON.stringify(text)}; the notifications: ${JSON.stringify(texts)}`);
  } finally {
    await vscode.commands.executeCommand('notifications.hideList');
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(`assertion failed: ${msg}`);
}

function assertIncludes(haystack, needle, what) {
  if (!String(haystack).includes(needle)) {
    throw new Error(`${what}: expected to contain ${JSON.stringify(needle)}, got ${JSON.stringify(String(haystack).slice(0, 2000))}`);
  }
}

module.exports = {
  currentFile, log, test, afterEach, runAll, setup, teardown, context, waitFor, driver, control, screenshot,
  debugMessages, waitDebug, mark, outputOf, rootName, debugSessions, remocal, notification, assert, assertIncludes,
};
