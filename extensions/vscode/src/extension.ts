// The extension's entry point: wires the daemon connection to the views,
// the debug provider, the target shell and the commands, and returns the
// test API (for tests and other extensions).
import * as vscode from 'vscode';

import { chooseBinary } from './binary';
import { decode, json, type JsonValue } from './check';
import { type Parts, registerCommands, runAction } from './commands';
import { ConfigProblems } from './configFile';
import { Connection } from './connection';
import { DaemonClient } from './daemon';
import { RemocalDebugProvider } from './debugProvider';
import { Notifier } from './notify';
import {
  checkConfigChanged, checkConflict, checkSessionChanged, checkSessionListResult, checkShowMessageParams, Methods, Notifications,
  type Session,
} from './protocol';
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
  /** The remocal view's nodes, once pending updates are applied. */
  sessionsTree(): Promise<ApiNode[]>;
  statusBarText(): string;
  /** Resolves when no session start, listing or tree update is in flight. */
  whenIdle(): Promise<void>;
}

export interface ApiNode { label: string; description?: string; tooltip?: string; contextValue?: string; children: ApiNode[] }

function apiNode(n: Node): ApiNode {
  return { label: n.label, description: n.description, tooltip: n.tooltip, contextValue: n.contextValue, children: n.children.map(apiNode) };
}

/** Work in flight, for whenIdle(). */
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
  const busy = new Busy();
  const chosenBinary = () => chooseBinary(vscode.workspace.getConfiguration('remocal').get<string>('binaryPath'), context.extensionPath, process.env.PATH);
  const conn = new Connection(async () => {
    const binary = chosenBinary();
    log.appendLine(`starting ${binary.path} daemon --stdio (${binary.source})`);
    return DaemonClient.start({
      binary: binary.path, clientName: 'vscode-remocal', clientVersion: pkg.version ?? '0.0.0', neededProtocol: protocolVersion,
      workspaceFolders: (vscode.workspace.workspaceFolders ?? []).map((f) => ({ uri: f.uri.toString(), name: f.name })),
      log: (line) => { log.appendLine(line); },
    });
  });
  // The notifier's actions need the debug provider, which needs the notifier.
  const parts = { log, conn, choice, model, busy: busy.track, binary: () => chosenBinary().path } as Parts;
  parts.notifier = new Notifier(log, (action, ctx) => runAction(parts, action, ctx));
  parts.view = new SessionsView(model);
  parts.provider = new RemocalDebugProvider(conn, choice, parts.notifier, log, (id) => model.session(id) !== undefined, busy.track);
  parts.shell = new TargetShell(conn, choice, parts.notifier, log, busy.track);
  const status = new StatusBar(choice);
  const problems = new ConfigProblems(log);
  wireDaemon(parts, status, problems);
  choice.onChange(() => { status.update(conn.connected); });

  context.subscriptions.push(
    log, status, problems,
    vscode.window.registerTreeDataProvider('remocal.sessions', parts.view),
    ...parts.provider.register(),
    ...parts.shell.register(),
    ...registerCommands(parts),
    { dispose: () => { void conn.stop(); } },
  );
  void busy.track(conn.get().catch((e: unknown) => { parts.notifier.error('connecting to the remocal daemon', e); }));

  return {
    protocolVersion,
    request: (method, params) => conn.request(method, params, (v, ctx): JsonValue => (v === undefined ? null : json(v, ctx))),
    state: () => ({ enabled: choice.enabled, target: choice.target, connected: conn.connected, daemonProtocolVersion: conn.current?.protocolVersion }),
    sessionsTree: async () => {
      await busy.idle();
      return parts.view.nodes().map(apiNode);
    },
    statusBarText: () => status.item.text,
    whenIdle: () => busy.idle(),
  };
}

/** The daemon's connects, disconnects and notifications, to the views. */
function wireDaemon(p: Parts, status: StatusBar, problems: ConfigProblems): void {
  p.conn.onConnected((c) => {
    p.log.appendLine(`connected: daemon ${c.serverVersion}, protocol ${c.protocolVersion}`);
    status.update(true);
    void p.busy((async () => {
      try {
        p.model.reset(await c.request(Methods.sessionList, undefined, checkSessionListResult));
      } catch (e) {
        p.log.appendLine(`listing sessions: ${e instanceof Error ? e.message : String(e)}`);
      }
      p.view.refresh();
      await problems.verifyAll(p.conn);
    })());
  });
  p.conn.onDisconnected((reason) => {
    p.provider.daemonLost();
    p.shell.daemonLost();
    p.model.reset(undefined);
    p.view.refresh(reason);
    status.update(false, reason);
    p.notifier.show({
      severity: 'warning', actions: ['restartDaemon', 'showLog'],
      message: `remocal: lost the daemon (${reason}). It starts again on the next use (F5, a target shell, the picker), or now with Restart daemon.`,
    });
  });
  // Moves already offered a restart for, by session and the pod it left:
  // every later sessionChanged of the session still carries them.
  const staleShown = new Set<string>();
  p.conn.onNotification((method, params) => {
    switch (method) {
      case Notifications.sessionChanged: {
        const s = decode(checkSessionChanged, params);
        p.model.sessionChanged(s.session, s.remote);
        p.view.refresh();
        offerRestart(p, s.session, staleShown);
        return;
      }
      case Notifications.conflict: {
        const c = decode(checkConflict, params);
        p.model.conflict(c);
        p.view.refresh();
        p.notifier.conflict(c, c.sessionId !== '' && p.provider.owns(c.sessionId));
        return;
      }
      case Notifications.configChanged:
        void p.busy(problems.changed(decode(checkConfigChanged, params)));
        return;
      case Notifications.showMessage:
        p.notifier.daemonMessage(decode(checkShowMessageParams, params));
        return;
      case Notifications.logMessage:
        p.log.appendLine(`daemon: ${decode(checkShowMessageParams, params).message}`);
        return;
    }
  });
}

/** Offers a restart when a session this window started moved to a new pod (Session.stale). */
function offerRestart(p: Parts, s: Session | undefined, shown: Set<string>): void {
  if (!s?.stale || !p.provider.owns(s.id)) {
    return;
  }
  const key = `${s.id}\u0000${s.stale.from}`;
  if (shown.has(key)) {
    return;
  }
  shown.add(key);
  p.notifier.stale(s.id, s.stale.message);
}

export function deactivate(): void {
  // The connection is a subscription: disposing it ends this client's
  // connection (the shared daemon lives on for other clients).
}
