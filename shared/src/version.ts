/**
 * The version of lockbox, from package.json (the one source of it), for `--version` of every
 * program and the `lockbox_build_info` metric. Found by walking up from this module, so the same
 * code works from the sources, from dist/ and from the agent's bundle (dist/agent/).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function readVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'lockbox' && pkg.version) return pkg.version;
    }
    const parent = dirname(dir);
    if (parent === dir) return 'unknown';
    dir = parent;
  }
}

export const lockboxVersion = readVersion();

/** What `--version` prints: "lockboxd 0.1.0". */
export function versionLine(program: string): string {
  return `${program} ${lockboxVersion}`;
}
