import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { renderEnvFile } from '../../agent/src/env-format.js';
import { tempDir } from '../helpers/daemon.js';

const require = createRequire(import.meta.url);
const npmDotenv = require('dotenv') as { parse(src: string | Buffer): Record<string, string> };

/** Debian's python3-dotenv, else any python3 that has the package. */
const python = ['/usr/bin/python3', 'python3'].find((bin) => spawnSync(bin, ['-c', 'import dotenv'], { stdio: 'ignore' }).status === 0);

const values: Record<string, string> = {
  PLAIN: 'sk-abc123',
  SINGLE: "it's",
  DOUBLE: 'say "hi"',
  BOTH: `it's "both"`,
  DOLLAR: 'cost $5 and $HOME',
  BRACES: 'x ${HOME} y',
  BACKSLASH: 'C:\\path\\to',
  BACKSLASH_QUOTE: "a\\'b",
  HASH: 'abc #not a comment',
  EQUALS: 'a=b=c',
  LEADING: '   leading and trailing   ',
  UNICODE: 'héllo — 日本 🎉',
  NEWLINES: 'line one\nline two\n',
  PEM: '-----BEGIN KEY-----\nMIIB\\n+/=\n-----END KEY-----',
  EMPTY: '',
  UNC: '\\\\server\\share',
  DOLLAR_BACKSLASH: 'a\\$b',
};
const data = Object.fromEntries(Object.entries(values).map(([k, v]) => [k, Buffer.from(v)]));

t.test('sh: every value reads back exactly', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'x.sh');
  const rendered = renderEnvFile('sh', { ...data, BINARY: Buffer.from([0xff, 0x41]) });
  t.same(rendered.refused, []);
  writeFileSync(file, rendered.content);
  for (const [key, value] of Object.entries({ ...values })) {
    const out = execFileSync('sh', ['-c', `set -a; . "$1"; printf '%s' "$${key}"`, 'sh', file]);
    t.equal(out.toString(), value, key);
  }
  const binary = execFileSync('sh', ['-c', `set -a; . "$1"; printf '%s' "$BINARY"`, 'sh', file]);
  t.same([...binary], [0xff, 0x41], 'raw bytes too');
  t.same(renderEnvFile('sh', { NUL: Buffer.from([0x61, 0, 0x62]) }).refused.map((r) => r.key), ['NUL'], 'NUL cannot be in an environment: refused by key');
});

t.test('dotenv: exact in python-dotenv, and in npm dotenv where representable', async (t) => {
  if (!python) return t.fail('python3-dotenv is missing: install it (.ci/run does), the interop check cannot be skipped');
  const dir = tempDir(t);
  const file = join(dir, 'x.env');
  const rendered = renderEnvFile('dotenv', data);
  t.same(rendered.refused, [], 'every value here is representable');
  writeFileSync(file, rendered.content);
  const read = (interpolate: boolean) =>
    JSON.parse(execFileSync(python!, ['-c', `import json,sys; from dotenv import dotenv_values; print(json.dumps(dotenv_values(sys.argv[1], interpolate=${interpolate ? 'True' : 'False'})))`, file]).toString());
  const plain = read(true);
  const raw = read(false);
  for (const [key, value] of Object.entries(values)) t.equal(value.includes('${') ? raw[key] : plain[key], value, `python-dotenv ${key}`);
  t.ok(rendered.notes.some((n) => n.startsWith('BRACES') && n.includes('interpolate=False')), 'the ${ key gets a note');

  const npm = npmDotenv.parse(rendered.content);
  const caveats = new Set(rendered.notes.filter((n) => n.includes('npm dotenv')).map((n) => n.split(':')[0]));
  for (const [key, value] of Object.entries(values)) {
    if (caveats.has(key)) continue;
    t.equal(npm[key], value, `npm dotenv ${key}`);
  }
  t.ok(caveats.has('BOTH') && !caveats.has('BACKSLASH'), 'values npm dotenv cannot read exactly are named, and only those');

  const refused = renderEnvFile('dotenv', { NUL: Buffer.from('a\0b'), BAD_UTF8: Buffer.from([0xc3]), MULTI_END: Buffer.from('two\nlines\\'), END: Buffer.from('ends\\') });
  t.same(refused.refused.map((r) => r.key).sort(), ['BAD_UTF8', 'END', 'MULTI_END', 'NUL'], 'what dotenv cannot hold is refused by key, never altered');
});

t.test('json: exact for UTF-8, refuses other bytes', async (t) => {
  const rendered = renderEnvFile('json', { ...data, NUL: Buffer.from('a\0b'), BAD: Buffer.from([0xff]) });
  t.same(rendered.refused.map((r) => r.key), ['BAD']);
  const parsed = JSON.parse(rendered.content.toString());
  for (const [key, value] of Object.entries(values)) t.equal(parsed[key], value, key);
  t.equal(parsed.NUL, 'a\0b');
});

/**
 * Values that try to run code when a .env file is sourced (`set -a; . FILE`), and CR / CRLF,
 * which python-dotenv and npm dotenv turn into LF. Each marker file names the value that would
 * have made it; none may appear, whoever reads the file.
 */
const hostile: Record<string, string> = {
  SUBST: '$(touch PWNED_subst)',
  BACKTICK: '`touch PWNED_backtick`',
  QUOTE_SUBST: "it's $(touch PWNED_quote_subst)",
  QUOTE_BACKTICK: "it's `touch PWNED_quote_backtick`",
  BREAK_SINGLE: "'; touch PWNED_break_single; '",
  BREAK_DOUBLE: '"; touch PWNED_break_double; "',
  BREAK_BOTH: `it's "x"; touch PWNED_break_both; "`,
  BACKSLASH_BREAK: "\\'; touch PWNED_backslash; '\\",
  ESCAPED_SUBST: 'a\\$(touch PWNED_escaped)',
  DOUBLE_BACKSLASH_SUBST: 'a\\\\$(touch PWNED_double_backslash)',
  MULTILINE: "one\n$(touch PWNED_multi)\n'\ntwo",
  NEWLINE_KEY: "x\nOTHER=$(touch PWNED_newline_key)\n",
  CR: 'a\rb',
  CRLF: 'line one\r\nline two',
  CR_SUBST: 'x\r$(touch PWNED_cr)',
};
const mustLeaveOut = ['BACKSLASH_BREAK', 'CR', 'CRLF', 'CR_SUBST', 'DOUBLE_BACKSLASH_SUBST', 'MULTILINE', 'QUOTE_BACKTICK', 'QUOTE_SUBST'];

t.test('dotenv: inert when sourced by sh, exact in every reader, or left out naming sh and json', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'x.env');
  const all = { ...values, ...hostile };
  const rendered = renderEnvFile('dotenv', Object.fromEntries(Object.entries(all).map(([k, v]) => [k, Buffer.from(v)])));
  writeFileSync(file, rendered.content);
  const refused = rendered.refused.map((r) => r.key).sort();
  t.same(refused, mustLeaveOut, 'exactly the values no dotenv quoting holds both inert and exact are left out');
  for (const { key, reason } of rendered.refused) {
    t.match(reason, /sh or json/, `${key}: the reason names the sh and json formats`);
    t.notOk(reason.includes(all[key]) || reason.includes('PWNED'), `${key}: the reason never repeats the value`);
  }
  const written = Object.keys(all).filter((k) => !refused.includes(k));
  const markers = () => readdirSync(dir).filter((n) => n.startsWith('PWNED'));

  // Sourced by every shell there is, in the dir the markers would land in; the environment it
  // exports is read back by node.
  for (const shell of ['sh', 'dash', 'bash'].filter((s) => spawnSync(s, ['-c', 'true']).status === 0)) {
    const run = spawnSync(shell, ['-c', `set -a; . ./x.env; exec "$0" -e 'process.stdout.write(JSON.stringify(process.env))'`, process.execPath], { cwd: dir, env: {} });
    t.same(markers(), [], `${shell}: no command ran`);
    t.equal(run.status, 0, `${shell}: the file is valid sh`);
    const env = JSON.parse(run.stdout.toString() || '{}') as Record<string, string>;
    for (const key of written) t.equal(env[key], all[key], `${shell}: ${key} exact`);
  }

  const npm = npmDotenv.parse(readFileSync(file));
  const caveats = new Set(rendered.notes.filter((n) => n.includes('npm dotenv')).map((n) => n.split(':')[0]));
  for (const key of written) if (!caveats.has(key)) t.equal(npm[key], all[key], `npm dotenv: ${key} exact`);
  for (const key of mustLeaveOut) t.notOk(key in npm, `npm dotenv: ${key} absent, not altered`);

  t.test('python-dotenv', async (t) => {
    if (!python) return t.fail('python3-dotenv is missing: install it (.ci/run does), the interop check cannot be skipped');
    const read = (interpolate: boolean) =>
      JSON.parse(execFileSync(python!, ['-c', `import json,sys; from dotenv import dotenv_values; print(json.dumps(dotenv_values(sys.argv[1], interpolate=${interpolate ? 'True' : 'False'})))`, file], { cwd: dir }).toString());
    const [plain, raw] = [read(true), read(false)];
    for (const key of written) t.equal(all[key].includes('${') ? raw[key] : plain[key], all[key], `python-dotenv: ${key} exact`);
    for (const key of mustLeaveOut) t.notOk(key in plain, `python-dotenv: ${key} absent, not altered`);
    t.same(markers(), [], 'python-dotenv: no command ran');
  });
});

t.test('the agent reports a value left out of a dotenv file by key and reason, never the value', async (t) => {
  const { render } = await import('../../agent/src/render.js');
  const secret = { name: 'app', resourceGroup: '', uid: 'u', version: 1, type: 'opaque', mount: { kind: 'env' as const, path: 'envs', subPaths: {}, format: 'dotenv' as const }, data: { OK: Buffer.from('fine'), CODE: Buffer.from("it's $(touch PWNED)"), CR: Buffer.from('a\r\nb') } };
  const rendered = render([secret]);
  t.match(rendered.problems, [/key "CODE" left out of the dotenv env file: .*sh or json/, /key "CR" left out of the dotenv env file: it holds a carriage return.*sh or json/].sort());
  t.notOk(rendered.problems.join('\n').includes('PWNED'), 'never the value');
  t.equal(rendered.dirs.get('envs')!.get('app.env')!.toString(), "OK='fine'\n");
  t.same(rendered.env, { OK: 'fine', CODE: "it's $(touch PWNED)", CR: 'a\r\nb' }, 'exec still gets every value exactly');
});
