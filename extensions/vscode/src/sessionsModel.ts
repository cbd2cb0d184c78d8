// What the sessions view shows, kept from the daemon's notifications
// (remocal/sessionChanged, remocal/conflict) after one remocal/session/list,
// and rendered as plain nodes: the TreeDataProvider turns them into
// TreeItems, and the test API returns them as they are.
import {
  type Conflict, type HTTPFilter, policyName, type QueueFilter, type RemotePort, type RemoteQueueSplit, type RemoteSession, type Session,
  type SessionListResult, type SessionQueueSplit,
} from './protocol';

export interface Icon {
  id: string;
  /** A theme color id; conflicts use the error colour. */
  color?: string;
}

export interface Node {
  id: string;
  label: string;
  description?: string;
  tooltip?: string;
  contextValue?: string;
  icon?: Icon;
  /** What the item's commands act on: a session id, or namespace/name of a remote session. */
  sessionId?: string;
  remote?: { namespace: string; name: string };
  children: Node[];
}

const maxConflicts = 50;
/**
 * How long a conflict stays in view after its session ended: a session
 * that aborts on a conflict ends at once, and the user needs to see why.
 */
export const keepConflictsMs = 5 * 60_000;

export class SessionsModel {
  private readonly sessions = new Map<string, Session>();
  private readonly remote = new Map<string, RemoteSession>();
  private conflicts: Conflict[] = [];
  private readonly seen = new WeakMap<Conflict, number>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Replaces everything with a fresh listing (at connect). */
  reset(list: SessionListResult | undefined): void {
    this.sessions.clear();
    this.remote.clear();
    this.conflicts = [];
    for (const s of list?.sessions ?? []) {
      this.sessions.set(s.id, s);
    }
    for (const r of list?.remote ?? []) {
      this.remote.set(remoteKey(r), r);
    }
  }

  session(id: string): Session | undefined {
    return this.sessions.get(id);
  }

  sessionChanged(s: Session | undefined, r: RemoteSession | undefined): void {
    if (s) {
      if (s.state === 'ended') {
        // Its conflicts stay a while, under "Conflicts": why it ended.
        this.sessions.delete(s.id);
      } else {
        this.sessions.set(s.id, s);
      }
    }
    if (r) {
      const key = remoteKey(r);
      if (r.phase === 'Ended') {
        this.remote.delete(key);
      } else {
        this.remote.set(key, r);
      }
    }
  }

  conflict(c: Conflict): void {
    // One entry per (session, port): a newer report replaces the older.
    const same = (x: Conflict): boolean =>
      x.port === c.port && x.target === c.target && x.sessionId === c.sessionId && (x.remoteSession ?? '') === (c.remoteSession ?? '');
    this.seen.set(c, this.now());
    this.conflicts = [...this.conflicts.filter((x) => !same(x)), c].slice(-maxConflicts);
  }

  private recent(c: Conflict): boolean {
    return this.now() - (this.seen.get(c) ?? 0) < keepConflictsMs;
  }

  render(): Node[] {
    const mine: Node = {
      id: 'mine', label: 'My sessions', contextValue: 'group',
      description: this.sessions.size === 0 ? 'none' : `${this.sessions.size}`,
      children: [...this.sessions.values()].map((s) => sessionNode(s, this.conflicts.filter((c) => c.sessionId === s.id))),
    };
    const out = [mine];
    if (this.remote.size > 0) {
      out.push({
        id: 'cluster', label: 'Cluster sessions', contextValue: 'group', description: `${this.remote.size}`,
        children: [...this.remote.values()].map((r) => remoteNode(r, this.conflicts.filter((c) => c.remoteSession === remoteKey(r)))),
      });
    }
    this.conflicts = this.conflicts.filter((c) => this.sessions.has(c.sessionId) || (c.remoteSession !== undefined && this.remote.has(c.remoteSession)) || this.recent(c));
    const loose = this.conflicts.filter((c) => !this.sessions.has(c.sessionId) && !(c.remoteSession && this.remote.has(c.remoteSession)));
    if (loose.length > 0) {
      out.push({ id: 'conflicts', label: 'Conflicts', contextValue: 'group', icon: errorIcon, children: loose.map(conflictNode) });
    }
    return out;
  }
}

const errorIcon: Icon = { id: 'error', color: 'errorForeground' };

function remoteKey(r: { namespace: string; name: string }): string {
  return `${r.namespace}/${r.name}`;
}

/** "09:30 UTC": short, and the same whatever the machine's zone (tests compare it). */
export function formatSince(t: string | undefined): string {
  if (!t) {
    return '';
  }
  const m = /T(\d\d:\d\d)/.exec(new Date(t).toISOString());
  return m ? `${m[1]} UTC` : t;
}

export function formatFilter(f: HTTPFilter | undefined): string {
  if (!f) {
    return '';
  }
  const parts = Object.entries(f.headers ?? {}).map(([k, v]) => `${k}: ${v}`);
  if (f.path) {
    parts.push(`path ${f.path}`);
  }
  if (f.methods && f.methods.length > 0) {
    parts.push(f.methods.join(','));
  }
  return parts.join(', ');
}

/** "tenant=a, body $.amount=4[2-9]": header patterns, then JSON paths into the body, each sorted. */
export function formatQueueFilter(f: QueueFilter | undefined): string {
  if (!f) {
    return '';
  }
  const sorted = (m: Record<string, string> | undefined): [string, string][] =>
    Object.entries(m ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return [
    ...sorted(f.headers).map(([k, v]) => `${k}=${v}`),
    ...sorted(f.body).map(([k, v]) => `body ${k}=${v}`),
  ].join(', ');
}

/** "queue orders-worker/orders steal [tenant=a]", plus "412 delivered" for an operator session's. */
export function queueText(q: SessionQueueSplit | RemoteQueueSplit): string {
  const filter = formatQueueFilter(q.filter);
  return [`queue ${q.consumer}/${q.queue} ${q.mode}`, filter ? `[${filter}]` : '', 'delivered' in q ? `${q.delivered} delivered` : '']
    .filter((x) => x !== '').join(' ');
}

/** A queue split as a child of its session, like a port. */
function queueNode(parent: string, q: SessionQueueSplit | RemoteQueueSplit): Node {
  const env = 'env' in q ? Object.entries(q.env).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)) : [];
  const tooltip = [
    `queue ${q.queue} of RemocalQueueConsumer ${q.consumer}`,
    `mode: ${q.mode}${q.mode === 'steal' ? ' (matching messages come to this session only)' : ' (a copy; the deployed consumer still gets every message)'}`,
    `filter: ${formatQueueFilter(q.filter) || 'none (every message)'}`,
    'since' in q ? `since: ${q.since}` : '',
    'delivered' in q ? `delivered: ${q.delivered} (since the operator's router started)` : '',
    ...env.map(([k, v]) => `${k}=${v}`),
  ].filter((x) => x !== '').join('\n');
  return {
    id: `${parent}/queue/${q.consumer}/${q.queue}`,
    label: `queue ${q.consumer}/${q.queue}`,
    description: [q.mode, formatQueueFilter(q.filter), 'delivered' in q ? `${q.delivered} delivered` : '',
      'since' in q ? `since ${formatSince(q.since)}` : ''].filter((x) => x !== '').join(' · '),
    tooltip,
    contextValue: 'queueSplit',
    icon: { id: q.mode === 'steal' ? 'inbox' : 'mirror' },
    children: [],
  };
}

function stateIcon(s: Session, conflicted: boolean): Icon {
  if (conflicted) {
    return errorIcon;
  }
  switch (s.state) {
    case 'starting':
      return { id: 'loading~spin' };
    case 'degraded':
      return { id: 'warning', color: 'list.warningForeground' };
    default:
      return { id: 'vm-running', color: 'testing.iconPassed' };
  }
}

export function sessionNode(s: Session, conflicts: Conflict[]): Node {
  const where = s.namespace ? `${s.namespace}/${s.target}` : s.target;
  const mode = s.incoming || 'starting';
  const desc = [where, mode, s.state === 'active' ? '' : s.state, s.policy ? `limited by ${policyName(s.policy)}` : '',
    `since ${formatSince(s.startedAt)}`]
    .filter((x) => x !== '').join(' · ');
  const tooltip = [
    `session ${s.id}${s.label ? ` (${s.label})` : ''}`,
    `target: ${where}`,
    s.resolved ? `resolved: ${s.resolved}` : '',
    `owner: ${s.owner}`,
    `incoming: ${mode}`,
    `state: ${s.state}${s.reason ? ` (${s.reason})` : ''}`,
    `since: ${s.startedAt}`,
    s.note ? `note: ${s.note}` : '',
    s.policy ? `policy: ${policyName(s.policy)} refused a port (rule ${s.policy.rule})` : '',
    ...(s.queueSplits ?? []).map(queueText),
    ...conflicts.map((c) => `conflict: ${c.message}`),
  ].filter((x) => x !== '').join('\n');
  return {
    id: `session/${s.id}`,
    label: s.label ?? s.target,
    description: conflicts.length > 0 ? `${desc} · conflict on ${conflicts.map((c) => `:${c.port}`).join(' ')}` : desc,
    tooltip,
    contextValue: 'session',
    icon: stateIcon(s, conflicts.length > 0),
    sessionId: s.id,
    children: [...(s.queueSplits ?? []).map((q) => queueNode(`session/${s.id}`, q)), ...conflicts.map(conflictNode)],
  };
}

export function portText(p: RemotePort): string {
  const filter = formatFilter(p.filter);
  return [`:${p.port} ${p.mode}`, filter ? `[${filter}]` : '', p.lock ? 'lock' : ''].filter((x) => x !== '').join(' ');
}

export function remoteNode(r: RemoteSession, conflicts: Conflict[]): Node {
  const queues = r.queueSplits ?? [];
  const ports = [...r.ports.map(portText), ...queues.map(queueText)].join(', ');
  const desc = [r.target, r.phase === 'Active' ? '' : r.phase, ports || 'no ports', `since ${formatSince(r.since)}`]
    .filter((x) => x !== '').join(' · ');
  const tooltip = [
    `operator session ${r.namespace}/${r.name}`,
    `user: ${r.user} (${r.client}${r.tool ? `, ${r.tool}` : ''})`,
    `target: ${r.target} in ${r.namespace}`,
    `phase: ${r.phase}${r.expiresAt ? ` until ${r.expiresAt}` : ''}`,
    ...r.ports.map((p) => `port ${portText(p)}${p.since ? ` since ${p.since}` : ''}`),
    ...queues.map((q) => `${queueText(q)} since ${q.since}`),
    `since: ${r.since}`,
    ...conflicts.map((c) => `conflict: ${c.message}`),
  ].join('\n');
  const icon: Icon = conflicts.length > 0 ? errorIcon : r.phase === 'Disconnected' ? { id: 'debug-disconnect' } : { id: 'account' };
  return {
    id: `remote/${remoteKey(r)}`,
    label: `${r.user} on ${r.target}`,
    description: conflicts.length > 0 ? `${desc} · taken :${conflicts.map((c) => c.port).join(' :')}` : desc,
    tooltip,
    contextValue: 'remoteSession',
    icon,
    remote: { namespace: r.namespace, name: r.name },
    children: [
      ...r.ports.map((p): Node => ({
        id: `remote/${remoteKey(r)}/port/${p.port}`,
        label: `:${p.port} ${p.mode}`,
        description: [formatFilter(p.filter), p.lock ? `lock since ${formatSince(p.since)}` : ''].filter((x) => x !== '').join(' · '),
        contextValue: 'remotePort',
        icon: { id: p.lock ? 'lock' : 'mirror' },
        children: [],
      })),
      ...queues.map((q) => queueNode(`remote/${remoteKey(r)}`, q)),
      ...conflicts.map(conflictNode),
    ],
  };
}

export function conflictNode(c: Conflict): Node {
  const h = c.holder;
  const who = h ? (h.user ? `${h.user} (${h.client})` : h.client) : 'another client';
  return {
    id: `conflict/${c.sessionId || c.remoteSession || ''}/${c.target}/${c.port}`,
    label: c.taken ? `:${c.port} taken by ${who}` : `:${c.port} held by ${who}`,
    description: [c.target, h ? `${h.mode}${h.filter ? ` [${formatFilter(h.filter)}]` : ''}` : '', h?.since ? `since ${formatSince(h.since)}` : '',
      c.sessionId ? `session ${c.sessionId}` : (c.remoteSession ?? '')]
      .filter((x) => x !== '').join(' · '),
    tooltip: c.message,
    contextValue: 'conflict',
    icon: errorIcon,
    children: [],
  };
}
