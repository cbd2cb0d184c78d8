// The debug-configuration rewrite, as pure functions the provider calls:
// whether a launch configuration runs in a remocal session, what session to
// ask the daemon for, and how to launch the program with what it returned.
//
// A configuration carrying the marker of a running session (VS Code
// resolves some configurations twice) or js-debug's __pendingTargetId (its
// child sessions) is passed through unchanged.
//
// Which program the daemon judges (it decides env vs wrapper, never the
// extension), by debug type:
//   node, pwa-node        the runtime: runtimeExecutable, else `node` on PATH,
//                         with runtimeArgs (js-debug launches
//                         runtime runtimeArgs program args); a wrapper
//                         replaces runtimeExecutable/runtimeArgs.
//   anything else         `program` with `args` when program is a string
//                         and args a list; a wrapper replaces program/args.
//                         Without a program only env is injected.
import { type JsonObject, type JsonValue } from './check';
import { lookPath } from './binary';
import type { IncomingMode, Program, SessionStartParams, SessionStartResult } from './protocol';

/** The field the extension adds to a configuration it rewrote: the remocal session id. */
export const marker = '__remocalSession';

/** A debug configuration as VS Code hands it over (vscode.DebugConfiguration's shape). */
export interface DebugConfig {
  type: string;
  request: string;
  name: string;
  [key: string]: unknown;
}

/** The launch configuration's "remocal" object. */
export interface LaunchField {
  target?: string;
  namespace?: string;
  incoming?: IncomingMode;
  overrides?: JsonObject;
}

/** The workspace's remembered choice (workspaceState "remocal.target"). */
export interface StoredTarget {
  ref: string;
  namespace?: string;
  container?: string;
  provider: string;
}

export class LaunchFieldError extends Error {}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isJson(v: unknown): v is JsonValue {
  if (v === null || typeof v === 'string' || typeof v === 'boolean' || typeof v === 'number') {
    return true;
  }
  if (Array.isArray(v)) {
    return v.every(isJson);
  }
  return isObject(v) && Object.values(v).every(isJson);
}

/**
 * Reads the "remocal" field: undefined (absent), false (opt out) or the
 * object. Anything else is a mistake in launch.json worth a clear message.
 */
export function parseLaunchField(v: unknown, configName: string): LaunchField | false | undefined {
  if (v === undefined || v === true) {
    return v === true ? {} : undefined;
  }
  if (v === false) {
    return false;
  }
  const where = `launch configuration "${configName}": "remocal"`;
  if (!isObject(v)) {
    throw new LaunchFieldError(`${where} must be false or an object like {"target": "deployment/api"}; it is ${JSON.stringify(v)}`);
  }
  const out: LaunchField = {};
  for (const [k, x] of Object.entries(v)) {
    if (x === undefined) {
      continue;
    }
    switch (k) {
      case 'target':
      case 'namespace':
        if (typeof x !== 'string') {
          throw new LaunchFieldError(`${where}.${k} must be a string`);
        }
        out[k] = x;
        break;
      case 'incoming':
        if (x !== 'mirror' && x !== 'steal' && x !== 'off') {
          throw new LaunchFieldError(`${where}.incoming must be "mirror", "steal" or "off"; it is ${JSON.stringify(x)}`);
        }
        out.incoming = x;
        break;
      case 'overrides':
        if (!isObject(x) || !isJson(x)) {
          throw new LaunchFieldError(`${where}.overrides must be an object shaped like .remocal/config.json`);
        }
        out.overrides = x;
        break;
      default:
        throw new LaunchFieldError(`${where} has an unknown field "${k}"; known: target, namespace, incoming, overrides`);
    }
  }
  return out;
}

/**
 * Merges configuration overrides as the daemon merges them over the file:
 * objects key by key, everything else (lists included) replaced.
 */
export function mergeOverrides(base: JsonObject | undefined, over: JsonObject | undefined): JsonObject | undefined {
  if (!base) {
    return over;
  }
  if (!over) {
    return base;
  }
  const out: JsonObject = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = isObject(b) && isObject(v) ? (mergeOverrides(b, v) ?? {}) : v;
  }
  return out;
}

/** The program the daemon should judge for this configuration (see the table above). */
export function programFor(config: DebugConfig, pathEnv: string | undefined): Program | undefined {
  if (config.type === 'node' || config.type === 'pwa-node') {
    const runtime = typeof config.runtimeExecutable === 'string' && config.runtimeExecutable !== '' ? config.runtimeExecutable : 'node';
    const runtimeArgs = stringList(config.runtimeArgs) ?? [];
    return { path: lookPath(runtime, pathEnv) ?? runtime, args: runtimeArgs, launch: 'auto' };
  }
  if (typeof config.program === 'string' && config.program !== '') {
    return { path: config.program, args: stringList(config.args) ?? [], launch: 'auto' };
  }
  return undefined;
}

function stringList(v: unknown): string[] | undefined {
  return Array.isArray(v) && v.every((x) => typeof x === 'string') ? v : undefined;
}

export type Plan =
  | { kind: 'skip'; why: string }
  | { kind: 'start'; params: SessionStartParams };

export interface PlanInput {
  config: DebugConfig;
  enabled: boolean;
  target?: StoredTarget;
  workspaceFolder: string;
  pathEnv: string | undefined;
  /** Overrides asked for by an action ("Steal with a header filter instead"). */
  extraOverrides?: JsonObject;
  /** Whether a session id the marker names is still running. */
  isLive: (sessionId: string) => boolean;
}

/** Decides what to do with a configuration; throws LaunchFieldError on a bad "remocal" field. */
export function plan(input: PlanInput): Plan {
  const { config } = input;
  const mark = config[marker];
  if (typeof mark === 'string' && input.isLive(mark)) {
    // js-debug's child sessions and its node→pwa-node rewrite come
    // through again: they already carry the session's env.
    return { kind: 'skip', why: `already in remocal session ${mark}` };
  }
  if ('__pendingTargetId' in config) {
    // js-debug's child sessions (the node process itself, workers) carry
    // this field and none of the parent's: the parent's session already
    // holds the process, whose env the child inherited.
    return { kind: 'skip', why: 'a js-debug child session (its parent is in the session)' };
  }
  if (config.request === 'attach') {
    return { kind: 'skip', why: 'an attach request starts no program' };
  }
  const field = parseLaunchField(config.remocal, config.name);
  if (field === false) {
    return { kind: 'skip', why: 'the configuration opts out ("remocal": false)' };
  }
  // A configuration naming its own target runs in it even when remocal is
  // off for the workspace: the user asked for it explicitly there.
  if (!input.enabled && field?.target === undefined) {
    return { kind: 'skip', why: 'remocal is off for this workspace' };
  }
  const params: SessionStartParams = {
    target: field?.target ?? input.target?.ref ?? '',
    workspaceFolder: input.workspaceFolder,
    label: `debug: ${config.name}`,
  };
  const namespace = field?.target !== undefined ? field.namespace : (field?.namespace ?? input.target?.namespace);
  if (namespace) {
    params.namespace = namespace;
  }
  if (field?.incoming) {
    params.incoming = field.incoming;
  }
  const overrides = mergeOverrides(field?.overrides, input.extraOverrides);
  if (overrides) {
    params.overrides = overrides;
  }
  const program = programFor(config, input.pathEnv);
  if (program) {
    params.program = program;
  }
  return { kind: 'start', params };
}

/**
 * The configuration to launch: the daemon's env merged in, and its wrapper
 * in place of the program when it returned one; mark is what the marker
 * field records (the provider uses a UUID per start).
 */
export function apply(config: DebugConfig, result: SessionStartResult, mark: string = result.session.id): DebugConfig {
  const out: DebugConfig = { ...config, [marker]: mark };
  const env = isObject(config.env) ? config.env : {};
  out.env = { ...env, ...result.env };
  const w = result.wrapper;
  if (w && w.length > 0) {
    if (config.type === 'node' || config.type === 'pwa-node') {
      out.runtimeExecutable = w[0];
      out.runtimeArgs = w.slice(1);
    } else {
      out.program = w[0];
      out.args = w.slice(1);
    }
  }
  return out;
}

/** The overrides of "Steal with a header filter instead": only requests carrying the user's header. */
export function stealWithHeader(user: string): JsonObject {
  return { network: { incoming: { mode: 'steal', httpFilter: { headers: { 'X-Remocal-User': user } } } } };
}
