// Daemon failures as messages with the actions that fix them. Pure: the
// notification code turns action ids into buttons.
import { DaemonError, DaemonUnavailable } from './daemon';
import { ErrorCodes, policyName } from './protocol';
import { LaunchFieldError } from './launch';

export type ActionId =
  | 'openConfig'
  | 'pickTarget'
  | 'stealWithHeader'
  | 'showLog'
  | 'openSettings'
  | 'restartDaemon'
  | 'restartProgram'
  | 'showPolicies';

export const actionTitles: Record<ActionId, string> = {
  openConfig: 'Open config',
  pickTarget: 'Pick another target',
  stealWithHeader: 'Steal with a header filter instead',
  showLog: 'Show log',
  openSettings: 'Open settings',
  restartDaemon: 'Restart daemon',
  restartProgram: 'Restart',
  showPolicies: "Show the target's policies",
};

export interface UserMessage {
  severity: 'error' | 'warning' | 'info';
  message: string;
  actions: ActionId[];
}

/** The message for a failure, prefixed with what was being done ("starting a session"). */
export function describeError(doing: string, e: unknown): UserMessage {
  const prefix = `remocal: ${doing} failed: `;
  if (e instanceof DaemonError) {
    return { severity: 'error', message: prefix + e.message + problemsSuffix(e) + policySuffix(e), actions: actionsFor(e.code) };
  }
  if (e instanceof DaemonUnavailable) {
    return {
      severity: 'error',
      message: prefix + e.message,
      actions: e.permanent ? ['openSettings', 'showLog'] : ['restartDaemon', 'showLog'],
    };
  }
  if (e instanceof LaunchFieldError) {
    return { severity: 'error', message: prefix + e.message, actions: [] };
  }
  const msg = e instanceof Error ? e.message : String(e);
  return { severity: 'error', message: `${prefix}${msg}; the log (remocal: Show Log) has details`, actions: ['showLog'] };
}

/** Names the refusing policy and rule when the message does not already. */
function policySuffix(e: DaemonError): string {
  if (!e.policy) {
    return '';
  }
  const name = policyName(e.policy);
  return e.message.includes(name) ? '' : ` (refused by ${name}, rule ${e.policy.rule})`;
}

function problemsSuffix(e: DaemonError): string {
  if (e.problems.length === 0 || e.message.includes(e.problems[0].message)) {
    return '';
  }
  const first = e.problems[0];
  const at = first.line ? ` (line ${first.line})` : '';
  return ` — ${first.path}${at}: ${first.message}${e.problems.length > 1 ? ` (+${e.problems.length - 1} more in the Problems panel)` : ''}`;
}

export function actionsFor(code: number): ActionId[] {
  switch (code) {
    case ErrorCodes.invalidConfig:
      return ['openConfig'];
    case ErrorCodes.targetNotFound:
      return ['pickTarget', 'openConfig'];
    case ErrorCodes.conflict:
      return ['stealWithHeader', 'pickTarget'];
    case ErrorCodes.agent:
      return ['showLog', 'pickTarget'];
    case ErrorCodes.targetRefused:
      return ['pickTarget', 'openConfig'];
    case ErrorCodes.policy:
      return ['showPolicies', 'openConfig'];
    case ErrorCodes.unsupported:
    case ErrorCodes.internal:
    case ErrorCodes.forbidden:
    case ErrorCodes.noOperator:
      return ['showLog'];
    default:
      return [];
  }
}

/** Whether an error is the user cancelling (no message for that). */
export function isCancelled(e: unknown): boolean {
  return e instanceof DaemonError && e.code === ErrorCodes.requestCancelled;
}
