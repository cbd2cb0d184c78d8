// The text of a session's detail document (remocal/session/detail).
import type { SessionDetail } from './protocol';
import { formatFilter, queueText } from './sessionsModel';

export function detailText(d: SessionDetail): string {
  const s = d.session;
  const lines = [
    `remocal session ${s.id}${s.label ? ` — ${s.label}` : ''}`,
    '',
    `target:     ${s.namespace ? `${s.namespace}/` : ''}${s.target}`,
    `resolved:   ${s.resolved ?? '-'}`,
    `owner:      ${s.owner}`,
    `state:      ${s.state}${s.reason ? ` (${s.reason})` : ''}`,
    `incoming:   ${s.incoming || '-'}`,
    `started:    ${s.startedAt}`,
    `workspace:  ${s.workspaceFolder}`,
  ];
  if (s.note) {
    lines.push(`note:       ${s.note}`);
  }
  lines.push('', 'incoming traffic:');
  lines.push(...(d.subscriptions.length === 0 ? ['  none'] : d.subscriptions.map((x) =>
    `  target port ${x.port} -> local port ${x.localPort}: ${x.mode}${x.filter ? ` [${formatFilter(x.filter)}]` : ''}, ${x.deliveries} delivered`)));
  const queues = s.queueSplits ?? [];
  if (queues.length > 0) {
    lines.push('', 'queue splits:');
    for (const q of queues) {
      const env = Object.entries(q.env).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, v]) => `${k}=${v}`);
      lines.push(`  ${queueText(q)}${env.length > 0 ? `: ${env.join(' ')}` : ''}`);
    }
  }
  lines.push('', 'processes:');
  lines.push(...(d.processes.length === 0 ? ['  none'] : d.processes.map((p) => `  ${p.pid}  ${p.exe}`)));
  lines.push('', 'intercepted system calls:');
  const counters = Object.entries(d.counters).sort(([a], [b]) => a.localeCompare(b));
  lines.push(...(counters.length === 0 ? ['  none'] : counters.map(([k, v]) => `  ${k.padEnd(12)} ${v}`)));
  lines.push('', 'recent errors:');
  lines.push(...(d.errors.length === 0 ? ['  none'] : d.errors.map((e) => `  ${e}`)));
  return `${lines.join('\n')}\n`;
}
