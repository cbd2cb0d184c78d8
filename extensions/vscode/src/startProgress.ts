// Starting a daemon session with progress, without the editor: the daemon
// reports each step as $/progress against our workDoneToken; a start still
// running after a quiet second is shown (by the caller's ShowProgress: a
// notification in the editor) with a cancel that sends $/cancelRequest
// (vscode-jsonrpc does, for the token passed to the request). No vscode
// import, so the unit tests drive the same cancel path with the real daemon.
import * as rpc from 'vscode-jsonrpc/node';

import type { Connection } from './connection';
import { checkSessionStartResult, Methods, type SessionStartParams, type SessionStartResult } from './protocol';

/** Where a long start's steps go, once it is shown. */
export interface ProgressSink { report(message: string): void }

/**
 * Shows a start that takes long: first is the latest step, cancel cancels
 * the start, finished settles when the start does (the view closes then).
 */
export type ShowProgress = (first: string, cancel: () => void, finished: Promise<unknown>) => ProgressSink;

/** Cancellation from whoever asked for the start (a debug launch being cancelled). */
export interface OuterToken { onCancellationRequested(listener: () => void): { dispose(): void } }

let seq = 0;
export const quietMs = 1_000;

export async function startWithProgress(
  conn: Connection, params: SessionStartParams, show: ShowProgress, outer?: OuterToken, quiet = quietMs,
): Promise<SessionStartResult> {
  const token = `remocal-start-${process.pid}-${++seq}`;
  const cts = new rpc.CancellationTokenSource();
  const outerSub = outer?.onCancellationRequested(() => { cts.cancel(); });
  let last = `starting a session on ${params.target || 'the configured target'}`;
  let sink: ProgressSink | undefined;
  const unwatch = conn.watchProgress(token, (v) => {
    if (v.message) {
      last = v.message;
      sink?.report(v.message);
    }
  });
  const request = conn.request(Methods.sessionStart, { ...params, workDoneToken: token }, checkSessionStartResult, cts.token);
  const timer = setTimeout(() => {
    sink = show(last, () => { cts.cancel(); }, request.then(() => undefined, () => undefined));
  }, quiet);
  try {
    return await request;
  } finally {
    clearTimeout(timer);
    unwatch();
    outerSub?.dispose();
    cts.dispose();
  }
}
