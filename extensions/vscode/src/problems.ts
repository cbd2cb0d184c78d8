// .remocal/config.json without the editor: problems (JSON path, 1-based line
// and column) as zero-based ranges for the Problems panel, and the starter
// file remocal.createConfig writes.
import type { Problem } from './protocol';

export interface Span { line: number; character: number; endLine: number; endCharacter: number }

/**
 * The range of a problem in a file whose lines are given: from its column
 * to the end of the value there (up to a comma or the line's end), or the
 * whole first line when the daemon gave no position.
 */
export function problemSpan(p: Problem, lines: readonly string[]): Span {
  if (!p.line || p.line < 1) {
    return { line: 0, character: 0, endLine: 0, endCharacter: lines[0]?.length ?? 0 };
  }
  const line = Math.min(p.line, Math.max(lines.length, 1)) - 1;
  const text = lines[line] ?? '';
  const character = Math.min(Math.max((p.column ?? 1) - 1, 0), text.length);
  const rest = text.slice(character);
  const m = /^("(?:[^"\\]|\\.)*"|[^,}\]\s]+)/.exec(rest);
  let endCharacter = character + (m ? m[0].length : rest.trimEnd().length);
  if (endCharacter === character) {
    endCharacter = Math.min(character + 1, text.length);
  }
  return { line, character, endLine: line, endCharacter };
}

/** The starter configuration for a target (every other key keeps its default). */
export function starterConfig(target: { ref: string; namespace?: string } | undefined): string {
  const cfg: Record<string, unknown> = {};
  cfg.target = target?.ref ?? 'targetless';
  if (target?.namespace) {
    cfg.kubernetes = { namespace: target.namespace };
  }
  cfg.env = { include: ['*'] };
  cfg.network = { incoming: { mode: 'mirror' } };
  return `${JSON.stringify(cfg, null, 2)}\n`;
}
