/**
 * A small mutation-testing pass over the modules whose mistakes cost most: the atomic writer,
 * token auth, the crypto and the outbox. StrykerJS has no runner for tap, and its command runner
 * would run the whole suite per mutant; this runs, per mutant, only the tests that guard the
 * module, in a scratch copy of the checkout (the work tree is never touched).
 *
 * 1. Copy the tracked files to a temp dir, node_modules linked, and build it once (the tests
 *    that spawn programs run dist/).
 * 2. Per module, list mutants: one change on one line — a comparison flipped (=== ↔ !==, < ↔ >=,
 *    > ↔ <=), && ↔ ||, a negation dropped, a `throw` guard disabled (its `if (…)` made false),
 *    a boolean literal returned flipped.
 * 3. Per mutant: write it, run the module's tests with a time limit (they import the module's
 *    source, so no rebuild), restore the line. A mutant whose tests still pass "survived"; a
 *    failing or timed-out run "killed" it.
 * 4. Print the survivors, file:line with the mutated line, and a score per module.
 *
 * Usage: node scripts/mutate.mjs [module …] [--max N] [--timeout S]
 * Modules: writer, auth, crypto, outbox (default: all). --max caps mutants per module (40).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const modules = {
  writer: { file: 'agent/src/atomic-writer.ts', tests: ['test/agent/atomic-writer.test.ts', 'test/agent/disk-full.test.ts'] },
  auth: { file: 'daemon/src/security/auth.ts', tests: ['test/daemon/auth.test.ts', 'test/daemon/access.test.ts'] },
  crypto: { file: 'shared/src/crypto.ts', tests: ['test/shared/crypto.test.ts'] },
  outbox: { file: 'daemon/src/delivery/outbox-publisher.ts', tests: ['test/daemon/notices.test.ts'] },
};

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  if (i === -1) return fallback;
  const value = Number(args[i + 1]);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} takes a positive whole number`);
  args.splice(i, 2);
  return value;
};
const max = option('--max', 40);
const timeoutSeconds = option('--timeout', 120);
const chosen = args.length ? args : Object.keys(modules);
for (const name of chosen) if (!modules[name]) throw new Error(`unknown module "${name}"; choose from ${Object.keys(modules).join(', ')}`);

/** Mutation operators: each a pattern and its replacement, applied to one occurrence per mutant. */
const operators = [
  [/ === /g, ' !== '],
  [/ !== /g, ' === '],
  [/ < /g, ' >= '],
  [/ > /g, ' <= '],
  [/ <= /g, ' > '],
  [/ >= /g, ' < '],
  [/ && /g, ' || '],
  [/ \|\| /g, ' && '],
  [/\(!(?=[\w.])/g, '('],
  [/return true;/g, 'return false;'],
  [/return false;/g, 'return true;'],
];

/** (2) Every mutant of a file: the line number, the mutated line, what changed. */
function mutantsOf(source) {
  const lines = source.split('\n');
  const out = [];
  lines.forEach((line, index) => {
    const code = line.trim();
    if (code.startsWith('//') || code.startsWith('*') || code.startsWith('/*') || code.startsWith('import ')) return;
    if (/^\s*if \(.*\) throw /.test(line)) out.push({ index, line: line.replace(/if \((.*)\) throw /, 'if (false) throw '), what: 'guard disabled' });
    for (const [pattern, replacement] of operators) {
      for (const match of line.matchAll(pattern)) {
        const mutated = line.slice(0, match.index) + line.slice(match.index).replace(match[0], replacement);
        out.push({ index, line: mutated, what: `${match[0].trim() || match[0]} → ${replacement.trim()}` });
      }
    }
  });
  return out;
}

/** Spread a cap evenly over the file rather than taking its first lines only. */
function sample(list, n) {
  if (list.length <= n) return list;
  const step = list.length / n;
  return Array.from({ length: n }, (_, i) => list[Math.floor(i * step)]);
}

// (1) the scratch copy
const scratch = mkdtempSync(join(tmpdir(), 'lockbox-mutate-'));
process.on('exit', () => rmSync(scratch, { recursive: true, force: true }));
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(130));
const tracked = execFileSync('git', ['ls-files', '-z'], { cwd: root, encoding: 'utf8' }).split('\0').filter(Boolean);
for (const file of tracked) {
  mkdirSync(dirname(join(scratch, file)), { recursive: true });
  cpSync(join(root, file), join(scratch, file));
}
symlinkSync(join(root, 'node_modules'), join(scratch, 'node_modules'));
console.log(`mutate: scratch copy in ${scratch}; building it once`);
execFileSync('npm', ['run', 'build'], { cwd: scratch, stdio: 'ignore' });

const runTests = (tests) =>
  spawnSync('npx', ['tap', '--disable-coverage', '--reporter', 'silent', '--bail', ...tests], {
    cwd: scratch,
    stdio: 'ignore',
    timeout: timeoutSeconds * 1000,
    env: { ...process.env, CI: 'true' },
  });

const report = [];
for (const name of chosen) {
  const { file, tests } = modules[name];
  const path = join(scratch, file);
  const original = readFileSync(path, 'utf8');
  if (runTests(tests).status !== 0) throw new Error(`mutate: the tests of ${name} fail before any mutation; fix them first`);
  const mutants = sample(mutantsOf(original), max);
  const survivors = [];
  for (const [n, mutant] of mutants.entries()) {
    const lines = original.split('\n');
    lines[mutant.index] = mutant.line;
    writeFileSync(path, lines.join('\n')); // (3)
    try {
      const result = runTests(tests);
      const killed = result.status !== 0 || result.signal !== null;
      if (!killed) survivors.push(mutant);
      process.stdout.write(`mutate: ${name} ${n + 1}/${mutants.length} line ${mutant.index + 1} (${mutant.what}): ${killed ? 'killed' : 'SURVIVED'}\n`);
    } finally {
      writeFileSync(path, original);
    }
  }
  report.push({ name, file, total: mutants.length, survivors });
}

// (4)
console.log('\nmutate: results');
for (const { name, file, total, survivors } of report) {
  console.log(`${name} (${file}): ${total - survivors.length}/${total} killed`);
  for (const s of survivors) console.log(`  survived ${file}:${s.index + 1} (${s.what}): ${s.line.trim()}`);
}
