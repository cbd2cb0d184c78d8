// The "remocal: target shell" terminal profile: commands typed in it run
// as if in the pod. The shell writes what it read into local files (writes
// stay on this machine) which the test reads back.
'use strict';
const vscode = require('vscode');
const fs = require('node:fs');
const path = require('node:path');
const h = require('../lib/harness');

const profileTitle = 'remocal: target shell';
const rows = '.quick-input-widget .monaco-list-row';

h.test('the terminal profile picker offers the target shell', async () => {
  await h.remocal();
  // code-server's workbench lists contributed profiles only once it has
  // refreshed its profile list, which a change of the profiles setting
  // triggers (even js-debug's terminal is missing before). A profile
  // named only to be hidden changes nothing else.
  const profiles = vscode.workspace.getConfiguration('terminal.integrated.profiles');
  await profiles.update('linux', { 'remocal-e2e-refresh': null }, vscode.ConfigurationTarget.Global);
  try {
    let offered = [];
    const found = await h.waitFor(`the terminal profile picker to offer ${profileTitle}`, async () => {
      const picked = vscode.commands.executeCommand('workbench.action.terminal.newWithProfile');
      try {
        await h.driver({ do: 'waitFor', selector: rows });
        offered = (await h.driver({ do: 'texts', selector: rows })).texts;
        // The list is virtual: its last rows render once focused
        // (ArrowUp from the first wraps to the last).
        await h.driver({ do: 'press', key: 'ArrowUp' });
        offered = [...new Set([...offered, ...(await h.driver({ do: 'texts', selector: rows })).texts])];
        if (!offered.some((t) => t.includes(profileTitle))) {
          h.log(`the profile picker offers ${JSON.stringify(offered)}`);
          return false;
        }
        await h.driver({ do: 'type', text: 'remocal' });
        await h.driver({ do: 'waitFor', selector: `${rows}.focused`, hasText: profileTitle });
        await h.screenshot('terminal-profile-picker');
        return true;
      } finally {
        await h.driver({ do: 'press', key: 'Escape' });
        await picked;
      }
    }, 60000);
    h.assert(found, `the terminal profile picker never offered ${profileTitle}: ${JSON.stringify(offered)}`);
  } finally {
    await profiles.update('linux', undefined, vscode.ConfigurationTarget.Global);
  }
});

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
  // The contributed profile, as the picker's entry opens it.
  await vscode.commands.executeCommand('workbench.action.terminal.newWithProfile', {
    config: { extensionIdentifier: 'remocal.remocal', id: 'remocal.targetShell', title: profileTitle },
  });
  const term = await h.waitFor(`the ${profileTitle} terminal`, () => Promise.race([opened, null]), 30000);
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
