// The commands of the palette and the remocal view, and what the actions of
// notifications do.
import * as os from 'node:os';
import * as vscode from 'vscode';

import { createConfig, openConfig } from './configFile';
import type { Connection } from './connection';
import type { RemocalDebugProvider } from './debugProvider';
import { detailText } from './detail';
import type { ActionId } from './errors';
import { stealWithHeader } from './launch';
import type { ActionContext, Notifier } from './notify';
import { pickTarget } from './picker';
import { policiesArgs } from './pickerModel';
import { checkNull, checkSessionDetail, checkSessionListResult, Methods } from './protocol';
import type { Node, SessionsModel } from './sessionsModel';
import type { SessionsView } from './sessionsView';
import type { WorkspaceChoice } from './state';
import type { TargetShell } from './terminal';

/** Everything the commands act on. */
export interface Parts {
  log: vscode.OutputChannel;
  conn: Connection;
  choice: WorkspaceChoice;
  model: SessionsModel;
  view: SessionsView;
  notifier: Notifier;
  provider: RemocalDebugProvider;
  shell: TargetShell;
  busy: <T>(p: Promise<T>) => Promise<T>;
  /** The remocal binary the daemon runs, for commands run in a terminal. */
  binary: () => string;
}

export async function runAction(p: Parts, action: ActionId, ctx: ActionContext): Promise<void> {
  switch (action) {
    case 'openConfig':
      return openConfig(p.notifier);
    case 'pickTarget':
      await vscode.commands.executeCommand('remocal.pickTarget');
      return;
    case 'showLog':
      p.log.show(true);
      return;
    case 'openSettings':
      await vscode.commands.executeCommand('workbench.action.openSettings', 'remocal.binaryPath');
      return;
    case 'restartDaemon':
      await vscode.commands.executeCommand('remocal.restartDaemon');
      return;
    case 'restartProgram': {
      // A new session: the program gets the target's environment and
      // hostname as they are now, in its new pod.
      const ok = ctx.sessionId !== undefined && (await p.provider.relaunch(ctx.sessionId));
      if (!ok) {
        p.notifier.show({
          severity: 'info', actions: [],
          message: 'remocal: no debug session of this window runs that session; restart the program yourself to give it the new pod\'s environment and hostname',
        });
      }
      return;
    }
    case 'showPolicies':
      showPolicies(p);
      return;
    case 'stealWithHeader': {
      const ok = ctx.sessionId !== undefined && (await p.provider.relaunchWith(ctx.sessionId, stealWithHeader(os.userInfo().username)));
      if (!ok) {
        p.notifier.show({
          severity: 'info', actions: ['openConfig'],
          message: 'remocal: no debug session of this window runs that session; to steal only your requests, set network.incoming.httpFilter in .remocal/config.json (or "remocal": {"overrides": ...} in the launch configuration)',
        });
      }
      return;
    }
  }
}

/**
 * Runs `remocal operator policies` for the workspace's target in a terminal:
 * which policies apply to it and what they allow, as the CLI shows them.
 */
function showPolicies(p: Parts): void {
  const t = p.choice.target;
  const args = ['operator', 'policies', ...policiesArgs(t?.ref, t?.namespace)];
  const term = vscode.window.createTerminal({ name: 'remocal: policies', shellPath: p.binary(), shellArgs: args });
  term.show();
}

export function registerCommands(p: Parts): vscode.Disposable[] {
  const detail = new DetailDocuments();
  const doPick = (): Promise<boolean> => p.busy(pickTarget(p.conn, p.choice, p.notifier));
  return [
    vscode.workspace.registerTextDocumentContentProvider(DetailDocuments.scheme, detail),
    vscode.commands.registerCommand('remocal.pickTarget', doPick),
    vscode.commands.registerCommand('remocal.toggle', async () => {
      if (p.choice.enabled) {
        await p.choice.setEnabled(false);
      } else if (p.choice.target) {
        await p.choice.setEnabled(true);
      } else {
        await doPick();
      }
    }),
    vscode.commands.registerCommand('remocal.createConfig', () => createConfig(p.choice, p.notifier, doPick)),
    vscode.commands.registerCommand('remocal.openConfig', () => openConfig(p.notifier)),
    vscode.commands.registerCommand('remocal.showLog', () => { p.log.show(true); }),
    vscode.commands.registerCommand('remocal.openTargetShell', () => p.shell.open()),
    vscode.commands.registerCommand('remocal.restartDaemon', () => attempt(p, 'reconnecting to the daemon', () => p.conn.restart())),
    vscode.commands.registerCommand('remocal.refreshSessions', () => attempt(p, 'listing sessions', async () => {
      p.model.reset(await p.conn.request(Methods.sessionList, undefined, checkSessionListResult));
      p.view.refresh();
    })),
    vscode.commands.registerCommand('remocal.stopSession', (arg: unknown) => stopSession(p, arg)),
    vscode.commands.registerCommand('remocal.killSession', (arg: unknown) => killSession(p, arg)),
    vscode.commands.registerCommand('remocal.showSessionDetail', (arg: unknown) => showDetail(p, detail, arg)),
  ];
}

/** Runs f, tracked as busy; a failure becomes a message saying what was being done. */
async function attempt(p: Parts, doing: string, f: () => Promise<unknown>): Promise<void> {
  try {
    await p.busy(f());
  } catch (e) {
    p.notifier.error(doing, e);
  }
}

/** A session id from a view item or the id itself. */
function sessionIdOf(arg: unknown): string | undefined {
  if (typeof arg === 'string') {
    return arg;
  }
  return typeof arg === 'object' && arg !== null && 'sessionId' in arg && typeof arg.sessionId === 'string' ? arg.sessionId : undefined;
}

async function stopSession(p: Parts, arg: unknown): Promise<void> {
  const id = sessionIdOf(arg);
  if (!id) {
    p.notifier.show({ severity: 'error', message: 'remocal: Stop Session needs a session (from the remocal view, or its id)', actions: [] });
    return;
  }
  await attempt(p, `stopping session ${id}`, () => p.conn.request(Methods.sessionStop, { id }, checkNull));
}

async function killSession(p: Parts, arg: unknown): Promise<void> {
  const fromView = (arg as Node | undefined)?.remote;
  const r = fromView ?? (arg as { namespace?: unknown; name?: unknown } | undefined);
  if (typeof r?.namespace !== 'string' || typeof r.name !== 'string') {
    p.notifier.show({ severity: 'error', message: 'remocal: Kill Operator Session needs a cluster session (from the remocal view, or {namespace, name})', actions: [] });
    return;
  }
  const target = { namespace: r.namespace, name: r.name };
  if (fromView) {
    // From the view: somebody else's session may end; ask first.
    const ok = await vscode.window.showWarningMessage(
      `Kill the operator session ${target.namespace}/${target.name}? Its owner's traffic goes back to the target.`, { modal: true }, 'Kill');
    if (ok !== 'Kill') {
      return;
    }
  }
  await attempt(p, `killing ${target.namespace}/${target.name}`, () => p.conn.request(Methods.sessionKill, target, checkNull));
}

async function showDetail(p: Parts, detail: DetailDocuments, arg: unknown): Promise<void> {
  const id = sessionIdOf(arg);
  if (!id) {
    p.notifier.show({ severity: 'error', message: 'remocal: Show Session Detail needs a session (from the remocal view, or its id)', actions: [] });
    return;
  }
  await attempt(p, `reading the detail of session ${id}`, async () => {
    const d = await p.conn.request(Methods.sessionDetail, { id }, checkSessionDetail);
    await vscode.window.showTextDocument(detail.put(id, detailText(d)), { preview: true });
  });
}

/** Read-only documents with a session's detail (remocal-detail:/session-s1.txt). */
class DetailDocuments implements vscode.TextDocumentContentProvider {
  static readonly scheme = 'remocal-detail';
  private readonly texts = new Map<string, string>();
  private readonly emitter = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.emitter.event;

  put(id: string, text: string): vscode.Uri {
    const uri = vscode.Uri.from({ scheme: DetailDocuments.scheme, path: `/session-${id}.txt` });
    this.texts.set(uri.path, text);
    this.emitter.fire(uri);
    return uri;
  }

  provideTextDocumentContent(uri: vscode.Uri): string {
    return this.texts.get(uri.path) ?? `no detail for ${uri.path}; open it again from the remocal view`;
  }
}
