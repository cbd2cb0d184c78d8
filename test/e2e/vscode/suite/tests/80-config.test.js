// .remocal/config.json in the editor: the daemon's problems in the Problems
// panel at their line and column (remocal/configChanged), completion and
// validation from the JSON Schema the extension ships, and
// remocal.createConfig's starter file, which the daemon finds valid. Every
// test puts the workspace's own configuration back (the other suites run
// on it).
'use strict';
const vscode = require('vscode');
const fs = require('node:fs');
const path = require('node:path');
const h = require('../lib/harness');

function configFile() {
  return path.join(h.context().workspace, '.remocal', 'config.json');
}

function remocalProblems(uri) {
  return vscode.languages.getDiagnostics(uri).filter((d) => d.source === 'remocal');
}

// restore writes the workspace's configuration back and waits until the
// daemon finds it valid and its problems are gone from the panel.
async function restore(api, original) {
  const file = configFile();
  fs.writeFileSync(file, original);
  await h.waitFor('the restored configuration to be valid again', async () => {
    const r = await api.request('remocal/config/verify', { workspaceFolder: h.context().workspace });
    return r.valid && remocalProblems(vscode.Uri.file(file)).length === 0;
  }, 20000);
}

function describe(diags) {
  return JSON.stringify(diags.map((d) => ({ source: d.source, message: d.message, line: d.range.start.line, character: d.range.start.character })));
}

h.test('an invalid value shows in the Problems panel at its line and column, and goes when fixed', async () => {
  const api = await h.remocal();
  const file = configFile();
  const uri = vscode.Uri.file(file);
  const original = fs.readFileSync(file, 'utf8');
  h.assertIncludes(original, '"mode": "mirror"', 'the workspace configuration');
  const bad = original.replace('"mode": "mirror"', '"mode": "copy"');
  const lines = bad.split('\n');
  const line = lines.findIndex((l) => l.includes('"copy"'));
  const character = lines[line].indexOf('"copy"');
  try {
    fs.writeFileSync(file, bad);
    let last = [];
    const d = await h.waitFor(() => `the daemon's problem at ${line + 1}:${character + 1} (diagnostics: ${describe(last)})`, () => {
      last = vscode.languages.getDiagnostics(uri);
      return remocalProblems(uri).find((x) => x.range.start.line === line && x.range.start.character === character);
    }, 30000);
    h.assertIncludes(d.message, 'copy', 'the problem\'s message');
    h.assert(d.range.end.character === character + '"copy"'.length, `the problem spans "copy": ${describe([d])} ends at ${d.range.end.character}`);
    h.assert(d.severity === vscode.DiagnosticSeverity.Error, `an error, got severity ${d.severity}`);
    await vscode.window.showTextDocument(uri);
    await vscode.commands.executeCommand('workbench.actions.view.problems');
    await h.driver({ do: 'waitFor', selector: '.markers-panel .monaco-list-row', hasText: 'copy', timeoutMs: 20000 });
    await h.screenshot('problems-panel');
    fs.writeFileSync(file, original);
    await h.waitFor(() => `the problem to clear once fixed (diagnostics: ${describe(remocalProblems(uri))})`, () => remocalProblems(uri).length === 0, 30000);
  } finally {
    await restore(api, original);
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');
    await vscode.commands.executeCommand('workbench.action.closePanel');
  }
});

h.test('the shipped JSON Schema completes properties and flags an unknown one', async () => {
  await h.remocal();
  const uri = vscode.Uri.file(configFile());
  const doc = await vscode.workspace.openTextDocument(uri);
  const editor = await vscode.window.showTextDocument(doc);
  try {
    // Inside the key "target": the schema's other properties are offered.
    const line = doc.getText().split('\n').findIndex((l) => l.includes('"target"'));
    const pos = new vscode.Position(line, doc.lineAt(line).text.indexOf('"target"') + 1);
    let labels = [];
    await h.waitFor(() => `schema properties among the completions at ${line + 1}:${pos.character + 1} (got ${JSON.stringify(labels.slice(0, 30))})`, async () => {
      const list = await vscode.commands.executeCommand('vscode.executeCompletionItemProvider', uri, pos);
      labels = (list?.items ?? []).map((i) => (typeof i.label === 'string' ? i.label : i.label.label).replace(/"/g, ''));
      return ['kubernetes', 'agent', 'env', 'processes'].every((k) => labels.includes(k));
    }, 30000);
    // An unknown property, typed (not saved: the daemon does not see it).
    const ok = await editor.edit((e) => e.insert(new vscode.Position(1, 2), '"colour": 1,\n  '));
    h.assert(ok, 'the edit applied');
    let last = [];
    const d = await h.waitFor(() => `the JSON language service to flag "colour" (diagnostics: ${describe(last)})`, () => {
      last = vscode.languages.getDiagnostics(uri);
      return last.find((x) => x.source !== 'remocal' && /colour/.test(x.message) && /not allowed/i.test(x.message));
    }, 30000);
    h.assert(d.range.start.line === 1, `flagged on line 2: ${describe([d])}`);
    await h.screenshot('config-schema-unknown-property');
  } finally {
    await vscode.commands.executeCommand('workbench.action.files.revert');
    await h.waitFor('the edit to be reverted', () => !doc.isDirty, 10000);
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');
  }
});

h.test('remocal.createConfig writes a starter configuration for the picked target that the daemon finds valid', async () => {
  const api = await h.remocal();
  const target = api.state().target;
  h.assert(target?.ref, 'a target is picked (20-picker picks it; run it before this suite)');
  const { workspace } = h.context();
  const file = configFile();
  const original = fs.readFileSync(file, 'utf8');
  fs.rmSync(file);
  try {
    await vscode.commands.executeCommand('remocal.createConfig');
    const written = await h.waitFor(`${file} to be written`, () => fs.existsSync(file) && fs.readFileSync(file, 'utf8'), 10000);
    h.log(`starter configuration:\n${written}`);
    const cfg = JSON.parse(written);
    h.assert(cfg.target === target.ref, `the starter's target is the picked ${target.ref}: ${written}`);
    const r = await api.request('remocal/config/verify', { workspaceFolder: workspace });
    h.assert(r.file === file && r.valid && r.problems.length === 0, `the daemon finds the starter valid: ${JSON.stringify(r)}`);
    const editor = await h.waitFor('the starter file to open', () => vscode.window.visibleTextEditors.find((e) => e.document.uri.fsPath === file), 10000);
    h.assertIncludes(editor.document.getText(), target.ref, 'the opened starter file');
    await h.driver({ do: 'waitFor', selector: '.editor-instance .view-lines', hasText: target.ref });
    await h.screenshot('config-starter');
  } finally {
    await restore(api, original);
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');
  }
});
