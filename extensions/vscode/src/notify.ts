// Messages for the user, with the actions that help: daemon errors, the
// daemon's window/showMessage, conflicts and session warnings.
import * as vscode from 'vscode';

import { actionTitles, type ActionId, describeError, isCancelled, type UserMessage } from './errors';
import type { Conflict, ShowMessageParams } from './protocol';

/** What an action does beyond running a command ("Steal with a header filter instead" needs a session). */
export interface ActionContext {
  sessionId?: string;
}

export type ActionRunner = (action: ActionId, ctx: ActionContext) => Promise<void>;

/**
 * The daemon tells the starting client about a conflict twice: a
 * window/showMessage and the remocal/conflict that carries the details. The
 * message waits this long and is dropped when the conflict (shown with its
 * actions) says the same.
 */
const duplicateWindowMs = 400;

export class Notifier {
  private recentConflicts: Array<{ message: string; at: number }> = [];

  constructor(
    private readonly log: vscode.OutputChannel,
    private readonly run: ActionRunner,
  ) {}

  /** Shows a message; resolves when it is shown (not when it is dismissed). */
  show(m: UserMessage, ctx: ActionContext = {}): void {
    this.log.appendLine(`[${m.severity}] ${m.message}`);
    const titles = m.actions.map((a) => actionTitles[a]);
    const shown = m.severity === 'error'
      ? vscode.window.showErrorMessage(m.message, ...titles)
      : m.severity === 'warning'
        ? vscode.window.showWarningMessage(m.message, ...titles)
        : vscode.window.showInformationMessage(m.message, ...titles);
    void shown.then(async (picked) => {
      const action = m.actions.find((a) => actionTitles[a] === picked);
      if (action) {
        try {
          await this.run(action, ctx);
        } catch (e) {
          this.error(`running "${actionTitles[action]}"`, e);
        }
      }
    });
  }

  error(doing: string, e: unknown, ctx: ActionContext = {}): void {
    if (isCancelled(e)) {
      this.log.appendLine(`${doing}: cancelled`);
      return;
    }
    this.show(describeError(doing, e), ctx);
  }

  /** window/showMessage from the daemon (notes about replicas, for example). */
  daemonMessage(p: ShowMessageParams): void {
    const severity = p.type === 1 ? 'error' : p.type === 2 ? 'warning' : 'info';
    const text = p.message.startsWith('remocal') ? p.message : `remocal: ${p.message}`;
    if (severity === 'info') {
      this.show({ severity, message: text, actions: [] });
      return;
    }
    setTimeout(() => {
      if (this.isConflictShown(p.message)) {
        this.log.appendLine(`[${severity}] ${text} (shown as a conflict)`);
        return;
      }
      this.show({ severity, message: text, actions: ['showLog'] });
    }, duplicateWindowMs);
  }

  private isConflictShown(message: string): boolean {
    const now = Date.now();
    this.recentConflicts = this.recentConflicts.filter((c) => now - c.at < 10_000);
    return this.recentConflicts.some((c) => c.message !== '' && message.includes(c.message));
  }

  conflict(c: Conflict, mine: boolean): void {
    this.recentConflicts.push({ message: c.message, at: Date.now() });
    if (c.taken) {
      // Someone's lock moved on the cluster: news, not a failure of ours.
      this.show({ severity: 'info', message: `remocal: ${c.message}`, actions: [] });
      return;
    }
    this.show({
      severity: 'warning',
      message: `remocal: ${c.message}`,
      actions: mine ? ['stealWithHeader', 'pickTarget', 'openConfig'] : ['pickTarget'],
    }, { sessionId: c.sessionId });
  }

  /**
   * A session of this window followed its target to a new pod: its program
   * keeps the old pod's environment and hostname until restarted. The
   * daemon's window/showMessage with the same text is dropped like a
   * conflict's.
   */
  stale(sessionId: string, message: string): void {
    this.recentConflicts.push({ message, at: Date.now() });
    this.show({ severity: 'warning', message: `remocal: ${message}`, actions: ['restartProgram', 'showLog'] }, { sessionId });
  }

  warnings(sessionId: string, warnings: readonly string[]): void {
    for (const w of warnings) {
      this.show({ severity: 'warning', message: `remocal session ${sessionId}: ${w}`, actions: ['openConfig', 'showLog'] }, { sessionId });
    }
  }
}
