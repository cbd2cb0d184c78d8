// The status bar item: "remocal: off", or "remocal: <target>" when on; a
// click toggles.
import * as vscode from 'vscode';

import { describeTarget, statusText } from './pickerModel';
import type { WorkspaceChoice } from './state';

export class StatusBar {
  readonly item = vscode.window.createStatusBarItem('remocal.status', vscode.StatusBarAlignment.Left, 10);

  constructor(private readonly choice: WorkspaceChoice) {
    this.item.name = 'remocal';
    this.item.command = 'remocal.toggle';
    this.update(true);
    this.item.show();
  }

  update(connected: boolean, problem?: string): void {
    const { enabled, target } = this.choice;
    this.item.text = statusText(enabled, target);
    const click = enabled
      ? 'Click to turn remocal off: launch configurations then run as usual.'
      : target
        ? `Click to turn remocal on: F5 then runs in ${describeTarget(target)}.`
        : 'Click to pick a target and turn remocal on.';
    const daemon = connected ? '' : `\n\nThe daemon is not connected${problem ? `: ${problem}` : ''}; it starts again on the next use.`;
    this.item.tooltip = `${enabled ? `remocal is on: F5 runs launch configurations in ${describeTarget(target)}.` : 'remocal is off.'}\n${click}${daemon}`;
    this.item.backgroundColor = enabled && !connected ? new vscode.ThemeColor('statusBarItem.warningBackground') : undefined;
  }

  dispose(): void {
    this.item.dispose();
  }
}
