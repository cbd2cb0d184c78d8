// The "remocal: target shell" terminal profile: commands typed in it run
// as if in the pod. The shell writes what it read into local files (writes
// stay on this machine) which the test reads back.
'use strict';
const vscode = require('vscode');
const fs = require('node:fs');
const path = require('node:path');
const h = require('../lib/harness');

h.test('the target shell sees the target\'s files and env', async () => {
  await h.remocal();
  const { scratch, apiToken, configMarker } = h.context();
  const opened = new Promise((resolve) => {
    const sub = vscode.window.onDidOpenTerminal((t) => {
      if (t.name.includes('remocal')) {
        sub.dispose();
        resolve(t);
      }
    });
  });
  // Through the workbench's profile picker, as a user opens it.
  const picked = vscode.commands.executeCommand('workbench.action.terminal.newWithProfile');
  await h.driver({ do: 'waitFor', selector: '.quick-input-widget .monaco-list-row' });
  await h.driver({ do: 'type', text: 'remocal: target shell' });
  await h.screenshot('terminal-profile-picker');
  await h.driver({ do: 'waitFor', selector: '.quick-input-widget .monaco-list-row.focused', hasText: 'remocal: target shell' });
  await h.driver({ do: 'press', key: 'Enter' });
  await picked;
  const term = await h.waitFor('the remocal: target shell terminal', () => Promise.race([opened, null]), 30000);
  term.show();
  const cfgOut = path.join(scratch, 'terminal-config.out');
  const tokOut = path.join(scratch, 'terminal-token.out');
  term.sendText(`cat /etc/inventory/config.json > ${cfgOut}.tmp && mv ${cfgOut}.tmp ${cfgOut}; ` +
    `echo "API_TOKEN=$API_TOKEN" > ${tokOut}.tmp && mv ${tokOut}.tmp ${tokOut}`);
  const config = await h.waitFor(`${cfgOut} from the terminal`, () => fs.existsSync(cfgOut) && fs.readFileSync(cfgOut, 'utf8'), 60000);
  const token = await h.waitFor(`${tokOut} from the terminal`, () => fs.existsSync(tokOut) && fs.readFileSync(tokOut, 'utf8'), 30000);
  h.assertIncludes(config, configMarker, 'cat /etc/inventory/config.json in the target shell');
  h.assertIncludes(token, `API_TOKEN=${apiToken}`, 'echo $API_TOKEN in the target shell');
  term.sendText('clear; echo "in the target: $API_TOKEN"; head -3 /etc/inventory/config.json');
  // What the terminal shows, as rendered in the page.
  await h.driver({ do: 'waitFor', selector: '.xterm-rows', hasText: `in the target: ${apiToken}`, timeoutMs: 20000 });
  await h.screenshot('target-shell');
  term.dispose();
});
