/**
 * Per-file line coverage, checked after `tap` (npm test): tap's own thresholds are one global
 * figure, which a well-covered file can hide a bare one behind. Every product source file
 * (shared, daemon, cli, agent) must appear in the coverage report — a file no test loads is
 * reported as missing, not skipped; only a file of types alone is left out — and reach LINES
 * percent of its lines. The spawned
 * programs count too: they run from dist/ with source maps, and the report maps them back.
 *
 * It also checks the totals over those files against the thresholds in package.json's `tap`
 * section. tap's own check of them is off (allow-incomplete-coverage): its totals would count
 * node_modules too, which the agent bundle's source map names beside agent/src.
 *
 * Usage: node scripts/coverage-per-file.mjs [.tap/report/coverage-summary.json]
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';

const LINES = 80;
const root = resolve(import.meta.dirname, '..');
const summaryFile = resolve(root, process.argv[2] ?? '.tap/report/coverage-summary.json');
const productDirs = ['shared/src', 'daemon/src', 'cli/src', 'agent/src'];

let summary;
try {
  summary = JSON.parse(readFileSync(summaryFile, 'utf8'));
} catch (err) {
  console.error(`coverage-per-file: cannot read ${relative(root, summaryFile)} (${err.code ?? err.message}); run tap with the json-summary report first`);
  process.exit(1);
}
const entries = new Map(Object.entries(summary).filter(([file]) => file !== 'total').map(([file, s]) => [resolve(root, file), s]));
const covered = new Map([...entries].map(([file, s]) => [file, s.lines.pct]));
const thresholds = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).tap;
const totals = { lines: [0, 0], statements: [0, 0], functions: [0, 0], branches: [0, 0] };

/** A file of types alone compiles to `export {};`: there is nothing in it to run or cover. */
function typeOnly(built) {
  let js;
  try {
    js = readFileSync(built, 'utf8');
  } catch {
    return false;
  }
  return js.replace(/\/\/.*$/gm, '').replace(/\s+/g, '') === 'export{};';
}

const failures = [];
let checked = 0;
for (const dir of productDirs) {
  for (const name of readdirSync(join(root, dir), { recursive: true, encoding: 'utf8' })) {
    if (!name.endsWith('.ts') || name.endsWith('.d.ts')) continue;
    const file = join(root, dir, name);
    if (typeOnly(join(root, 'dist', dir, name.replace(/\.ts$/, '.js')))) continue;
    checked++;
    const pct = covered.get(file);
    const counts = entries.get(file);
    if (counts) for (const kind of Object.keys(totals)) (totals[kind][0] += counts[kind].covered), (totals[kind][1] += counts[kind].total);
    if (pct === undefined) failures.push(`${relative(root, file)}: not loaded by any test`);
    else if (pct < LINES) failures.push(`${relative(root, file)}: ${pct} % of lines (needs ${LINES} %)`);
  }
}
for (const [kind, [hit, all]] of Object.entries(totals)) {
  const pct = all ? Math.round((hit / all) * 10000) / 100 : 0;
  console.log(`coverage-per-file: product files, ${kind}: ${pct} % (${hit}/${all}; needs ${thresholds[kind]} %)`);
  if (pct < thresholds[kind]) failures.push(`${kind} over the product files: ${pct} % (needs ${thresholds[kind]} %)`);
}
for (const line of failures) console.log(`coverage-per-file: ${line}`);
console.log(`coverage-per-file: ${checked - failures.length} of ${checked} product files at ≥ ${LINES} % of lines`);
process.exit(failures.length ? 1 : 0);
