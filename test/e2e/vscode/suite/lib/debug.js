// Debugging helpers over the DAP messages harness.js records: start a
// launch configuration, wait for a stop, read the top frame's variables,
// and find lines by their BREAK-* markers in the node app.
'use strict';
const vscode = require('vscode');
const fs = require('node:fs');
const h = require('./harness');

function folder() {
  const f = vscode.workspace.workspaceFolders?.[0];
  if (!f) throw new Error('VS Code opened no workspace folder');
  return f;
}

// markerLine is the 1-based line of file holding marker.
function markerLine(file, marker) {
  const i = fs.readFileSync(file, 'utf8').split('\n').findIndex((l) => l.includes(marker));
  if (i < 0) throw new Error(`${file} has no line marked ${marker}`);
  return i + 1;
}

function breakpointAt(file, line) {
  const bp = new vscode.SourceBreakpoint(new vscode.Location(vscode.Uri.file(file), new vscode.Position(line - 1, 0)));
  vscode.debug.addBreakpoints([bp]);
  return bp;
}

function clearBreakpoints() {
  vscode.debug.removeBreakpoints(vscode.debug.breakpoints);
}

// start runs the workspace's launch configuration called name, as F5 with
// it selected does (launch.json is read and every provider runs).
async function start(name) {
  const ok = await vscode.debug.startDebugging(folder(), name);
  if (!ok) throw new Error(`startDebugging(${JSON.stringify(name)}) returned false`);
}

// startThroughUI selects and starts name in the workbench's "Select and
// Start Debugging" QuickPick, typed by the driver like a user would.
async function startThroughUI(name) {
  const done = vscode.commands.executeCommand('workbench.action.debug.selectandstart');
  await h.driver({ do: 'waitFor', selector: '.quick-input-widget .monaco-list-row', hasText: name });
  await h.driver({ do: 'type', text: name });
  await h.driver({ do: 'waitFor', selector: '.quick-input-widget .monaco-list-row.focused', hasText: name });
  await h.driver({ do: 'press', key: 'Enter' });
  await done;
}

function isEvent(m, event) {
  return m.dir === 'out' && m.msg.type === 'event' && m.msg.event === event;
}

// waitStopped waits for a debug session under root configuration name to
// stop (after mark since) and returns {session, threadId}.
async function waitStopped(name, since, timeoutMs = 60000) {
  const m = await h.waitDebug(`${name} to stop at a breakpoint`, (x) => isEvent(x, 'stopped') && h.rootName(x.session) === name,
    { since, timeoutMs });
  return { session: m.session, threadId: m.msg.body?.threadId };
}

// waitOutput waits until the output of name (after since) contains text.
function waitOutput(name, since, text, timeoutMs = 60000) {
  return h.waitFor(`${name} to print ${JSON.stringify(text)} (so far: ${JSON.stringify(h.outputOf(name, since).slice(-400))})`,
    () => h.outputOf(name, since).includes(text), timeoutMs);
}

function waitTerminated(name, since, timeoutMs = 60000) {
  return h.waitDebug(`${name} to end`, (x) => isEvent(x, 'terminated') && h.rootName(x.session) === name,
    { since, timeoutMs });
}

// locals reads the variables of the innermost scope of the top frame.
async function locals({ session, threadId }) {
  const { stackFrames } = await session.customRequest('stackTrace', { threadId, startFrame: 0, levels: 1 });
  if (!stackFrames?.length) throw new Error('the stopped thread has no stack frames');
  const top = stackFrames[0];
  const { scopes } = await session.customRequest('scopes', { frameId: top.id });
  if (!scopes?.length) throw new Error('the top frame has no scopes');
  const { variables } = await session.customRequest('variables', { variablesReference: scopes[0].variablesReference });
  const vars = Object.fromEntries((variables ?? []).map((v) => [v.name, v.value]));
  return { line: top.line, file: top.source?.path, vars };
}

async function cont({ session, threadId }) {
  await session.customRequest('continue', { threadId });
}

// stopAll ends every debug session and waits until none is left.
async function stopAll() {
  for (const s of h.debugSessions().filter((x) => !x.parentSession)) await vscode.debug.stopDebugging(s);
  await h.waitFor(() => `every debug session to end (left: ${h.debugSessions().map((x) => x.name).join(', ')})`,
    () => h.debugSessions().length === 0, 30000);
}

module.exports = {
  folder, markerLine, breakpointAt, clearBreakpoints, start, startThroughUI, waitStopped, waitOutput,
  waitTerminated, locals, cont, stopAll, isEvent,
};
