// The harness itself, without remocal: the driver's screenshots and
// keyboard, and the fixture debug type running programs as they are. If
// these fail, nothing after them means anything.
'use strict';
const vscode = require('vscode');
const fs = require('node:fs');
const h = require('../lib/harness');

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
