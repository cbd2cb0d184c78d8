// .remocal/config.json in the editor: problems from the daemon in the
// Problems panel (remocal/configChanged while it watches the file, and
// remocal/config/verify when the extension connects), opening it, and a
// starter file made from the picked target.
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import * as vscode from 'vscode';

import type { Connection } from './connection';
import type { Notifier } from './notify';
import { problemSpan, starterConfig } from './problems';
import { checkConfigResult, type ConfigChanged, Methods, type Problem } from './protocol';
import type { WorkspaceChoice } from './state';

/** Configurations are small; a bigger file is not read to place problems. */
const maxConfigBytes = 1 << 20;

export function configPath(folder: vscode.WorkspaceFolder): string {
  return path.join(folder.uri.fsPath, '.remocal', 'config.json');
}

export class ConfigProblems {
  readonly diagnostics = vscode.languages.createDiagnosticCollection('remocal');

  constructor(private readonly log: vscode.OutputChannel) {}

  async set(file: string, problems: readonly Problem[]): Promise<void> {
    const uri = vscode.Uri.file(file);
    if (problems.length === 0) {
      this.diagnostics.delete(uri);
      return;
    }
    let lines: string[] = [];
    try {
      const text = await readFile(file, 'utf8');
      lines = text.length <= maxConfigBytes ? text.split(/\r?\n/) : [];
    } catch (e) {
      this.log.appendLine(`reading ${file} to place its problems: ${e instanceof Error ? e.message : String(e)}`);
    }
    this.diagnostics.set(uri, problems.map((p) => {
      const s = problemSpan(p, lines);
      const d = new vscode.Diagnostic(new vscode.Range(s.line, s.character, s.endLine, s.endCharacter), p.message, vscode.DiagnosticSeverity.Error);
      d.source = 'remocal';
      d.code = p.path;
      return d;
    }));
  }

  changed(c: ConfigChanged): Promise<void> {
    return this.set(c.file, c.problems);
  }

  /** Verifies every workspace folder's configuration (at connect). */
  async verifyAll(conn: Connection): Promise<void> {
    for (const folder of vscode.workspace.workspaceFolders ?? []) {
      try {
        const r = await conn.request(Methods.configVerify, { workspaceFolder: folder.uri.fsPath }, checkConfigResult);
        if (r.file !== '') {
          await this.set(r.file, r.problems);
        }
      } catch (e) {
        this.log.appendLine(`verifying the configuration of ${folder.name}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  }

  dispose(): void {
    this.diagnostics.dispose();
  }
}

export async function openConfig(notifier: Notifier): Promise<void> {
  const folder = vscode.workspace.workspaceFolders?.[0];
  if (!folder) {
    notifier.show({ severity: 'error', message: 'remocal: open a folder first; its configuration lives in .remocal/config.json', actions: [] });
    return;
  }
  const uri = vscode.Uri.file(configPath(folder));
  try {
    await vscode.workspace.fs.stat(uri);
  } catch {
    const pick = await vscode.window.showInformationMessage(`remocal: ${folder.name} has no .remocal/config.json yet.`, 'Create it');
    if (pick === 'Create it') {
      await vscode.commands.executeCommand('remocal.createConfig');
    }
    return;
  }
  await vscode.window.showTextDocument(uri);
}

export async function createConfig(choice: WorkspaceChoice, notifier: Notifier, pick: () => Promise<boolean>): Promise<vscode.Uri | undefined> {
  const folder = vscode.workspace.workspaceFolders?.[0];
  if (!folder) {
    notifier.show({ severity: 'error', message: 'remocal: open a folder first; the configuration is written to its .remocal/config.json', actions: [] });
    return undefined;
  }
  if (!choice.target && !(await pick())) {
    return undefined;
  }
  const uri = vscode.Uri.file(configPath(folder));
  try {
    await vscode.workspace.fs.stat(uri);
    notifier.show({ severity: 'info', message: `remocal: ${vscode.workspace.asRelativePath(uri)} exists already; it is open for editing`, actions: [] });
  } catch {
    await vscode.workspace.fs.writeFile(uri, Buffer.from(starterConfig(choice.target)));
  }
  await vscode.window.showTextDocument(uri);
  return uri;
}
