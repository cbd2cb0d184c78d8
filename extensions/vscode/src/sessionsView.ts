// The remocal view's tree: the SessionsModel's nodes as TreeItems, redrawn
// when a notification changes the model (no polling).
import * as vscode from 'vscode';

import type { Node, SessionsModel } from './sessionsModel';

export class SessionsView implements vscode.TreeDataProvider<Node> {
  private readonly emitter = new vscode.EventEmitter<Node | undefined>();
  readonly onDidChangeTreeData = this.emitter.event;
  private disconnected: string | undefined;

  constructor(private readonly model: SessionsModel) {}

  /** Redraws; with a reason, the tree says the daemon is not connected. */
  refresh(disconnected?: string): void {
    this.disconnected = disconnected;
    this.emitter.fire(undefined);
  }

  nodes(): Node[] {
    const nodes = this.model.render();
    if (this.disconnected !== undefined) {
      nodes.unshift({
        id: 'disconnected', label: 'Daemon not connected', description: 'click to reconnect', tooltip: this.disconnected,
        contextValue: 'disconnected', icon: { id: 'debug-disconnect', color: 'list.warningForeground' }, children: [],
      });
    }
    return nodes;
  }

  getChildren(element?: Node): Node[] {
    return element ? element.children : this.nodes();
  }

  getTreeItem(n: Node): vscode.TreeItem {
    const state = n.children.length === 0
      ? vscode.TreeItemCollapsibleState.None
      : n.contextValue === 'group' ? vscode.TreeItemCollapsibleState.Expanded : vscode.TreeItemCollapsibleState.Collapsed;
    const item = new vscode.TreeItem(n.label, state);
    item.id = n.id;
    item.description = n.description;
    item.tooltip = n.tooltip;
    item.contextValue = n.contextValue;
    if (n.icon) {
      item.iconPath = new vscode.ThemeIcon(n.icon.id, n.icon.color ? new vscode.ThemeColor(n.icon.color) : undefined);
    }
    if (n.sessionId) {
      item.command = { command: 'remocal.showSessionDetail', title: 'Show Session Detail', arguments: [n.sessionId] };
    } else if (n.contextValue === 'disconnected') {
      item.command = { command: 'remocal.restartDaemon', title: 'Reconnect' };
    }
    return item;
  }
}
