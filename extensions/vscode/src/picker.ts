// The target picker: a QuickPick of the daemon's targets (by namespace, with
// kinds and readiness), the recent ones, "targetless", then the container
// when a target has several. The choice is remembered per workspace.
import * as vscode from 'vscode';

import type { Connection } from './connection';
import type { StoredTarget } from './launch';
import type { Notifier } from './notify';
import { type PickEntry, pickEntries, withContainer } from './pickerModel';
import { checkNamespacesResult, checkTargetsResult, Methods } from './protocol';
import type { WorkspaceChoice } from './state';

interface Item extends vscode.QuickPickItem {
  entry: PickEntry;
}

function toItems(entries: PickEntry[]): Item[] {
  return entries.map((e) => ({
    label: e.label, description: e.description, detail: e.detail, entry: e,
    kind: e.separator ? vscode.QuickPickItemKind.Separator : vscode.QuickPickItemKind.Default,
  }));
}

/** Shows the picker; resolves true when a target was chosen (or remocal turned off). */
export async function pickTarget(conn: Connection, choice: WorkspaceChoice, notifier: Notifier, namespace?: string): Promise<boolean> {
  const qp = vscode.window.createQuickPick<Item>();
  qp.title = namespace ? `remocal: pick a target in ${namespace}` : 'remocal: pick a target';
  qp.placeholder = 'Type to filter by name, kind or namespace';
  qp.matchOnDescription = true;
  qp.matchOnDetail = true;
  qp.busy = true;
  qp.show();
  try {
    const [ns, ts] = await Promise.all([
      conn.request(Methods.namespaces, undefined, checkNamespacesResult),
      conn.request(Methods.targets, namespace ? { namespace } : {}, checkTargetsResult),
    ]);
    qp.items = toItems(pickEntries(ts.targets, namespace ? [] : choice.recents, {
      namespaceCount: namespace ? 0 : ns.namespaces.length, enabled: choice.enabled, current: choice.target,
    }));
    qp.busy = false;
    const picked = await new Promise<Item | undefined>((resolve) => {
      qp.onDidAccept(() => resolve(qp.selectedItems[0]));
      qp.onDidHide(() => resolve(undefined));
    });
    qp.hide();
    const c = picked?.entry.choice;
    if (!c) {
      return false;
    }
    if (c.kind === 'off') {
      await choice.setEnabled(false);
      return true;
    }
    if (c.kind === 'namespace') {
      const names = ns.namespaces.map((n) => ({ label: n.name, description: n.provider }));
      const one = await vscode.window.showQuickPick(names, { title: 'remocal: namespace', placeHolder: 'List the targets of…' });
      return one ? await pickTarget(conn, choice, notifier, one.label) : false;
    }
    const target = await chooseContainer(c.target, c.containers);
    if (!target) {
      return false;
    }
    await choice.choose(target);
    return true;
  } catch (e) {
    notifier.error('listing targets', e);
    return false;
  } finally {
    qp.dispose();
  }
}

async function chooseContainer(t: StoredTarget, containers: string[]): Promise<StoredTarget | undefined> {
  if (containers.length < 2) {
    return t;
  }
  const picked = await vscode.window.showQuickPick(
    containers.map((c, i) => ({ label: c, description: i === 0 ? 'default' : undefined })),
    { title: `remocal: container of ${t.ref}`, placeHolder: 'The application container the session runs as if in' },
  );
  return picked ? withContainer(t, containers, picked.label) : undefined;
}
