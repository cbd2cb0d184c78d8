// Starting a daemon session with progress: the daemon reports each step as
// $/progress against our workDoneToken; a start still running after a
// second gets a cancellable notification, and cancelling it sends
// $/cancelRequest (vscode-jsonrpc does, for the token passed to request).
import * as vscode from 'vscode';

import type { Connection } from './connection';
import { checkSessionStartResult, Methods, type SessionStartParams, type SessionStartResult } from './protocol';

let seq = 0;
const quietMs = 1_000;

export async function startSession(conn: Connection, params: SessionStartParams, outer?: vscode.CancellationToken): Promise<SessionStartResult> {
  const token = `remocal-start-${process.pid}-${++seq}`;
  const cts = new vscode.CancellationTokenSource();
  const outerSub = outer?.onCancellationRequested(() => cts.cancel());
  let last = `starting a session on ${params.target || 'the configured target'}`;
  let report: ((m: string) => void) | undefined;
  const unwatch = conn.watchProgress(token, (v) => {
    if (v.message) {
      last = v.message;
      report?.(v.message);
    }
  });
  const request = conn.request(Methods.sessionStart, { ...params, workDoneToken: token }, checkSessionStartResult, cts.token);
  let settled = false;
  const timer = setTimeout(() => {
    if (settled) {
      return;
    }
    void vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: 'remocal', cancellable: true },
      (progress, ptoken) => {
        ptoken.onCancellationRequested(() => cts.cancel());
        report = (m) => progress.report({ message: m });
        report(last);
        return request.then(() => undefined, () => undefined);
      },
    );
  }, quietMs);
  try {
    return await request;
  } finally {
    settled = true;
    clearTimeout(timer);
    unwatch();
    outerSub?.dispose();
    cts.dispose();
  }
}
