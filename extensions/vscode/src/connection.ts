// The extension's one daemon connection over time: made on first use, and
// made again on the next use after the daemon went away (a crash, a kill, an
// upgrade), with backoff between failing attempts so a daemon that cannot
// start is not respawned in a loop. Listeners hear about connects and
// disconnects; notifications of whichever client is current reach the same
// handlers. No vscode import: unit tests drive it with the real daemon.
import type * as rpc from 'vscode-jsonrpc/node';

import type { Check } from './check';
import { type ClientOptions, DaemonClient, DaemonUnavailable } from './daemon';
import { checkProgressParams, Notifications, type ProgressValue } from './protocol';
import { decode } from './check';

export type ClientFactory = () => Promise<DaemonClient>;

/** Delays before the 2nd, 3rd, ... attempt after failures (ms). */
export const backoffMs = [250, 1_000, 4_000, 10_000];

export class Connection {
  private client: DaemonClient | undefined;
  private connecting: Promise<DaemonClient> | undefined;
  private failures = 0;
  private lastFailure = 0;
  private stopping = false;
  private readonly notifyHandlers: Array<(method: string, params: unknown) => void> = [];
  private readonly connectHandlers: Array<(c: DaemonClient) => void> = [];
  private readonly disconnectHandlers: Array<(reason: string) => void> = [];
  private readonly progress = new Map<string, (v: ProgressValue) => void>();

  constructor(private readonly factory: ClientFactory, private readonly now = () => Date.now()) {}

  static fromOptions(opts: () => ClientOptions): Connection {
    return new Connection(() => DaemonClient.start(opts()));
  }

  get connected(): boolean {
    return this.client !== undefined && !this.client.isClosed;
  }

  get current(): DaemonClient | undefined {
    return this.connected ? this.client : undefined;
  }

  onNotification(h: (method: string, params: unknown) => void): void {
    this.notifyHandlers.push(h);
  }

  onConnected(h: (c: DaemonClient) => void): void {
    this.connectHandlers.push(h);
  }

  onDisconnected(h: (reason: string) => void): void {
    this.disconnectHandlers.push(h);
  }

  /** Routes $/progress for token to h until the returned function is called. */
  watchProgress(token: string, h: (v: ProgressValue) => void): () => void {
    this.progress.set(token, h);
    return () => this.progress.delete(token);
  }

  /** The connected client, connecting (again) if needed. */
  get(): Promise<DaemonClient> {
    if (this.client && !this.client.isClosed) {
      return Promise.resolve(this.client);
    }
    this.connecting ??= this.connect().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  /** How long the next attempt waits after the failures so far. */
  nextDelayMs(): number {
    if (this.failures === 0) {
      return 0;
    }
    const d = backoffMs[Math.min(this.failures - 1, backoffMs.length - 1)];
    return Math.max(0, this.lastFailure + d - this.now());
  }

  private async connect(): Promise<DaemonClient> {
    this.stopping = false;
    const wait = this.nextDelayMs();
    if (wait > 0) {
      await new Promise((r) => setTimeout(r, wait));
    }
    let c: DaemonClient;
    try {
      c = await this.factory();
    } catch (e) {
      this.failures++;
      this.lastFailure = this.now();
      throw e;
    }
    this.failures = 0;
    this.client = c;
    c.onNotification((method, params) => this.dispatch(method, params));
    c.onClose((reason) => {
      if (this.client === c) {
        this.client = undefined;
      }
      if (!this.stopping) {
        for (const h of this.disconnectHandlers) {
          h(reason);
        }
      }
    });
    for (const h of this.connectHandlers) {
      h(c);
    }
    return c;
  }

  private dispatch(method: string, params: unknown): void {
    if (method === Notifications.progress) {
      const p = decode(checkProgressParams, params);
      this.progress.get(String(p.token))?.(p.value);
      return;
    }
    for (const h of this.notifyHandlers) {
      h(method, params);
    }
  }

  async request<R>(method: string, params: unknown, check: Check<R>, token?: rpc.CancellationToken): Promise<R> {
    const c = await this.get();
    return c.request(method, params, check, token);
  }

  /** Drops the current connection quietly; the next use makes a new one. */
  async restart(): Promise<DaemonClient> {
    await this.stop();
    this.failures = 0;
    return this.get();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const c = this.client;
    this.client = undefined;
    await c?.shutdown();
  }
}

export function isPermanent(e: unknown): boolean {
  return e instanceof DaemonUnavailable && e.permanent;
}
