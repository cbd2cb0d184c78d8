// One connection to the remocal daemon: `remocal daemon --stdio` spawned as a
// child (it attaches to the user's shared daemon, starting it if needed),
// JSON-RPC over its stdio with vscode-jsonrpc, the LSP handshake, and the
// protocol version check. Nothing here imports vscode, so the unit tests
// drive it against the real daemon.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import * as rpc from 'vscode-jsonrpc/node';

import { type Check, decode, DecodeError } from './check';
import { FrameGuard } from './framing';
import {
  checkErrorData, checkInitializeResult, type InitializeParams, Methods, Notifications, type PolicyViolation, type Problem,
  type WorkspaceFolderInfo,
} from './protocol';
import { incompatibility, unversioned } from './version';

export interface ClientOptions {
  binary: string;
  clientName: string;
  clientVersion: string;
  /** The protocol version the client needs ("1.1"). */
  neededProtocol: string;
  workspaceFolders: WorkspaceFolderInfo[];
  /** Receives the daemon's stderr and the client's own diagnostics. */
  log: (line: string) => void;
  env?: NodeJS.ProcessEnv;
  /** How long initialize may take (the daemon may be starting). */
  initializeTimeoutMs?: number;
}

/** A failed remocal/* request: code and reason from the daemon. */
export class DaemonError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly reason: string,
    readonly problems: Problem[] = [],
    /** The operator policy that refused, for code policy (1011). */
    readonly policy?: PolicyViolation,
  ) {
    super(message);
    this.name = 'DaemonError';
  }
}

/** The daemon could not be started or reached, or went away. */
export class DaemonUnavailable extends Error {
  constructor(message: string, readonly permanent = false) {
    super(message);
    this.name = 'DaemonUnavailable';
  }
}

const stderrTailBytes = 8 << 10;

export class DaemonClient {
  private closed = false;
  private closeHandlers: Array<(reason: string) => void> = [];
  private notificationHandlers: Array<(method: string, params: unknown) => void> = [];
  private stderrTail = '';

  private constructor(
    private readonly proc: ChildProcessWithoutNullStreams,
    private readonly conn: rpc.MessageConnection,
    private readonly opts: ClientOptions,
    public protocolVersion = unversioned,
    public serverVersion = '',
  ) {}

  /** Spawns the forwarder, initializes, and checks the protocol version. */
  static async start(opts: ClientOptions): Promise<DaemonClient> {
    const proc = spawn(opts.binary, ['daemon', '--stdio'], { stdio: 'pipe', env: opts.env ?? process.env });
    const spawned = new Promise<void>((resolve, reject) => {
      proc.once('spawn', () => resolve());
      proc.once('error', (err: NodeJS.ErrnoException) =>
        reject(new DaemonUnavailable(
          err.code === 'ENOENT' || err.code === 'EACCES'
            ? `cannot run ${opts.binary} (${err.code}): install remocal, or set remocal.binaryPath to its path`
            : `cannot run ${opts.binary}: ${err.message}`,
          true,
        )));
    });
    await spawned;
    const guard = new FrameGuard();
    proc.stdout.pipe(guard);
    const conn = rpc.createMessageConnection(new rpc.StreamMessageReader(guard), new rpc.StreamMessageWriter(proc.stdin));
    const client = new DaemonClient(proc, conn, opts);
    client.wire(guard);
    conn.listen();
    try {
      await client.initialize();
    } catch (e) {
      client.dispose();
      throw e;
    }
    return client;
  }

  private wire(guard: FrameGuard): void {
    this.proc.stderr.on('data', (b: Buffer) => {
      const text = b.toString('utf8');
      this.stderrTail = (this.stderrTail + text).slice(-stderrTailBytes);
      for (const line of text.split('\n')) {
        if (line.trim() !== '') {
          this.opts.log(`daemon: ${line}`);
        }
      }
    });
    guard.on('error', (err) => {
      this.opts.log(`daemon output: ${err.message}`);
      this.close(err.message);
    });
    this.proc.once('exit', (code, signal) =>
      this.close(`the remocal daemon process exited (${signal ?? `code ${code}`})${this.tail()}`));
    this.conn.onClose(() => this.close(`the connection to the remocal daemon closed${this.tail()}`));
    this.conn.onError(([err]) => this.opts.log(`daemon connection: ${err.message}`));
    // params is whatever JSON arrived; handlers decode it with their checker.
    this.conn.onNotification((method: string, params: unknown) => {
      for (const h of this.notificationHandlers) {
        try {
          h(method, params);
        } catch (e) {
          this.opts.log(`handling ${method}: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
    });
    // vscode-jsonrpc keeps $/progress from the handler above: progress for
    // tokens it was not told about (ours are routed by Connection) comes here.
    this.conn.onUnhandledProgress((params) => {
      for (const h of this.notificationHandlers) {
        try {
          h(Notifications.progress, params);
        } catch (e) {
          this.opts.log(`handling ${Notifications.progress}: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
    });
    this.conn.onRequest((method: string) =>
      new rpc.ResponseError(rpc.ErrorCodes.MethodNotFound, `the remocal extension does not handle ${method}`));
  }

  private tail(): string {
    const t = this.stderrTail.trim().split('\n').slice(-3).join(' / ');
    return t ? `; its last output: ${t}` : '';
  }

  private async initialize(): Promise<void> {
    const params: InitializeParams = {
      processId: process.pid,
      clientInfo: { name: this.opts.clientName, version: this.opts.clientVersion },
      capabilities: { window: { workDoneProgress: true } },
      workspaceFolders: this.opts.workspaceFolders,
    };
    const timeout = this.opts.initializeTimeoutMs ?? 30_000;
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new DaemonUnavailable(
        `the remocal daemon did not answer initialize within ${timeout / 1000} s${this.tail()}; run "remocal daemon --stdio" in a terminal to see why`)), timeout);
    });
    try {
      const result = await Promise.race([this.request(Methods.initialize, params, checkInitializeResult), expired]);
      this.protocolVersion = result.capabilities.experimental?.remocal?.protocolVersion ?? unversioned;
      this.serverVersion = result.serverInfo?.version ?? '';
    } finally {
      clearTimeout(timer);
    }
    const problem = incompatibility(this.opts.neededProtocol, this.protocolVersion, this.opts.binary);
    if (problem) {
      throw new DaemonUnavailable(problem, true);
    }
    await this.conn.sendNotification(Methods.initialized, {});
  }

  get isClosed(): boolean {
    return this.closed;
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  /** Sends a request and decodes its result; cancelling token sends $/cancelRequest. */
  async request<R>(method: string, params: unknown, check: Check<R>, token?: rpc.CancellationToken): Promise<R> {
    if (this.closed) {
      throw new DaemonUnavailable('the remocal daemon is not connected');
    }
    let raw: unknown;
    try {
      // vscode-jsonrpc sends every argument but a trailing token as a
      // parameter: an undefined token would turn params into an array.
      const args: unknown[] = params === undefined ? [] : [params];
      if (token) {
        args.push(token);
      }
      raw = await this.conn.sendRequest(method, ...args);
    } catch (e) {
      throw toDaemonError(e, this.closed);
    }
    try {
      return decode(check, raw);
    } catch (e) {
      if (e instanceof DecodeError) {
        throw new DaemonError(-32603, `the daemon's answer to ${method} was not understood (${e.message}); the daemon and the extension may be of different releases: update both`, 'bad_result');
      }
      throw e;
    }
  }

  notify(method: string, params: unknown): Promise<void> {
    return this.conn.sendNotification(method, params);
  }

  onNotification(h: (method: string, params: unknown) => void): void {
    this.notificationHandlers.push(h);
  }

  onClose(h: (reason: string) => void): void {
    if (this.closed) {
      h('closed');
      return;
    }
    this.closeHandlers.push(h);
  }

  private close(reason: string): void {
    if (this.closed) {
      return;
    }
    this.closed = true;
    const handlers = this.closeHandlers;
    this.closeHandlers = [];
    for (const h of handlers) {
      h(reason);
    }
    this.conn.dispose();
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      // The forwarder ends when its stdin does; a signal, then a kill,
      // make sure of it (the shared daemon is another process and lives on).
      this.proc.stdin.end();
      this.proc.kill('SIGTERM');
      const proc = this.proc;
      setTimeout(() => {
        if (proc.exitCode === null && proc.signalCode === null) {
          proc.kill('SIGKILL');
        }
      }, 2_000).unref();
    }
  }

  /** Ends this connection politely (shutdown, exit), then the forwarder. The shared daemon lives on. */
  async shutdown(timeoutMs = 2_000): Promise<void> {
    if (this.closed) {
      return;
    }
    const polite = (async () => {
      await this.conn.sendRequest(Methods.shutdown);
      await this.conn.sendNotification(Methods.exit);
    })();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([polite.catch(() => undefined), new Promise((r) => { timer = setTimeout(r, timeoutMs); })]);
    clearTimeout(timer);
    this.dispose();
  }

  /** Closes without ceremony (the forwarder is killed; the daemon sees the client leave). */
  dispose(): void {
    this.close('disposed');
  }
}

function toDaemonError(e: unknown, closed: boolean): Error {
  if (e instanceof rpc.ResponseError) {
    const data = e.data as unknown;
    let reason = 'unknown';
    let problems: Problem[] = [];
    let policy: PolicyViolation | undefined;
    try {
      const d = decode(checkErrorData, data);
      reason = d.reason;
      problems = d.problems ?? [];
      policy = d.policy;
    } catch {
      // Errors from the LSP layer (cancelled, parse error) carry no data.
    }
    return new DaemonError(e.code, e.message, reason, problems, policy);
  }
  if (closed || (e instanceof Error && /connection (is )?(closed|disposed)|pending response rejected/i.test(e.message))) {
    return new DaemonUnavailable('the remocal daemon went away during the request; it restarts on the next use');
  }
  return e instanceof Error ? e : new Error(String(e));
}
