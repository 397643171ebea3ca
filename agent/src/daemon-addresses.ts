/**
 * The daemons an agent may talk to (`--addr`): a comma list of host:port, gRPC's own
 * `ipv4:a:p,b:p` / `ipv6:[a]:p,[b]:p` forms, `dns:host:port`, or a single `unix:` path. A host
 * name is looked up each time the agent goes round the list, so a name that resolves to several
 * replicas (a headless Kubernetes service) lists them all, and a changed record is followed.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { parseHostPort, SettingError } from '../../shared/src/settings.js';

export interface DaemonAddress {
  /** What gRPC connects to (host:port, an IP when a name was looked up, or unix:…). */
  target: string;
  /** The name TLS verifies when `target` came from looking it up. */
  serverName?: string;
}

type Entry = { kind: 'fixed'; target: string } | { kind: 'name'; host: string; port: number };

/** Parsed once at start-up: a bad entry is a SettingError naming it. */
export function parseDaemonAddresses(text: string, setting = '--addr'): Entry[] {
  if (/^(unix|unix-abstract):/.test(text)) return [{ kind: 'fixed', target: text }];
  const family = /^(ipv4|ipv6|dns):/.exec(text)?.[1];
  const list = (family ? text.slice(family.length + 1) : text).split(',').map((s) => s.trim().replace(/^\/\/\/?/, ''));
  if (list.length === 0 || list.some((s) => s === '')) throw new SettingError(`${setting}: "${text}" must be host:port, or a comma list of them`);
  return list.map((item) => {
    const { host, port } = parseHostPort(item, setting);
    return isIP(host) ? { kind: 'fixed', target: host.includes(':') ? `[${host}]:${port}` : `${host}:${port}` } : { kind: 'name', host, port };
  });
}

/** The addresses to try, in order, names looked up now (a name that cannot be looked up is kept as it is: gRPC tries it itself). */
export async function expandDaemonAddresses(entries: Entry[]): Promise<DaemonAddress[]> {
  const out: DaemonAddress[] = [];
  for (const entry of entries) {
    if (entry.kind === 'fixed') {
      out.push({ target: entry.target });
      continue;
    }
    const found = await lookup(entry.host, { all: true }).catch(() => []);
    if (found.length <= 1) out.push({ target: `${entry.host}:${entry.port}` });
    else for (const a of found) out.push({ target: a.family === 6 ? `[${a.address}]:${entry.port}` : `${a.address}:${entry.port}`, serverName: entry.host });
  }
  return out;
}
