// Runtime checkers for what the daemon sends. The daemon is ours, but it may
// be another version than the extension: a payload that does not have the
// shape protocol.ts declares must fail where it is decoded, with the JSON
// path of what was wrong, not later as an undefined somewhere in the UI.
//
// A Check<T> either returns its input typed as T or throws a DecodeError.
// Objects ignore unknown fields (the protocol's rule) unless the context is
// strict, which the golden-vector test uses to prove the TypeScript types
// name every field the Go side writes.

export class DecodeError extends Error {
  constructor(
    readonly path: string,
    readonly problem: string,
  ) {
    super(`${path}: ${problem}`);
    this.name = 'DecodeError';
  }
}

export interface CheckContext {
  readonly path: string;
  /** Reject fields a checker does not know (golden tests). */
  readonly strict: boolean;
}

export type Check<T> = (v: unknown, ctx: CheckContext) => T;

/** An object checker: one checker per field, optional fields with opt(). */
export type Fields<T> = { [K in keyof T]-?: Check<T[K]> };

const optionalMark = Symbol('optional');
type OptionalCheck<T> = Check<T | undefined> & { [optionalMark]: true };

/** Decodes v as a T, throwing a DecodeError that names the path. */
export function decode<T>(check: Check<T>, v: unknown, strict = false): T {
  return check(v, { path: '$', strict });
}

function describe(v: unknown): string {
  if (v === null) {
    return 'null';
  }
  if (Array.isArray(v)) {
    return 'an array';
  }
  return typeof v === 'object' ? 'an object' : `${typeof v} ${JSON.stringify(v)}`;
}

function fail(ctx: CheckContext, expected: string, v: unknown): never {
  throw new DecodeError(ctx.path, `expected ${expected}, got ${describe(v)}`);
}

export const str: Check<string> = (v, ctx) => (typeof v === 'string' ? v : fail(ctx, 'a string', v));

export const bool: Check<boolean> = (v, ctx) => (typeof v === 'boolean' ? v : fail(ctx, 'a boolean', v));

export const num: Check<number> = (v, ctx) =>
  typeof v === 'number' && Number.isFinite(v) ? v : fail(ctx, 'a number', v);

/** A non-negative integer (ports, counters, pids). */
export const uint: Check<number> = (v, ctx) =>
  typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : fail(ctx, 'a non-negative integer', v);

/** An RFC 3339 time as Go's encoding/json writes time.Time. */
export const time: Check<string> = (v, ctx) =>
  typeof v === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(v)
    ? v
    : fail(ctx, 'an RFC 3339 time', v);

export function literal<const L extends string>(...values: L[]): Check<L> {
  return (v, ctx) =>
    typeof v === 'string' && (values as string[]).includes(v)
      ? (v as L)
      : fail(ctx, `one of ${values.map((x) => JSON.stringify(x)).join(', ')}`, v);
}

export function arr<T>(item: Check<T>): Check<T[]> {
  return (v, ctx) => {
    if (!Array.isArray(v)) {
      return fail(ctx, 'an array', v);
    }
    return v.map((x, i) => item(x, { ...ctx, path: `${ctx.path}[${i}]` }));
  };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function record<T>(value: Check<T>): Check<Record<string, T>> {
  return (v, ctx) => {
    if (!isRecord(v)) {
      return fail(ctx, 'an object', v);
    }
    const out: Record<string, T> = {};
    for (const [k, x] of Object.entries(v)) {
      out[k] = value(x, { ...ctx, path: `${ctx.path}.${k}` });
    }
    return out;
  };
}

/** A field that may be absent (or null, which Go writes for nil pointers). */
export function opt<T>(check: Check<T>): Check<T | undefined> {
  const c = ((v: unknown, ctx: CheckContext) => (v === undefined || v === null ? undefined : check(v, ctx))) as OptionalCheck<T>;
  c[optionalMark] = true;
  return c;
}

function isOptional(c: unknown): boolean {
  return typeof c === 'function' && optionalMark in c;
}

export function obj<T>(fields: Fields<T>): Check<T> {
  const entries = Object.entries(fields as Record<string, Check<unknown>>);
  return (v, ctx) => {
    if (!isRecord(v)) {
      return fail(ctx, 'an object', v);
    }
    const out: Record<string, unknown> = {};
    for (const [k, check] of entries) {
      const x = check(v[k], { ...ctx, path: `${ctx.path}.${k}` });
      if (x === undefined && !isOptional(check)) {
        fail({ ...ctx, path: `${ctx.path}.${k}` }, 'a value', undefined);
      }
      if (x !== undefined) {
        out[k] = x;
      }
    }
    if (ctx.strict) {
      for (const k of Object.keys(v)) {
        if (!(k in fields)) {
          throw new DecodeError(`${ctx.path}.${k}`, 'a field the TypeScript types do not declare');
        }
      }
    }
    return out as T;
  };
}

/** JSON values whose shape the extension does not interpret (configurations). */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [k: string]: JsonValue };
export type JsonObject = { [k: string]: JsonValue };

export const json: Check<JsonValue> = (v, ctx) => {
  if (v === null || typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))) {
    return v;
  }
  if (Array.isArray(v)) {
    return arr(json)(v, ctx);
  }
  if (isRecord(v)) {
    return record(json)(v, ctx);
  }
  return fail(ctx, 'a JSON value', v);
};

export const jsonObject: Check<JsonObject> = record(json);

/** Either check: the first that accepts v wins; the error names both. */
export function oneOf<A, B>(a: Check<A>, b: Check<B>): Check<A | B> {
  return (v, ctx) => {
    try {
      return a(v, ctx);
    } catch (e) {
      if (!(e instanceof DecodeError)) {
        throw e;
      }
      return b(v, ctx);
    }
  };
}
