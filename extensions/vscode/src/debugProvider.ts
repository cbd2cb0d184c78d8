// F5 on any launch configuration: a DebugConfigurationProvider for every
// debug type ('*') that starts a daemon session in
// resolveDebugConfigurationWithSubstitutedVariables (program paths are
// final there) and hands the debugger the session's env or wrapper. The
// remocal session ends with the top-level debug session that carries it.
import { randomUUID } from 'node:crypto';
import * as vscode from 'vscode';

import type { JsonObject } from './check';
import type { Connection } from './connection';
import { apply, type DebugConfig, marker, mergeOverrides, parseLaunchField, plan } from './launch';
import type { Notifier } from './notify';
import { checkNull, Methods } from './protocol';
import { startSession } from './sessionStart';
import type { WorkspaceChoice } from './state';

interface Running {
  /** The daemon's session id; empty once it ended (or its daemon went away: ids restart with a new daemon). */
  sessionId: string;
  /** The id the session started with, and the daemon connection it belongs to, for actions after it ended. */
  startedAs: string;
  epoch: number;
  folder: vscode.WorkspaceFolder | undefined;
  /** The configuration as it was before the rewrite, for restarts and "steal instead". */
  original: DebugConfig;
  debugSession?: vscode.DebugSession;
  debugEnded?: boolean;
  /** VS Code is restarting the debug session by ending and launching it again: keep the remocal session. */
  restarting?: boolean;
}

/** A started session no debug session claimed within this time is stopped (the launch failed). */
const unclaimedMs = 60_000;
/** Ended entries are kept (a restart of their debug session needs the original) up to this many. */
const maxEntries = 100;

export class RemocalDebugProvider implements vscode.DebugConfigurationProvider {
  /** By marker (a UUID per start, so a restarted daemon's reused ids cannot match). */
  private readonly running = new Map<string, Running>();
  /** Counts daemons gone away: a new daemon numbers sessions from s1 again. */
  private epoch = 0;

  constructor(
    private readonly conn: Connection,
    private readonly choice: WorkspaceChoice,
    private readonly notifier: Notifier,
    private readonly log: vscode.OutputChannel,
    private readonly isSessionAlive: (id: string) => boolean,
    private readonly busy: <T>(p: Promise<T>) => Promise<T>,
  ) {}

  register(): vscode.Disposable[] {
    return [
      vscode.debug.registerDebugConfigurationProvider('*', this),
      vscode.debug.onDidStartDebugSession((s) => this.started(s)),
      vscode.debug.onDidTerminateDebugSession((s) => { void this.terminated(s); }),
      vscode.debug.registerDebugAdapterTrackerFactory('*', { createDebugAdapterTracker: (s) => this.tracker(s) }),
    ];
  }

  /**
   * Watches a top-level debug session for a restart. An adapter that cannot
   * restart its program itself (no supportsRestartRequest; js-debug can) is
   * restarted by VS Code: terminate (or disconnect) with restart: true, the
   * debug session ends, and the same resolved configuration (our env or
   * wrapper, without asking the providers again) is launched again. Its
   * remocal session must live on for it.
   */
  private tracker(s: vscode.DebugSession): vscode.DebugAdapterTracker | undefined {
    const mark = s.configuration[marker] as unknown;
    if (typeof mark !== 'string' || !this.running.has(mark)) {
      return undefined;
    }
    return {
      onWillReceiveMessage: (m: unknown) => {
        const run = this.running.get(mark);
        if (run?.debugSession?.id === s.id && isRestartingEnd(m)) {
          run.restarting = true;
        }
      },
    };
  }

  async resolveDebugConfigurationWithSubstitutedVariables(
    folder: vscode.WorkspaceFolder | undefined,
    debugConfiguration: vscode.DebugConfiguration,
    token?: vscode.CancellationToken,
  ): Promise<vscode.DebugConfiguration | undefined> {
    let config: DebugConfig = debugConfiguration;
    const mark = config[marker];
    const run = typeof mark === 'string' ? this.running.get(mark) : undefined;
    if (typeof mark === 'string' && !(run && this.alive(run))) {
      // A restart of a debug session whose remocal session ended: start
      // over from the configuration as the user wrote it.
      config = run ? { ...run.original } : stripMarker(config);
    }
    const ws = folder ?? vscode.workspace.workspaceFolders?.[0];
    let p;
    try {
      p = plan({
        config, enabled: this.choice.enabled, target: this.choice.target, workspaceFolder: ws?.uri.fsPath ?? '',
        pathEnv: process.env.PATH, isLive: (m) => { const r = this.running.get(m); return r !== undefined && this.alive(r); },
      });
    } catch (e) {
      this.notifier.error(`launch configuration "${config.name}"`, e);
      return undefined;
    }
    if (p.kind === 'skip') {
      this.log.appendLine(`debug "${config.name}" (${config.type}): not in remocal: ${p.why}`);
      return config;
    }
    if (!ws) {
      this.notifier.show({ severity: 'error', message: `remocal: "${config.name}" needs a workspace folder to find .remocal/config.json; open a folder, or set "remocal": false in the configuration`, actions: [] });
      return undefined;
    }
    try {
      const result = await this.busy(startSession(this.conn, p.params, token));
      const id = randomUUID();
      const out = apply(config, result, id);
      this.remember(id, { sessionId: result.session.id, startedAs: result.session.id, epoch: this.epoch, folder, original: config });
      this.log.appendLine(`debug "${config.name}": session ${result.session.id} on ${result.session.resolved ?? result.session.target}, ${result.wrapper ? `wrapper ${result.wrapper[0]}` : 'env'}`);
      this.notifier.warnings(result.session.id, result.warnings);
      setTimeout(() => { void this.reapUnclaimed(id); }, unclaimedMs).unref();
      return out;
    } catch (e) {
      // Undefined cancels the launch; the message says why and what to do.
      this.notifier.error(`starting a session for "${config.name}"`, e, {});
      return undefined;
    }
  }

  private alive(r: Running): boolean {
    return r.sessionId !== '' && this.isSessionAlive(r.sessionId);
  }

  private remember(mark: string, r: Running): void {
    this.running.set(mark, r);
    for (const old of this.running.keys()) {
      if (this.running.size <= maxEntries) {
        break;
      }
      this.running.delete(old);
    }
  }

  /** The daemon went away with its sessions; a new daemon reuses their ids, which must not match. */
  daemonLost(): void {
    this.epoch++;
    for (const r of this.running.values()) {
      r.sessionId = '';
    }
  }

  private started(s: vscode.DebugSession): void {
    const mark = s.configuration[marker] as unknown;
    const run = typeof mark === 'string' ? this.running.get(mark) : undefined;
    // The first debug session with the marker is the top-level one;
    // js-debug's children carry the same marker and are not bound.
    if (run && !run.debugSession) {
      run.debugSession = s;
    }
  }

  private async terminated(s: vscode.DebugSession): Promise<void> {
    for (const run of this.running.values()) {
      if (run.debugSession?.id === s.id && run.restarting) {
        // Launched again right away with the same env: it stays in the session.
        run.restarting = false;
        this.log.appendLine(`debug session "${s.name}" restarts; it stays in session ${run.sessionId || '(ended)'}`);
        continue;
      }
      if (run.debugSession?.id === s.id) {
        run.debugEnded = true;
      }
      if (run.debugSession?.id === s.id && run.sessionId !== '') {
        const id = run.sessionId;
        run.sessionId = '';
        await this.stop(id, `debug session "${s.name}" ended`);
      }
    }
  }

  private async reapUnclaimed(mark: string): Promise<void> {
    const run = this.running.get(mark);
    if (run && !run.debugSession && run.sessionId !== '') {
      const id = run.sessionId;
      run.sessionId = '';
      await this.stop(id, 'no debug session started with it');
    }
  }

  private async stop(sessionId: string, why: string): Promise<void> {
    if (!this.isSessionAlive(sessionId) || !this.conn.connected) {
      return;
    }
    this.log.appendLine(`stopping session ${sessionId}: ${why}`);
    try {
      await this.conn.request(Methods.sessionStop, { id: sessionId }, checkNull);
    } catch (e) {
      this.log.appendLine(`stopping session ${sessionId}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** Whether the session was started for a debug session here (its conflicts offer "steal instead"). */
  owns(sessionId: string): boolean {
    return this.byStartId(sessionId) !== undefined;
  }

  /** The latest launch whose session started as sessionId with the current daemon (it may have ended since). */
  private byStartId(sessionId: string): Running | undefined {
    return [...this.running.values()].reverse().find((r) => r.startedAs === sessionId && r.epoch === this.epoch);
  }

  /** Stops the debug session of sessionId and launches its configuration again with overrides merged in. */
  async relaunchWith(sessionId: string, overrides: JsonObject): Promise<boolean> {
    // The conflict may have ended the session (onConflict: abort) and its
    // debug session before the user picked the action.
    return this.relaunchAs(sessionId, 'relaunching with other settings', (original) => {
      const field = parseLaunchField(original.remocal, original.name) || {};
      // The configuration's "incoming" would win over the overrides' mode.
      return {
        ...original,
        remocal: { target: field.target, namespace: field.namespace, overrides: mergeOverrides(field.overrides, overrides) },
      };
    });
  }

  /**
   * Stops the debug session of sessionId and launches its configuration
   * again as written: a new remocal session, whose program takes the
   * target's environment and hostname as they are now (after the session
   * followed its target to a new pod, say).
   */
  relaunch(sessionId: string): Promise<boolean> {
    return this.relaunchAs(sessionId, 'restarting in a new session', (original) => ({ ...original }));
  }

  private async relaunchAs(sessionId: string, why: string, next: (original: DebugConfig) => DebugConfig): Promise<boolean> {
    const run = this.byStartId(sessionId);
    if (!run) {
      return false;
    }
    const config = next(run.original);
    if (run.debugSession && !run.debugEnded) {
      await vscode.debug.stopDebugging(run.debugSession);
    }
    if (run.sessionId !== '') {
      const id = run.sessionId;
      run.sessionId = '';
      await this.stop(id, why);
    }
    return vscode.debug.startDebugging(run.folder, config);
  }
}

/** A DAP terminate or disconnect request that is part of a restart. */
function isRestartingEnd(m: unknown): boolean {
  if (typeof m !== 'object' || m === null) {
    return false;
  }
  const r = m as { type?: unknown; command?: unknown; arguments?: { restart?: unknown } };
  return r.type === 'request' && (r.command === 'terminate' || r.command === 'disconnect') && r.arguments?.restart === true;
}

function stripMarker(c: DebugConfig): DebugConfig {
  return Object.fromEntries(Object.entries(c).filter(([k]) => k !== marker)) as DebugConfig;
}
