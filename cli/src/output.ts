/** Rendering for `-o table|json|yaml|name`. Values appear only when the caller revealed them. */
import YAML from 'yaml';
import { userRecord } from '../../shared/src/user-keys.js';

/** `name`: one `kind/name` line per object, for scripts (kubectl's `-o name`). */
export type OutputFormat = 'table' | 'json' | 'yaml' | 'name';

/** Values as text when they are exact UTF-8, else base64 under `data_base64`. */
export function presentData(data: Record<string, Uint8Array> | undefined): { data?: Record<string, string>; data_base64?: Record<string, string> } {
  if (!data) return {};
  const text = userRecord<string>();
  const binary = userRecord<string>();
  for (const [key, value] of Object.entries(data)) {
    const buffer = Buffer.from(value);
    const decoded = buffer.toString('utf8');
    if (Buffer.from(decoded, 'utf8').equals(buffer)) text[key] = decoded;
    else binary[key] = buffer.toString('base64');
  }
  return { ...(Object.keys(text).length ? { data: text } : {}), ...(Object.keys(binary).length ? { data_base64: binary } : {}) };
}

export function renderStructured(value: unknown, format: 'json' | 'yaml'): string {
  return format === 'json' ? JSON.stringify(value, null, 2) + '\n' : YAML.stringify(value);
}

export function renderTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

/** Key/value lines for one record. */
export function renderFields(fields: Array<[string, string]>): string {
  const width = Math.max(...fields.map(([k]) => k.length));
  return fields.map(([k, v]) => `${(k + ':').padEnd(width + 1)} ${v}`).join('\n') + '\n';
}
