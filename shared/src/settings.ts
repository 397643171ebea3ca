/**
 * Parsing of flags and settings shared by lockboxd and lockbox-agent. A bad one is a
 * SettingError whose message names the setting and what it must be; the programs print it on
 * one line and exit 2.
 */
export class SettingError extends Error {
  override name = 'SettingError';
}

/**
 * The one duration syntax of every program (lockboxd, lockbox-agent, lockbox): a number with a
 * unit, `500ms`, `30s`, `2m`, `1h` (fractions allowed: `1.5s`); a bare number is seconds.
 * Returns milliseconds.
 */
export function parseDuration(text: string, setting: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!match) throw new SettingError(`${setting}: "${text}" is not a duration (e.g. 500ms, 30s, 2m, 1h; a bare number is seconds)`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] ?? 's']!;
  return Math.round(Number(match[1]) * unit);
}

/** What every program's --help says about durations, once. */
export const durationHelp = 'Durations: 500ms, 30s, 2m, 1h (fractions allowed: 1.5s); a bare number is seconds.';

/** host:port, the host a name, an IPv4 address or a bracketed IPv6 one; port 0 to 65535. */
export function parseHostPort(text: string, setting: string): { host: string; port: number } {
  const match = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(text);
  const port = match ? Number(match[2]) : NaN;
  if (!match || port > 65535) throw new SettingError(`${setting}: "${text}" must be host:port (e.g. 127.0.0.1:7700; port 0 picks a free one)`);
  return { host: match[1].replace(/^\[|\]$/g, ''), port };
}

/** A NATS URL (nats://, tls://, ws://, wss://); "" or "none" for none, returned as "". */
export function parseNatsUrl(text: string, setting: string): string {
  if (text === '' || text === 'none') return '';
  if (!/^(nats|tls|wss?):\/\/[^\s]+$/.test(text)) throw new SettingError(`${setting}: "${text}" must be a nats:// URL, or "none"`);
  return text;
}

/** A comma list of NATS URLs (nats.js tries each); "" or "none" for none, returned as "". */
export function parseNatsUrls(text: string, setting: string): string {
  if (text === '' || text === 'none') return '';
  return text
    .split(',')
    .map((url) => parseNatsUrl(url.trim(), setting))
    .join(',');
}
