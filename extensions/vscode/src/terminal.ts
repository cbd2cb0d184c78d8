// The terminal profile "remocal: target shell": a shell started in a
// session of its own, so every command typed in it runs as if in the
// target. The session ends when the terminal closes.
import * as path from 'node:path';
import * as vscode from 'vscode';

import type { Connection } from './connection';
import type { Notifier } from './notify';
import { describeTarget } from './pickerModel';
import { checkNull, Methods, type SessionStartParams } from './protocol';
import { startSession } from './sessionStart';
import type { WorkspaceChoice } from './state';

export const profileId = 'remocal.targetShell';

export class TargetShell implements vscode.TerminalProfileProvider {
  /** Terminal names we created, by the session they belong to. */
  private readonly byName = new Map<string, string>();
  private count = 0;

  constructor(
    private readonly conn: Connection,
    private readonly choice: WorkspaceChoice,
    private readonly notifier: Notifier,
    private readonly log: vscode.OutputChannel,
    private readonly busy: <T>(p: Promise<T>) => Promise<T>,
  ) {}

  register(): vscode.Disposable[] {
    return [
      vscode.window.registerTerminalProfileProvider(profileId, this),
      vscode.window.onDidCloseTerminal((t) => { void this.closed(t); }),
    ];
  }

  async provideTerminalProfile(token: vscode.CancellationToken): Promise<vscode.TerminalProfile | undefined> {
    const options = await this.options(token);
    return options ? new vscode.TerminalProfile(options) : undefined;
  }

  /** Opens the shell directly (command remocal.openTargetShell). */
  async open(): Promise<vscode.Terminal | undefined> {
    const options = await this.options();
    if (!options) {
      return undefined;
    }
    const t = vscode.window.createTerminal(options);
    t.show();
    return t;
  }

  private async options(token?: vscode.CancellationToken): Promise<vscode.TerminalOptions | undefined> {
    const folder = vscode.workspace.workspaceFolders?.[0];
    if (!folder) {
      this.notifier.show({ severity: 'error', message: 'remocal: the target shell needs a workspace folder (for .remocal/config.json); open a folder first', actions: [] });
      return undefined;
    }
    const target = this.choice.target;
    const shell = process.env.SHELL && path.isAbsolute(process.env.SHELL) ? process.env.SHELL : '/bin/bash';
    const params: SessionStartParams = {
      target: target?.ref ?? '', workspaceFolder: folder.uri.fsPath, label: 'terminal', program: { path: shell, args: [], launch: 'auto' },
    };
    if (target?.namespace) {
      params.namespace = target.namespace;
    }
    try {
      const r = await this.busy(startSession(this.conn, params, token));
      const name = `remocal: ${describeTarget(target ?? { ref: r.session.target, provider: '' })} #${++this.count}`;
      this.byName.set(name, r.session.id);
      this.log.appendLine(`terminal "${name}": session ${r.session.id}`);
      this.notifier.warnings(r.session.id, r.warnings);
      const w = r.wrapper;
      return {
        name, cwd: folder.uri, env: r.env,
        shellPath: w && w.length > 0 ? w[0] : shell,
        shellArgs: w && w.length > 0 ? w.slice(1) : [],
        iconPath: new vscode.ThemeIcon('remote'),
      };
    } catch (e) {
      this.notifier.error('starting the target shell', e);
      return undefined;
    }
  }

  /** The daemon went away with its sessions; a new daemon's ids must not match them. */
  daemonLost(): void {
    this.byName.clear();
  }

  private async closed(t: vscode.Terminal): Promise<void> {
    const name = 'name' in t.creationOptions ? t.creationOptions.name : undefined;
    const id = name ? this.byName.get(name) : undefined;
    if (!name || !id) {
      return;
    }
    this.byName.delete(name);
    if (!this.conn.connected) {
      return;
    }
    try {
      await this.conn.request(Methods.sessionStop, { id }, checkNull);
      this.log.appendLine(`terminal "${name}" closed: session ${id} stopped`);
    } catch (e) {
      this.log.appendLine(`terminal "${name}" closed: stopping session ${id}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
}
