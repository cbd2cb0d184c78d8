// The target picker's entries, built from the daemon's listing and the
// workspace's recent choices. Pure; picker.ts shows them in a QuickPick.
import type { StoredTarget } from './launch';
import type { Target } from './protocol';

export interface PickEntry {
  label: string;
  description?: string;
  detail?: string;
  separator?: boolean;
  /** What choosing the entry means. */
  choice?: { kind: 'target'; target: StoredTarget; containers: string[] } | { kind: 'namespace' } | { kind: 'off' };
}

export const targetless: StoredTarget = { ref: 'targetless', provider: 'kubernetes' };
export const maxRecent = 5;

const kindIcons: Record<string, string> = {
  pid: 'server-process', pod: 'package', deployment: 'layers', statefulset: 'database', replicaset: 'copy',
  job: 'run', cronjob: 'watch', service: 'globe',
};

export function stored(t: Target): StoredTarget {
  const s: StoredTarget = { ref: t.ref, provider: t.provider };
  if (t.provider === 'kubernetes') {
    s.namespace = t.namespace;
  }
  return s;
}

/** The target with a container picked: the ref names it unless it is the default (first). */
export function withContainer(s: StoredTarget, containers: string[], container: string | undefined): StoredTarget {
  if (!container || container === containers[0]) {
    return s;
  }
  return { ...s, ref: `${s.ref}/container/${container}`, container };
}

export function describeTarget(s: StoredTarget | undefined): string {
  if (!s) {
    return 'no target';
  }
  return s.namespace ? `${s.ref} (${s.namespace})` : s.ref;
}

/** The status bar item's text. */
export function statusText(enabled: boolean, target: { ref: string; namespace?: string } | undefined): string {
  if (!enabled) {
    return 'remocal: off';
  }
  return `remocal: ${target ? describeTarget({ ...target, provider: '' }) : 'no target'}`;
}

export function sameTarget(a: StoredTarget, b: StoredTarget): boolean {
  return a.ref === b.ref && (a.namespace ?? '') === (b.namespace ?? '') && a.provider === b.provider;
}

export function rememberRecent(recents: readonly StoredTarget[], t: StoredTarget): StoredTarget[] {
  return [t, ...recents.filter((r) => !sameTarget(r, t))].slice(0, maxRecent);
}

function readiness(t: Target): string {
  if (t.status) {
    return t.ready ? t.status : `$(warning) ${t.status}`;
  }
  return t.ready ? 'ready' : '$(warning) not ready';
}

export function pickEntries(targets: readonly Target[], recents: readonly StoredTarget[], opts: {
  namespaceCount: number;
  enabled: boolean;
  current?: StoredTarget;
}): PickEntry[] {
  const out: PickEntry[] = [];
  if (recents.length > 0) {
    out.push({ label: 'recent', separator: true });
    for (const r of recents) {
      const live = targets.find((t) => t.ref === r.ref.replace(/\/container\/.*$/, '') && stored(t).namespace === r.namespace);
      out.push({
        label: `$(history) ${r.ref}`,
        description: [r.namespace ?? '', live ? readiness(live) : 'not listed now', opts.current && sameTarget(opts.current, r) ? 'current' : '']
          .filter((x) => x !== '').join(' · '),
        choice: { kind: 'target', target: r, containers: [] },
      });
    }
  }
  out.push({ label: 'other', separator: true });
  out.push({
    label: '$(globe) targetless',
    description: 'the cluster\'s network and DNS without a workload',
    choice: { kind: 'target', target: targetless, containers: [] },
  });
  if (opts.namespaceCount > 1) {
    out.push({ label: '$(list-filter) Namespace…', description: `${opts.namespaceCount} namespaces: list one`, choice: { kind: 'namespace' } });
  }
  if (opts.enabled) {
    out.push({ label: '$(circle-slash) Turn remocal off', description: 'launch configurations run as usual', choice: { kind: 'off' } });
  }
  let ns = '';
  for (const t of targets) {
    if (t.namespace !== ns) {
      ns = t.namespace;
      out.push({ label: `${ns} (${t.provider})`, separator: true });
    }
    const containers = t.containers ?? [];
    out.push({
      label: `$(${kindIcons[t.kind] ?? 'symbol-misc'}) ${t.ref}`,
      description: `${t.namespace} · ${readiness(t)}`,
      detail: [t.description ?? '', containers.length > 1 ? `containers: ${containers.join(', ')}` : ''].filter((x) => x !== '').join(' · ') || undefined,
      choice: { kind: 'target', target: stored(t), containers },
    });
  }
  return out;
}

/** The target arguments of `remocal operator policies`: all policies without a target. */
export function policiesArgs(ref: string | undefined, namespace: string | undefined): string[] {
  if (!ref || ref === 'targetless') {
    return namespace ? ['-n', namespace] : [];
  }
  return [...(namespace ? ['-n', namespace] : []), '-t', ref];
}
