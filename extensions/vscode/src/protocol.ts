// The daemon's JSON-RPC contract (docs/daemon-protocol.md, Go: protocol/daemon)
// as TypeScript types, each with the runtime checker that decodes it. The
// golden-vector test (test/protocol.test.ts) decodes every file of
// protocol/testdata/daemon strictly with these checkers.
import {
  arr, bool, type Check, DecodeError, type JsonObject, jsonObject, literal, num, obj, opt, record, str, time, uint,
} from './check';

/** Requests (client → daemon) and the LSP lifecycle. */
export const Methods = {
  initialize: 'initialize',
  initialized: 'initialized',
  shutdown: 'shutdown',
  exit: 'exit',
  daemonInfo: 'remocal/daemon/info',
  daemonShutdown: 'remocal/daemon/shutdown',
  namespaces: 'remocal/namespaces',
  targets: 'remocal/targets',
  configResolve: 'remocal/config/resolve',
  configVerify: 'remocal/config/verify',
  sessionStart: 'remocal/session/start',
  sessionStop: 'remocal/session/stop',
  sessionKill: 'remocal/session/kill',
  sessionList: 'remocal/session/list',
  sessionDetail: 'remocal/session/detail',
} as const;

/** Notifications (daemon → client). */
export const Notifications = {
  sessionChanged: 'remocal/sessionChanged',
  conflict: 'remocal/conflict',
  targetsChanged: 'remocal/targetsChanged',
  configChanged: 'remocal/configChanged',
  showMessage: 'window/showMessage',
  logMessage: 'window/logMessage',
  progress: '$/progress',
} as const;

/** Stable error codes (data.reason carries the name). */
export const ErrorCodes = {
  notInitialized: -32002,
  invalidParams: -32602,
  methodNotFound: -32601,
  requestCancelled: -32800,
  invalidConfig: 1001,
  targetNotFound: 1002,
  sessionNotFound: 1003,
  conflict: 1004,
  agent: 1005,
  unsupported: 1006,
  busy: 1007,
  targetRefused: 1008,
  forbidden: 1009,
  noOperator: 1010,
  policy: 1011,
  internal: 1099,
} as const;

// ---- lifecycle

export interface WorkspaceFolderInfo { uri: string; name: string }

export interface InitializeParams {
  processId: number | null;
  clientInfo: { name: string; version?: string };
  capabilities: { window?: { workDoneProgress?: boolean } };
  workspaceFolders: WorkspaceFolderInfo[] | null;
}

export interface InitializeResult {
  capabilities: { experimental?: { remocal?: { protocolVersion?: string } } };
  serverInfo?: { name: string; version?: string };
}

export const checkInitializeParams: Check<InitializeParams> = obj<InitializeParams>({
  processId: (v, ctx) => (v === null ? null : uint(v, ctx)),
  clientInfo: obj({ name: str, version: opt(str) }),
  capabilities: obj({ window: opt(obj({ workDoneProgress: opt(bool) })) }),
  workspaceFolders: (v, ctx) => (v === null ? null : arr(obj<WorkspaceFolderInfo>({ uri: str, name: str }))(v, ctx)),
});

export const checkInitializeResult: Check<InitializeResult> = obj<InitializeResult>({
  capabilities: obj({
    experimental: opt(obj({ remocal: opt(obj({ protocolVersion: opt(str) })) })),
  }),
  serverInfo: opt(obj({ name: str, version: opt(str) })),
});

// ---- daemon

export interface DaemonInfo {
  version: string;
  protocolVersion?: string;
  pid: number;
  socket: string;
  sessions: number;
  clients: number;
  startedAt: string;
}

export const checkDaemonInfo: Check<DaemonInfo> = obj<DaemonInfo>({
  version: str, protocolVersion: opt(str), pid: uint, socket: str, sessions: uint, clients: uint, startedAt: time,
});

export interface DaemonShutdownParams { force?: boolean }
export const checkDaemonShutdownParams: Check<DaemonShutdownParams> = obj<DaemonShutdownParams>({ force: opt(bool) });

// ---- targets

export interface Namespace { name: string; provider: string }
export interface NamespacesResult { namespaces: Namespace[] }
export const checkNamespace: Check<Namespace> = obj<Namespace>({ name: str, provider: str });
export const checkNamespacesResult: Check<NamespacesResult> = obj<NamespacesResult>({ namespaces: arr(checkNamespace) });

export interface TargetsParams { kinds?: string[]; namespace?: string }
export const checkTargetsParams: Check<TargetsParams> = obj<TargetsParams>({ kinds: opt(arr(str)), namespace: opt(str) });

export interface Target {
  ref: string;
  kind: string;
  name: string;
  namespace: string;
  provider: string;
  ready: boolean;
  status?: string;
  containers?: string[];
  description?: string;
}
export const checkTarget: Check<Target> = obj<Target>({
  ref: str, kind: str, name: str, namespace: str, provider: str, ready: bool,
  status: opt(str), containers: opt(arr(str)), description: opt(str),
});
export interface TargetsResult { targets: Target[] }
export const checkTargetsResult: Check<TargetsResult> = obj<TargetsResult>({ targets: arr(checkTarget) });

export interface TargetsChanged { provider: string; namespace?: string }
export const checkTargetsChanged: Check<TargetsChanged> = obj<TargetsChanged>({ provider: str, namespace: opt(str) });

// ---- configuration

export interface ConfigParams { workspaceFolder?: string; file?: string }
export const checkConfigParams: Check<ConfigParams> = obj<ConfigParams>({ workspaceFolder: opt(str), file: opt(str) });

export interface Problem { path: string; line?: number; column?: number; message: string }
export const checkProblem: Check<Problem> = obj<Problem>({ path: str, line: opt(uint), column: opt(uint), message: str });

export interface ConfigResult { file: string; valid: boolean; problems: Problem[]; config?: JsonObject }
export const checkConfigResult: Check<ConfigResult> = obj<ConfigResult>({
  file: str, valid: bool, problems: arr(checkProblem), config: opt(jsonObject),
});

export interface ConfigChanged { workspaceFolder: string; file: string; valid: boolean; problems: Problem[] }
export const checkConfigChanged: Check<ConfigChanged> = obj<ConfigChanged>({
  workspaceFolder: str, file: str, valid: bool, problems: arr(checkProblem),
});

// ---- sessions

export type IncomingMode = 'mirror' | 'steal' | 'off';
export const checkIncoming: Check<IncomingMode> = literal('mirror', 'steal', 'off');
export type WireMode = 'mirror' | 'steal';
export const checkWireMode: Check<WireMode> = literal('mirror', 'steal');
export type LaunchMode = 'auto' | 'env' | 'wrapper';

export interface Program { path: string; args?: string[]; launch?: LaunchMode; transparentFirst?: boolean }
export const checkProgram: Check<Program> = obj<Program>({
  path: str, args: opt(arr(str)), launch: opt(literal('auto', 'env', 'wrapper')), transparentFirst: opt(bool),
});

/** A partial .remocal/config.json merged over the workspace's file (protocol 1.1). */
export type ConfigOverrides = JsonObject;

export interface SessionStartParams {
  target: string;
  workspaceFolder: string;
  namespace?: string;
  configFile?: string;
  incoming?: IncomingMode;
  program?: Program;
  label?: string;
  overrides?: ConfigOverrides;
  workDoneToken?: string | number;
}
export const checkSessionStartParams: Check<SessionStartParams> = obj<SessionStartParams>({
  target: str, workspaceFolder: str, namespace: opt(str), configFile: opt(str), incoming: opt(checkIncoming),
  program: opt(checkProgram), label: opt(str), overrides: opt(jsonObject),
  workDoneToken: opt((v, ctx) => (typeof v === 'number' ? num(v, ctx) : str(v, ctx))),
});

export type SessionState = 'starting' | 'active' | 'degraded' | 'ended';

export interface Session {
  id: string;
  target: string;
  namespace?: string;
  workspaceFolder: string;
  owner: string;
  label?: string;
  state: SessionState;
  reason?: string;
  startedAt: string;
  incoming: IncomingMode | '';
  resolved?: string;
  note?: string;
  /** The operator policy that refused one of its ports, while degraded by it (1.2). */
  policy?: PolicyViolation;
  /** Set once the session followed its target to a new pod: what running programs keep from the old one. */
  stale?: StaleTarget;
  /** The queues the session takes a share of, as the operator granted them (1.4, docs/queues.md). */
  queueSplits?: SessionQueueSplit[];
}
/**
 * A queue one of this daemon's sessions takes a share of: consumer and queue, mode and filter as
 * configured, and the variables (name → value naming the session's own queue) its programs get.
 */
export interface SessionQueueSplit { consumer: string; queue: string; mode: QueueSplitMode; filter?: QueueFilter; env: Record<string, string> }
export const checkSessionQueueSplit: Check<SessionQueueSplit> = obj<SessionQueueSplit>({
  consumer: str, queue: str, mode: literal('mirror', 'steal'), filter: opt((v, ctx) => checkQueueFilter(v, ctx)), env: record(str),
});
/** A queue an operator session takes a share of, with the messages delivered to it so far (1.4). */
export interface RemoteQueueSplit { consumer: string; queue: string; mode: QueueSplitMode; filter?: QueueFilter; since: string; delivered: number }
export const checkRemoteQueueSplit: Check<RemoteQueueSplit> = obj<RemoteQueueSplit>({
  consumer: str, queue: str, mode: literal('mirror', 'steal'), filter: opt((v, ctx) => checkQueueFilter(v, ctx)), since: time, delivered: uint,
});
/** What programs keep from the pod a session left ("env", "hostname"), and the action that refreshes it ("restart"). */
export interface StaleTarget { from: string; kept: string[]; action: string; message: string }
export const checkStaleTarget: Check<StaleTarget> = obj<StaleTarget>({ from: str, kept: arr(str), action: str, message: str });
export const checkSession: Check<Session> = obj<Session>({
  id: str, target: str, namespace: opt(str), workspaceFolder: str, owner: str, label: opt(str),
  state: literal('starting', 'active', 'degraded', 'ended'), reason: opt(str), startedAt: time,
  // A session that is still starting has no effective mode yet.
  incoming: literal('mirror', 'steal', 'off', ''), resolved: opt(str), note: opt(str),
  policy: opt((v, ctx) => checkPolicyViolation(v, ctx)),
  stale: opt((v, ctx) => checkStaleTarget(v, ctx)),
  queueSplits: opt(arr(checkSessionQueueSplit)),
});

export interface SessionStartResult { session: Session; env: Record<string, string>; wrapper?: string[]; warnings: string[] }
export const checkSessionStartResult: Check<SessionStartResult> = obj<SessionStartResult>({
  session: checkSession, env: record(str), wrapper: opt(arr(str)), warnings: arr(str),
});

export interface SessionParams { id: string }
export const checkSessionParams: Check<SessionParams> = obj<SessionParams>({ id: str });

export interface SessionKillParams { namespace: string; name: string }
export const checkSessionKillParams: Check<SessionKillParams> = obj<SessionKillParams>({ namespace: str, name: str });

export interface HTTPFilter { headers?: Record<string, string>; path?: string; methods?: string[] }
export const checkHTTPFilter: Check<HTTPFilter> = obj<HTTPFilter>({ headers: opt(record(str)), path: opt(str), methods: opt(arr(str)) });

export interface RemotePort { port: number; mode: WireMode; filter?: HTTPFilter; lock?: boolean; since?: string }
export const checkRemotePort: Check<RemotePort> = obj<RemotePort>({
  port: uint, mode: checkWireMode, filter: opt(checkHTTPFilter), lock: opt(bool), since: opt(time),
});

export type RemotePhase = 'Active' | 'Disconnected' | 'Ended';
export interface RemoteSession {
  name: string;
  namespace: string;
  user: string;
  client: string;
  tool?: string;
  target: string;
  phase: RemotePhase;
  ports: RemotePort[];
  since: string;
  expiresAt?: string;
  /** The queues it takes a share of (1.4). */
  queueSplits?: RemoteQueueSplit[];
}
export const checkRemoteSession: Check<RemoteSession> = obj<RemoteSession>({
  name: str, namespace: str, user: str, client: str, tool: opt(str), target: str,
  phase: literal('Active', 'Disconnected', 'Ended'), ports: arr(checkRemotePort), since: time, expiresAt: opt(time),
  queueSplits: opt(arr(checkRemoteQueueSplit)),
});

export interface SessionListResult { sessions: Session[]; remote?: RemoteSession[] }
export const checkSessionListResult: Check<SessionListResult> = obj<SessionListResult>({
  sessions: arr(checkSession), remote: opt(arr(checkRemoteSession)),
});

export interface Subscription { port: number; localPort: number; mode: WireMode; filter?: HTTPFilter; deliveries: number }
export interface SessionProcess { pid: number; exe: string }
export interface SessionDetail {
  session: Session;
  subscriptions: Subscription[];
  processes: SessionProcess[];
  counters: Record<string, number>;
  errors: string[];
}
export const checkSessionDetail: Check<SessionDetail> = obj<SessionDetail>({
  session: checkSession,
  subscriptions: arr(obj<Subscription>({ port: uint, localPort: uint, mode: checkWireMode, filter: opt(checkHTTPFilter), deliveries: uint })),
  processes: arr(obj<SessionProcess>({ pid: uint, exe: str })),
  counters: record(uint),
  errors: arr(str),
});

// ---- notifications

export interface SessionChanged { session?: Session; remote?: RemoteSession }
export const checkSessionChanged: Check<SessionChanged> = obj<SessionChanged>({ session: opt(checkSession), remote: opt(checkRemoteSession) });

export interface Holder {
  client: string;
  subscription: string;
  port: number;
  mode: WireMode;
  filter?: HTTPFilter;
  user?: string;
  session?: string;
  since?: string;
}
export const checkHolder: Check<Holder> = obj<Holder>({
  client: str, subscription: str, port: uint, mode: checkWireMode, filter: opt(checkHTTPFilter),
  user: opt(str), session: opt(str), since: opt(time),
});

export interface Conflict {
  sessionId: string;
  target: string;
  port: number;
  mode: WireMode;
  holder?: Holder;
  message: string;
  remoteSession?: string;
  taken?: boolean;
}
export const checkConflict: Check<Conflict> = obj<Conflict>({
  sessionId: str, target: str, port: uint, mode: checkWireMode, holder: opt(checkHolder), message: str,
  remoteSession: opt(str), taken: opt(bool),
});

/** LSP MessageType: 1 error, 2 warning, 3 info, 4 log. */
export interface ShowMessageParams { type: number; message: string }
export const checkShowMessageParams: Check<ShowMessageParams> = obj<ShowMessageParams>({ type: uint, message: str });

export type ProgressValue =
  | { kind: 'begin'; title: string; message?: string; cancellable?: boolean; percentage?: number }
  | { kind: 'report'; message?: string; cancellable?: boolean; percentage?: number }
  | { kind: 'end'; message?: string };
export interface ProgressParams { token: string | number; value: ProgressValue }
const checkProgressValue: Check<ProgressValue> = (v, ctx) => {
  const kind = obj<{ kind: 'begin' | 'report' | 'end' }>({ kind: literal('begin', 'report', 'end') })(v, { ...ctx, strict: false }).kind;
  switch (kind) {
    case 'begin':
      return obj({ title: str, message: opt(str), cancellable: opt(bool), percentage: opt(num), kind: literal('begin') })(v, ctx);
    case 'report':
      return obj({ message: opt(str), cancellable: opt(bool), percentage: opt(num), kind: literal('report') })(v, ctx);
    case 'end':
      return obj({ message: opt(str), kind: literal('end') })(v, ctx);
  }
};
export const checkProgressParams: Check<ProgressParams> = obj<ProgressParams>({
  token: (v, ctx) => (typeof v === 'number' ? num(v, ctx) : str(v, ctx)),
  value: checkProgressValue,
});

// ---- errors

/** An operator policy and the rule of it that refused (protocol 1.2; docs/operator.md, Policies). */
export interface PolicyViolation { kind: string; namespace?: string; name: string; rule: string }
export const checkPolicyViolation: Check<PolicyViolation> = obj<PolicyViolation>({
  kind: str, namespace: opt(str), name: str, rule: str,
});

/** "RemocalPolicy shop/no-steal", "RemocalClusterPolicy baseline": as the CLI and the operator write it. */
export function policyName(p: PolicyViolation): string {
  return `${p.kind} ${p.namespace ? `${p.namespace}/` : ''}${p.name}`;
}

/** Error data; policy is set for reason "policy" (code 1011, protocol 1.2). */
export interface ErrorData { reason: string; problems?: Problem[]; policy?: PolicyViolation }
export const checkErrorData: Check<ErrorData> = obj<ErrorData>({ reason: str, problems: opt(arr(checkProblem)), policy: opt(checkPolicyViolation) });

/** Results that are JSON null (stop, kill, shutdown). */
export const checkNull: Check<null> = (v, ctx) => {
  if (v === null || v === undefined) {
    return null;
  }
  throw new DecodeError(ctx.path, `expected null, got ${JSON.stringify(v)}`);
};

// ---- queue splits (protocol/queuesplit in Go): the "queueSplits" of .remocal/config.json and
// the RemocalQueueConsumer custom resource, typed so that the golden vectors keep both sides in
// agreement. Sessions carry the splits they run (SessionQueueSplit, RemoteQueueSplit above).

export type QueueSplitMode = 'mirror' | 'steal';
export interface QueueFilter { headers?: Record<string, string>; body?: Record<string, string> }
export const checkQueueFilter: Check<QueueFilter> = obj<QueueFilter>({ headers: opt(record(str)), body: opt(record(str)) });
export interface QueueSplit { consumer: string; queue?: string; mode?: QueueSplitMode; filter?: QueueFilter }
export const checkQueueSplit: Check<QueueSplit> = obj<QueueSplit>({
  consumer: str, queue: opt(str), mode: opt(literal('mirror', 'steal')), filter: opt(checkQueueFilter),
});

export interface QueueObjectMeta { name?: string; namespace?: string; resourceVersion?: string }
const checkQueueObjectMeta: Check<QueueObjectMeta> = obj<QueueObjectMeta>({ name: opt(str), namespace: opt(str), resourceVersion: opt(str) });
export interface QueueSecretRef { name: string; usernameKey?: string; passwordKey: string }
export interface QueueBroker { kind: 'redis-streams' | 'nats-jetstream'; address: string; credentials?: QueueSecretRef; bodyField?: string }
export interface QueueEnv { stream: string; group: string; subject?: string }
export interface QueueDecl { name: string; broker: QueueBroker; env: QueueEnv }
export interface QueueConsumerSpec { workload: { kind: string; name: string; container?: string }; queues: QueueDecl[] }
export interface RemocalQueueConsumer { apiVersion: string; kind: string; metadata: QueueObjectMeta; spec: QueueConsumerSpec }
export const checkRemocalQueueConsumer: Check<RemocalQueueConsumer> = obj<RemocalQueueConsumer>({
  apiVersion: str, kind: str, metadata: checkQueueObjectMeta,
  spec: obj<QueueConsumerSpec>({
    workload: obj<QueueConsumerSpec['workload']>({ kind: str, name: str, container: opt(str) }),
    queues: arr(obj<QueueDecl>({
      name: str,
      broker: obj<QueueBroker>({
        kind: literal('redis-streams', 'nats-jetstream'), address: str, bodyField: opt(str),
        credentials: opt(obj<QueueSecretRef>({ name: str, usernameKey: opt(str), passwordKey: str })),
      }),
      env: obj<QueueEnv>({ stream: str, group: str, subject: opt(str) }),
    })),
  }),
});
export interface RemocalQueueConsumerList { apiVersion: string; kind: string; metadata: QueueObjectMeta; items: RemocalQueueConsumer[] }
export const checkRemocalQueueConsumerList: Check<RemocalQueueConsumerList> = obj<RemocalQueueConsumerList>({
  apiVersion: str, kind: str, metadata: checkQueueObjectMeta, items: arr(checkRemocalQueueConsumer),
});
