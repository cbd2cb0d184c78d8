// The target picker through the real QuickPick UI, and the status bar item
// that shows and toggles remocal.
'use strict';
const vscode = require('vscode');
const h = require('../lib/harness');

const rows = '.quick-input-widget .monaco-list-row';

// answerPicker walks the picker's steps (it may ask for a namespace or a
// kind before the target) until it picks the row holding the target's pid,
// typing into the QuickPick as a user would.
async function answerPicker(pid) {
  for (let step = 0; step < 4; step++) {
    await h.driver({ do: 'waitFor', selector: rows, timeoutMs: 20000 });
    await h.screenshot(`picker-step-${step}`);
    // The target's ref, name or description shows its pid.
    if (await typeAndFocus(pid)) {
      await h.screenshot('picker-filtered');
      await h.driver({ do: 'press', key: 'Enter' });
      return;
    }
    await h.driver({ do: 'press', key: 'Control+a' });
    await h.driver({ do: 'press', key: 'Backspace' });
    // Not a list of targets: a namespace ("local" holds this machine's
    // processes) or a kind ("pid") step.
    if (!(await typeAndFocus('local')) && !(await clearAndType('pid'))) {
      const { texts } = await h.driver({ do: 'texts', selector: rows });
      throw new Error(`the picker offers neither the target nor its namespace or kind: ${JSON.stringify(texts)}`);
    }
    await h.driver({ do: 'press', key: 'Enter' });
  }
  throw new Error('the picker never offered the target');
}

async function typeAndFocus(text) {
  await h.driver({ do: 'type', text });
  try {
    await h.driver({ do: 'waitFor', selector: `${rows}.focused`, hasText: text, timeoutMs: 5000 });
    return true;
  } catch {
    return false;
  }
}

async function clearAndType(text) {
  await h.driver({ do: 'press', key: 'Control+a' });
  await h.driver({ do: 'press', key: 'Backspace' });
  return typeAndFocus(text);
}

h.test('picks the target through the real QuickPick', async () => {
  const api = await h.remocal();
  const target = h.context().target;
  const pid = target.split('/')[1];
  const picked = vscode.commands.executeCommand('remocal.pickTarget');
  await answerPicker(pid);
  await picked;
  await h.waitFor(`the picked target ${target} in state()`, () => api.state().target?.ref === target && api.state().enabled);
  h.assertIncludes(api.statusBarText(), target, 'statusBarText()');
  await h.driver({ do: 'waitFor', selector: '.statusbar-item', hasText: target });
  await h.screenshot('status-bar-target');
});

h.test('clicking the status bar item turns remocal off and on', async () => {
  const api = await h.remocal();
  const target = h.context().target;
  await h.driver({ do: 'click', selector: '.statusbar-item', hasText: target });
  await h.waitFor('remocal to be off', () => !api.state().enabled && api.statusBarText() === 'remocal: off');
  await h.driver({ do: 'waitFor', selector: '.statusbar-item', hasText: 'remocal: off' });
  await h.screenshot('status-bar-off');
  await h.driver({ do: 'click', selector: '.statusbar-item', hasText: 'remocal: off' });
  await h.waitFor('remocal to be on again with the same target',
    () => api.state().enabled && api.state().target?.ref === target && api.statusBarText().includes(target));
});
