// The extension's entry point: wires the daemon connection to the views,
// the debug provider, the target shell and the commands, and returns the
// test API (for tests and other extensions).
import * as os from 'node:os';
import * as vscode from 'vscode';

import { chooseBinary } from './binary';
import { decode, json, type JsonValue } from './check';
import { createConfig, ConfigProblems, openConfig } from './configFile';
import { Connection } from './connection';
import { DaemonClient } from './daemon';
import { RemocalDebugProvider } from './debugProvider';
import type { ActionId } from './errors';
import { stealWithHeader } from './launch';
import { type ActionContext, Notifier } from './notify';
import { pickTarget } from './picker';
import {
  checkConfigChanged, checkConflict, checkNull, checkSessionChanged, checkSessionDetail, checkSessionListResult,
  checkShowMessageParams, Methods, Notifications,
} from './protocol';
import { detailText } from './detail';
import { type Node, SessionsModel } from './sessionsModel';
import { SessionsView } from './sessionsView';
import { WorkspaceChoice } from './state';
import { StatusBar } from './statusBar';
import { TargetShell } from './terminal';

/** The API activate() returns: for tests and other extensions. */
export interface RemocalApi {
  /** The daemon protocol version the extension needs. */
  protocolVersion: string;
  /** Any daemon request, connecting first; the raw JSON result. */
  request(method: string, params?: unknown): Promise<unknown>;
  state(): { enabled: boolean; target?: { ref: string; namespace?: string; container?: string; provider: string }; connected: boolean; daemonProtocolVersion?: string };
  sessionsTree(): Promise<ApiNode[]>;
  statusBarText(): string;
  /** Resolves when no session start, listing or tree update is in flight. */
  whenIdle(): Promise<void>;
}

export interface ApiNode { label: string; description?: string; tooltip?: string; contextValue?: string; children: ApiNode[] }

function apiNode(n: Node): ApiNode {
  return { label: n.label, description: n.description, tooltip: n.tooltip, contextValue: n.contextValue, children: n.children.map(apiNode) };
}

class Busy {
  private readonly pending = new Set<Promise<unknown>>();

  track = <T>(p: Promise<T>): Promise<T> => {
    this.pending.add(p);
    const done = (): void => { this.pending.delete(p); };
    p.then(done, done);
    return p;
  };

  async idle(): Promise<void> {
    while (this.pending.size > 0) {
      await Promise.allSettled([...this.pending]);
    }
  }
}

export function activate(context: vscode.ExtensionContext): RemocalApi {
  const log = vscode.window.createOutputChannel('remocal');
  const pkg = context.extension.packageJSON as { version?: string; remocalProtocol?: string };
  const protocolVersion = pkg.remocalProtocol ?? '1.1';
  const choice = new WorkspaceChoice(context.workspaceState);
  const model = new SessionsModel();
  const view = new SessionsView(model);
  const status = new StatusBar(choice);
  const problems = new ConfigProblems(log);
  const busy = new Busy();

  const conn = new Connection(async () => {
    const binary = chooseBinary(vscode.workspace.getConfiguration('remocal').get<string>('binaryPath'), context.extensionPath, process.env.PATH);
    log.appendLine(`starting ${binary.path} daemon --stdio (${binary.source})`);
    return DaemonClient.start({
      binary: binary.path, clientName: 'vscode-remocal', clientVersion: pkg.version ?? '0.0.0', neededProtocol: protocolVersion,
      workspaceFolders: (vscode.workspace.workspaceFolders ?? []).map((f) => ({ uri: f.uri.toString(), name: f.name })),
      log: (line) => { log.appendLine(line); },
    });
  });

  const runAction = async (action: ActionId, ctx: ActionContext): Promise<void> => {
    switch (action) {
      case 'openConfig':
        return openConfig(notifier);
      case 'pickTarget':
        await vscode.commands.executeCommand('remocal.pickTarget');
        return;
      case 'showLog':
        log.show(true);
        return;
      case 'openSettings':
        await vscode.commands.executeCommand('workbench.action.openSettings', 'remocal.binaryPath');
        return;
      case 'restartDaemon':
        await vscode.commands.executeCommand('remocal.restartDaemon');
        return;
      case 'stealWithHeader': {
        const ok = ctx.sessionId !== undefined && (await provider.relaunchWith(ctx.sessionId, stealWithHeader(os.userInfo().username)));
        if (!ok) {
          notifier.show({
            severity: 'info', actions: ['openConfig'],
            message: 'remocal: no debug session of this window runs that session; to steal only your requests, set network.incoming.httpFilter in .remocal/config.json (or "remocal": {"overrides": ...} in the launch configuration)',
          });
        }
        return;
      }
    }
  };
  const notifier = new Notifier(log, runAction);
  const provider = new RemocalDebugProvider(conn, choice, notifier, log, (id) => model.session(id) !== undefined, busy.track);
  const shell = new TargetShell(conn, choice, notifier, log, busy.track);
  const detail = new DetailDocuments();

  conn.onConnected((c) => {
    log.appendLine(`connected: daemon ${c.serverVersion}, protocol ${c.protocolVersion}`);
    status.update(true);
    void busy.track((async () => {
      try {
        model.reset(await c.request(Methods.sessionList, undefined, checkSessionListResult));
      } catch (e) {
        log.appendLine(`listing sessions: ${e instanceof Error ? e.message : String(e)}`);
      }
      view.refresh();
      await problems.verifyAll(conn);
    })());
  });
  conn.onDisconnected((reason) => {
    model.reset(undefined);
    view.refresh(reason);
    status.update(false, reason);
    notifier.show({
      severity: 'warning', actions: ['restartDaemon', 'showLog'],
      message: `remocal: lost the daemon (${reason}). Sessions of this window ended; remocal reconnects on the next use (F5, a target shell, the picker).`,
    });
  });
  conn.onNotification((method, params) => {
    switch (method) {
      case Notifications.sessionChanged: {
        const p = decode(checkSessionChanged, params);
        model.sessionChanged(p.session, p.remote);
        view.refresh();
        return;
      }
      case Notifications.conflict: {
        const c = decode(checkConflict, params);
        model.conflict(c);
        view.refresh();
        notifier.conflict(c, c.sessionId !== '' && provider.owns(c.sessionId));
        return;
      }
      case Notifications.configChanged:
        void busy.track(problems.changed(decode(checkConfigChanged, params)));
        return;
      case Notifications.showMessage:
        notifier.daemonMessage(decode(checkShowMessageParams, params));
        return;
      case Notifications.logMessage:
        log.appendLine(`daemon: ${decode(checkShowMessageParams, params).message}`);
        return;
    }
  });
  choice.onChange(() => { status.update(conn.connected); });

  const doPick = (): Promise<boolean> => busy.track(pickTarget(conn, choice, notifier));
  const sessionIdOf = (arg: unknown): string | undefined =>
    typeof arg === 'string' ? arg : (arg as Node | undefined)?.sessionId;
  context.subscriptions.push(
    log, status, problems,
    vscode.window.registerTreeDataProvider('remocal.sessions', view),
    vscode.workspace.registerTextDocumentContentProvider(DetailDocuments.scheme, detail),
    ...provider.register(),
    ...shell.register(),
    vscode.commands.registerCommand('remocal.pickTarget', doPick),
    vscode.commands.registerCommand('remocal.toggle', async () => {
      if (choice.enabled) {
        await choice.setEnabled(false);
      } else if (choice.target) {
        await choice.setEnabled(true);
      } else {
        await doPick();
      }
    }),
    vscode.commands.registerCommand('remocal.createConfig', () => createConfig(choice, notifier, doPick)),
    vscode.commands.registerCommand('remocal.openConfig', () => openConfig(notifier)),
    vscode.commands.registerCommand('remocal.showLog', () => { log.show(true); }),
    vscode.commands.registerCommand('remocal.openTargetShell', () => shell.open()),
    vscode.commands.registerCommand('remocal.restartDaemon', () => busy.track((async () => {
      try {
        await conn.restart();
      } catch (e) {
        notifier.error('reconnecting to the daemon', e);
      }
    })())),
    vscode.commands.registerCommand('remocal.refreshSessions', () => busy.track((async () => {
      try {
        model.reset(await conn.request(Methods.sessionList, undefined, checkSessionListResult));
        view.refresh();
      } catch (e) {
        notifier.error('listing sessions', e);
      }
    })())),
    vscode.commands.registerCommand('remocal.stopSession', async (arg: unknown) => {
      const id = sessionIdOf(arg);
      if (!id) {
        notifier.show({ severity: 'error', message: 'remocal: Stop Session needs a session (from the remocal view, or its id)', actions: [] });
        return;
      }
      try {
        await busy.track(conn.request(Methods.sessionStop, { id }, checkNull));
      } catch (e) {
        notifier.error(`stopping session ${id}`, e);
      }
    }),
    vscode.commands.registerCommand('remocal.killSession', async (arg: unknown) => {
      const r = (arg as Node | undefined)?.remote ?? (arg as { namespace?: unknown; name?: unknown } | undefined);
      if (typeof r?.namespace !== 'string' || typeof r.name !== 'string') {
        notifier.show({ severity: 'error', message: 'remocal: Kill Operator Session needs a cluster session (from the remocal view, or {namespace, name})', actions: [] });
        return;
      }
      const target = { namespace: r.namespace, name: r.name };
      if ((arg as Node).remote) {
        // From the view: somebody else's session may end; ask first.
        const ok = await vscode.window.showWarningMessage(`Kill the operator session ${target.namespace}/${target.name}? Its owner's traffic goes back to the target.`, { modal: true }, 'Kill');
        if (ok !== 'Kill') {
          return;
        }
      }
      try {
        await busy.track(conn.request(Methods.sessionKill, target, checkNull));
      } catch (e) {
        notifier.error(`killing ${target.namespace}/${target.name}`, e);
      }
    }),
    vscode.commands.registerCommand('remocal.showSessionDetail', async (arg: unknown) => {
      const id = sessionIdOf(arg);
      if (!id) {
        notifier.show({ severity: 'error', message: 'remocal: Show Session Detail needs a session (from the remocal view, or its id)', actions: [] });
        return;
      }
      try {
        const d = await busy.track(conn.request(Methods.sessionDetail, { id }, checkSessionDetail));
        const uri = detail.put(id, detailText(d));
        await vscode.window.showTextDocument(uri, { preview: true });
      } catch (e) {
        notifier.error(`reading the detail of session ${id}`, e);
      }
    }),
    { dispose: () => { void conn.stop(); } },
  );

  void busy.track(conn.get().catch((e: unknown) => { notifier.error('connecting to the remocal daemon', e); }));

  return {
    protocolVersion,
    request: (method, params) => conn.request(method, params, (v, ctx): JsonValue => (v === undefined ? null : json(v, ctx))),
    state: () => ({
      enabled: choice.enabled, target: choice.target, connected: conn.connected, daemonProtocolVersion: conn.current?.protocolVersion,
    }),
    sessionsTree: async () => {
      await busy.idle();
      return view.nodes().map(apiNode);
    },
    statusBarText: () => status.item.text,
    whenIdle: () => busy.idle(),
  };
}

/** Read-only documents with a session's detail (remocal-detail:/s1.txt). */
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

export function deactivate(): void {
  // The connection is a subscription: disposing it ends this client's
  // connection (the shared daemon lives on for other clients).
}

