/**
 * Env files in three formats. No single quoting serves every parser, so each value is written in
 * the form that reads back exactly, and a value a format cannot hold exactly is reported by key
 * (never silently altered):
 * - `sh` (`set -a; . FILE`): KEY='…' with ' written as '"'"'. Exact for every value without NUL.
 * - `json`: {"KEY": "…"}. Exact for every valid UTF-8 value.
 * - `dotenv`: exact in python-dotenv (what BentoML services use) for every valid UTF-8 value
 *   without NUL that does not end in a backslash on a line of its own; also exact in the npm
 *   dotenv package when the value holds no backslash, no CR, and not both kinds of quote.
 *   Rules, in order: (1) no \ and no ' → KEY='v'; (2) no \ and no " → KEY="v"; (3) else KEY='v'
 *   with \ → \\ and ' → \' (python-dotenv decodes exactly those two), unless v ends in \ (the
 *   parser would read \' as a quote): then (4) unquoted KEY=v when v is one line without
 *   surrounding spaces, leading quote or " #"; otherwise the key is refused.
 *   python-dotenv expands ${…} unless read with interpolate=False; such keys get a note.
 */
export type EnvFormat = 'dotenv' | 'sh' | 'json';

export interface EnvFile {
  content: Buffer;
  /** Keys refused: not written at all. */
  refused: string[];
  /** Written exactly for the primary reader, with a caveat for others. */
  notes: string[];
}

function asText(value: Uint8Array): string | undefined {
  const buffer = Buffer.from(value);
  const text = buffer.toString('utf8');
  return Buffer.from(text, 'utf8').equals(buffer) ? text : undefined;
}

function shQuote(value: Buffer): Buffer {
  const parts: Buffer[] = [Buffer.from("'")];
  let start = 0;
  for (let i = 0; i < value.length; i++) {
    if (value[i] === 0x27) {
      parts.push(value.subarray(start, i), Buffer.from(`'"'"'`));
      start = i + 1;
    }
  }
  parts.push(value.subarray(start), Buffer.from("'"));
  return Buffer.concat(parts);
}

function dotenvLine(key: string, value: string): { line?: string; note?: string } {
  const notes: string[] = [];
  if (value.includes('${')) notes.push(`${key}: holds "\${": read it with python-dotenv interpolate=False`);
  const hasBackslash = value.includes('\\');
  if (value.includes('\r')) notes.push(`${key}: holds a carriage return, which the npm dotenv package turns into a newline`);
  let line: string | undefined;
  if (!hasBackslash && !value.includes("'")) line = `${key}='${value}'`; // (1)
  else if (!hasBackslash && !value.includes('"')) line = `${key}="${value}"`; // (2)
  else if (!value.endsWith('\\')) {
    line = `${key}='${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`; // (3)
    notes.push(`${key}: exact in python-dotenv; the npm dotenv package would keep the escapes`);
  } else if (!/[\r\n]/.test(value) && value === value.trim() && !/^['"`]/.test(value) && !/\s#/.test(value)) {
    line = `${key}=${value}`; // (4)
    if (value.includes('#')) notes.push(`${key}: the npm dotenv package would cut it at "#"`);
  }
  return { line, note: notes.join('; ') || undefined };
}

export function renderEnvFile(format: EnvFormat, data: Record<string, Uint8Array>): EnvFile {
  const keys = Object.keys(data).sort();
  const refused: string[] = [];
  const notes: string[] = [];
  if (format === 'json') {
    const out: Record<string, string> = {};
    for (const key of keys) {
      const text = asText(data[key]);
      if (text === undefined) refused.push(key);
      else out[key] = text;
    }
    return { content: Buffer.from(JSON.stringify(out, null, 2) + '\n'), refused, notes };
  }
  const lines: Buffer[] = [];
  for (const key of keys) {
    const value = Buffer.from(data[key]);
    if (value.includes(0)) {
      refused.push(key);
      continue;
    }
    if (format === 'sh') {
      lines.push(Buffer.concat([Buffer.from(`${key}=`), shQuote(value), Buffer.from('\n')]));
      continue;
    }
    const text = asText(value);
    const { line, note } = text === undefined ? {} : dotenvLine(key, text);
    if (!line) refused.push(key);
    else lines.push(Buffer.from(line + '\n'));
    if (line && note) notes.push(note);
  }
  return { content: Buffer.concat(lines), refused, notes };
}
