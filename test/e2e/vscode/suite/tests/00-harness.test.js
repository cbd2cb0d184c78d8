// The harness itself, without remocal: the driver's screenshots and
// keyboard, and the fixture debug type running programs as they are. If
// these fail, nothing after them means anything.
'use strict';
const vscode = require('vscode');
const fs = require('node:fs');
const h = require('../lib/harness');
const d = require('../lib/debug');

h.test('the driver saves screenshots', async () => {
  const { path: file } = await h.screenshot('harness-start');
  h.assert(fs.statSync(file).size > 1000, `${file} is a real PNG`);
});

h.test('a QuickPick is answered through the page keyboard', async () => {
  const picked = vscode.window.showQuickPick(['alpha', 'bravo', 'charlie'], { placeHolder: 'harness check' });
  await h.driver({ do: 'waitFor', selector: '.quick-input-widget .monaco-list-row', hasText: 'charlie' });
  await h.driver({ do: 'type', text: 'brav' });
  await h.driver({ do: 'press', key: 'Enter' });
  const got = await picked;
  h.assert(got === 'bravo', `picked ${JSON.stringify(got)}, want "bravo"`);
});

// Opted out of remocal ("remocal": false), the fixture runs its program
// with this machine's env and files: the baseline the remocal tests differ
// from.
for (const kind of ['dynamic', 'static']) {
  h.test(`the fixture debug type runs the ${kind} program locally`, async () => {
    const program = h.context().programs?.[kind];
    h.assert(program, `the Go test provides programs.${kind}`);
    const name = `fixture local ${kind}`;
    const since = h.mark();
    const ok = await vscode.debug.startDebugging(vscode.workspace.workspaceFolders?.[0], {
      type: 'remocal-fixture', request: 'launch', name, program, args: ['local'], remocal: false,
    });
    h.assert(ok, 'startDebugging returned true');
    await h.waitDebug(`${name} to terminate`, (m) => h.rootName(m.session) === name && m.msg.event === 'terminated', { since });
    const out = h.outputOf(name, since);
    h.assertIncludes(out, 'args=local', `${name} output`);
    h.assertIncludes(out, 'API_TOKEN=<unset>', `${name} output`);
    h.assertIncludes(out, 'CONFIG=<error', `${name} output`);
  });
}

// js-debug, the real debugger the remocal tests use, started through the
// workbench's own QuickPick, stopped at breakpoints, variables read: the
// same helpers the remocal tests use, on a configuration that opts out.
h.test('js-debug stops at breakpoints in the node app (opted out of remocal)', async () => {
  const app = h.context().nodeApp;
  const name = 'node local';
  d.clearBreakpoints();
  d.breakpointAt(app, d.markerLine(app, 'BREAK-LOADED'));
  const since = h.mark();
  await d.startThroughUI(name);
  let stop = await d.waitStopped(name, since);
  let frame = await d.locals(stop);
  h.assert(frame.line === d.markerLine(app, 'BREAK-LOADED'), `stopped at line ${frame.line}`);
  h.assertIncludes(frame.vars.token, '<unset>', 'token without remocal');
  h.assertIncludes(frame.vars.config, '<error', 'config without remocal');
  await h.screenshot('harness-js-debug-stopped');
  d.clearBreakpoints();
  d.breakpointAt(app, d.markerLine(app, 'BREAK-REQUEST'));
  const since2 = h.mark();
  await d.cont(stop);
  await d.waitOutput(name, since, 'app: listening on 18080');
  const res = fetch('http://127.0.0.1:18080/local-check', { signal: AbortSignal.timeout(30000) });
  stop = await d.waitStopped(name, since2);
  frame = await d.locals(stop);
  h.assertIncludes(frame.vars.seen, 'GET /local-check', 'seen at BREAK-REQUEST');
  d.clearBreakpoints();
  await d.cont(stop);
  const body = await (await res).text();
  h.assertIncludes(body, 'from the debuggee: GET /local-check', 'the response');
  await d.stopAll();
});
