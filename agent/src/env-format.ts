/**
 * Env files in three formats. No single quoting serves every parser, so each value is written in
 * the form that reads back exactly, and a value a format cannot hold exactly is left out and
 * reported by key with the reason (never silently altered, never the value):
 * - `sh` (`set -a; . FILE`): KEY='…' with ' written as '"'"'. Exact for every value without NUL.
 * - `json`: {"KEY": "…"}. Exact for every valid UTF-8 value.
 * - `dotenv`: people source .env files in a shell too, so every line is also inert when sourced
 *   by sh (`set -a; . FILE`): nothing in it expands, substitutes or runs, whatever the value.
 *   Exact in sh and in python-dotenv (what BentoML services use); exact in the npm dotenv package
 *   too unless noted. Rules, in order, for valid UTF-8 without NUL:
 *   (1) a CR: left out (python-dotenv reads files with universal newlines and npm dotenv rewrites
 *       CR and CRLF, so both would read LF; sh would not): use sh or json;
 *   (2) no ', no \\ and not ending in \ → KEY='v': sh takes every byte but ' literally, and so do
 *       both dotenv parsers (python-dotenv decodes only \\ and \' in single quotes);
 *   (3) no ", \, $ or ` → KEY="v": nothing in it is special to any of the three;
 *   (4) no $ or `, not ending in \ → KEY="v" with \ → \\ and " → \": sh and python-dotenv decode
 *       exactly those two (a trailing \\ would make python-dotenv's pattern eat the closing quote);
 *       the npm dotenv package keeps the escapes: noted;
 *   (5) anything else ($ or ` together with ' or \\, or a trailing \) cannot be both inert in
 *       sh and exact in python-dotenv: left out, naming the sh and json formats.
 *   python-dotenv expands ${…} unless read with interpolate=False; such keys get a note.
 */
import { userRecord } from '../../shared/src/user-keys.js';

export type EnvFormat = 'dotenv' | 'sh' | 'json';

export interface EnvFile {
  content: Buffer;
  /** Keys left out, each with the reason (never the value). */
  refused: Array<{ key: string; reason: string }>;
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

const USE_OTHER_FORMAT = 'use mount format sh or json for it';

/** One dotenv line for a text value (see the rules above), or why there is none. */
function dotenvLine(key: string, value: string): { line?: string; note?: string; reason?: string } {
  if (value.includes('\r')) return { reason: `holds a carriage return, which python-dotenv and the npm dotenv package read as a newline; ${USE_OTHER_FORMAT}` }; // (1)
  const notes: string[] = [];
  if (value.includes('${')) notes.push(`${key}: holds "\${": read it with python-dotenv interpolate=False`);
  const trailingBackslash = value.endsWith('\\');
  let line: string | undefined;
  if (!value.includes("'") && !value.includes('\\\\') && !trailingBackslash) line = `${key}='${value}'`; // (2)
  else if (!/["\\$`]/.test(value)) line = `${key}="${value}"`; // (3)
  else if (!/[$`]/.test(value) && !trailingBackslash) {
    line = `${key}="${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`; // (4)
    notes.push(`${key}: exact in sh and python-dotenv; the npm dotenv package would keep the escapes`);
  } else {
    // (5)
    const why = trailingBackslash ? 'ends in a backslash' : "holds $ or a backtick together with a ' or a double backslash";
    return { reason: `${why}: no dotenv quoting of it is both exact and inert when sourced by sh; ${USE_OTHER_FORMAT}` };
  }
  return { line, note: notes.join('; ') || undefined };
}

export function renderEnvFile(format: EnvFormat, data: Record<string, Uint8Array>): EnvFile {
  const keys = Object.keys(data).sort();
  const refused: EnvFile['refused'] = [];
  const notes: string[] = [];
  const notText = 'is not valid UTF-8 text';
  if (format === 'json') {
    const out = userRecord<string>();
    for (const key of keys) {
      const text = asText(data[key]);
      if (text === undefined) refused.push({ key, reason: `${notText}; use mount format sh for it` });
      else out[key] = text;
    }
    return { content: Buffer.from(JSON.stringify(out, null, 2) + '\n'), refused, notes };
  }
  const lines: Buffer[] = [];
  for (const key of keys) {
    const value = Buffer.from(data[key]);
    if (value.includes(0)) {
      refused.push({ key, reason: 'holds a NUL byte, which no environment variable can hold' });
      continue;
    }
    if (format === 'sh') {
      lines.push(Buffer.concat([Buffer.from(`${key}=`), shQuote(value), Buffer.from('\n')]));
      continue;
    }
    const text = asText(value);
    const { line, note, reason } = text === undefined ? { reason: `${notText}; ${USE_OTHER_FORMAT}` } : dotenvLine(key, text);
    if (!line) refused.push({ key, reason: reason! });
    else lines.push(Buffer.from(line + '\n'));
    if (line && note) notes.push(note);
  }
  return { content: Buffer.concat(lines), refused, notes };
}
