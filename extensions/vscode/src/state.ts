// What the extension remembers per workspace (context.workspaceState):
// on/off, the target, the recent targets.
import type { StoredTarget } from './launch';
import { rememberRecent } from './pickerModel';

/** The storage part of vscode.Memento the extension uses (tests pass a Map-backed one). */
export interface Memento {
  get(key: string): unknown;
  update(key: string, value: unknown): Thenable<void>;
}

export const Keys = {
  enabled: 'remocal.enabled',
  target: 'remocal.target',
  recent: 'remocal.recentTargets',
} as const;

export class WorkspaceChoice {
  private readonly listeners: Array<() => void> = [];

  constructor(private readonly memento: Memento) {}

  get enabled(): boolean {
    return (this.memento.get(Keys.enabled) as boolean | undefined) ?? false;
  }

  get target(): StoredTarget | undefined {
    return this.memento.get(Keys.target) as StoredTarget | undefined;
  }

  get recents(): StoredTarget[] {
    return (this.memento.get(Keys.recent) as StoredTarget[] | undefined) ?? [];
  }

  onChange(h: () => void): void {
    this.listeners.push(h);
  }

  private changed(): void {
    for (const h of this.listeners) {
      h();
    }
  }

  async setEnabled(on: boolean): Promise<void> {
    await this.memento.update(Keys.enabled, on);
    this.changed();
  }

  /** Picks a target: remembered, added to the recent ones, and remocal turned on. */
  async choose(t: StoredTarget): Promise<void> {
    await this.memento.update(Keys.target, t);
    await this.memento.update(Keys.recent, rememberRecent(this.recents, t));
    await this.memento.update(Keys.enabled, true);
    this.changed();
  }
}
