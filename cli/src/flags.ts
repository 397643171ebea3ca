/**
 * Flags several commands share, and how their text becomes request fields: the scope
 * (`--tenant`, `--resource-group`, `--tenant-wide`), the mount, whole numbers, durations, repeatable flags.
 * A bad value is a UsageError naming the flag (exit 2).
 */
import { Option, type Command } from 'commander';
import { parseDuration } from '../../shared/src/settings.js';
import { parseTime } from '../../shared/src/validate.js';
import { readMap, UsageError } from './inputs.js';

export interface ScopeOptions {
  tenant?: string;
  resourceGroup?: string;
  tenantWide?: boolean;
}

/** A repeatable flag's values, in order. */
export const collect = (value: string, previous: string[] = []) => [...previous, value];

export function withScope(command: Command): Command {
  return command
    .option('--tenant <tenant>', 'tenant (default: "default")')
    .option('--resource-group <group>', 'resource group ("" main tenant, "*" tenant-wide)')
    .option('--tenant-wide', 'the tenant-wide scope (resource group "*")');
}

/** Deployments live in a tenant or a resource group, never tenant-wide. */
export function withDeploymentScope(command: Command): Command {
  return command.option('--tenant <tenant>', 'tenant (default: "default")').option('--resource-group <group>', 'resource group ("" main tenant)');
}

export function scopeOf(o: ScopeOptions): { tenant: string; resource_group: string } {
  if (o.tenantWide && o.resourceGroup !== undefined && o.resourceGroup !== '*') throw new UsageError('--tenant-wide and --resource-group disagree');
  return { tenant: o.tenant ?? '', resource_group: o.tenantWide ? '*' : (o.resourceGroup ?? '') };
}

/** Whether the scope flags were given (they then override a file's scope). */
export function scopeGiven(o: ScopeOptions): boolean {
  return o.tenant !== undefined || o.resourceGroup !== undefined || Boolean(o.tenantWide);
}

export function positiveInt(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} "${text}" must be a whole number of 1 or more`);
  return n;
}

/** A duration flag (shared/src/settings.ts syntax) as whole seconds of 1 or more. */
export function durationSeconds(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  const ms = parseDuration(text, flag);
  if (ms < 1000 || ms % 1000 !== 0) throw new UsageError(`${flag}: "${text}" must be whole seconds, 1s or more`);
  return ms / 1000;
}

/**
 * A point in time: an RFC 3339 date (`2026-01-31`, `2026-01-31T12:00:00Z`), or a duration before
 * now (`720h`: 30 days ago; a bare number is seconds). As an RFC 3339 time.
 */
export function timeOrAgo(text: string | undefined, flag: string): string | undefined {
  if (text === undefined) return undefined;
  if (/^\d+(\.\d+)?(ms|s|m|h)?$/.test(text.trim())) {
    const ago = new Date(Date.now() - parseDuration(text, flag));
    if (Number.isNaN(ago.getTime())) throw new UsageError(`${flag}: "${text}" reaches back before any date there is; give a date (2026-01-31) or a shorter duration`);
    return ago.toISOString();
  }
  const ms = parseTime(text.trim());
  if (ms === undefined) throw new UsageError(`${flag}: "${text}" is neither a date (2026-01-31; with a time, its zone too: 2026-01-31T12:00:00Z) nor a duration before now (720h, 90m; a bare number is seconds)`);
  return new Date(ms).toISOString();
}

export function withMount(command: Command): Command {
  return command
    .addOption(new Option('--mount <kind>', 'how the agent writes it').choices(['file', 'env']))
    .option('--path <path>', 'mount path relative to $BENTOML_HOME (default on create: the name)')
    .option('--subpath <key=sub>', 'per-key sub-path under the mount path (repeatable)', collect)
    .addOption(new Option('--format <format>', 'env file format').choices(['dotenv', 'sh', 'json']));
}

export function mountOf(o: { mount?: string; path?: string; subpath?: string[]; format?: string }) {
  return o.mount || o.path || o.subpath || o.format
    ? { kind: o.mount ?? '', path: o.path ?? '', sub_paths: readMap(o.subpath, '--subpath'), format: o.format ?? '' }
    : undefined;
}
