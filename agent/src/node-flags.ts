/**
 * The node flags lockbox-agent runs with, read from its own shebang (`#!/usr/bin/env -S node …`),
 * so benchmarks and tests start the agent exactly as the installed `lockbox-agent` command does.
 */
import { readFileSync } from 'node:fs';

export function agentNodeFlags(): string[] {
  // The sibling entry point: main.js when built, main.ts under the test runner.
  const main = new URL(import.meta.url.endsWith('.ts') ? './main.ts' : './main.js', import.meta.url);
  const first = readFileSync(main, 'utf8').split('\n', 1)[0];
  const match = /^#!\/usr\/bin\/env\s+(?:-S\s+)?node((?:\s+--[\w-]+(?:=\S+)?)*)\s*$/.exec(first);
  if (!match) throw new Error(`unexpected shebang in lockbox-agent's entry point: ${first}`);
  return match[1].trim().split(/\s+/).filter(Boolean);
}
