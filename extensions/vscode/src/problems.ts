// Problems of a configuration file (JSON path, 1-based line and column) as
// zero-based ranges for the Problems panel.
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
