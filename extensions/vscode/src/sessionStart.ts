// Starting a daemon session from the editor: startWithProgress with a
// cancellable progress notification (a start still running after a
// second), whose Cancel cancels the start.
import * as vscode from 'vscode';

import type { Connection } from './connection';
import type { SessionStartParams, SessionStartResult } from './protocol';
import { type ProgressSink, startWithProgress } from './startProgress';

export function startSession(conn: Connection, params: SessionStartParams, outer?: vscode.CancellationToken): Promise<SessionStartResult> {
  return startWithProgress(conn, params, showNotification, outer);
}

function showNotification(first: string, cancel: () => void, finished: Promise<unknown>): ProgressSink {
  let report: ((m: string) => void) | undefined;
  let pending = first;
  void vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: 'remocal', cancellable: true },
    (progress, ptoken) => {
      ptoken.onCancellationRequested(cancel);
      report = (m) => { progress.report({ message: m }); };
      report(pending);
      return finished;
    },
  );
  return {
    report: (m) => {
      pending = m;
      report?.(m);
    },
  };
}
