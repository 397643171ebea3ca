import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
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
  TRAILING_BACKSLASH: 'ends\\',
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
  t.same(renderEnvFile('sh', { NUL: Buffer.from([0x61, 0, 0x62]) }).refused, ['NUL'], 'NUL cannot be in an environment: refused by key');
});

t.test('dotenv: exact in python-dotenv, and in npm dotenv where representable', { skip: python ? false : 'python dotenv not installed' }, async (t) => {
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
  t.ok(caveats.has('BACKSLASH'), 'values npm dotenv cannot read exactly are named');

  const refused = renderEnvFile('dotenv', { NUL: Buffer.from('a\0b'), BAD_UTF8: Buffer.from([0xc3]), MULTI_END: Buffer.from('two\nlines\\') });
  t.same(refused.refused.sort(), ['BAD_UTF8', 'MULTI_END', 'NUL'], 'what dotenv cannot hold is refused by key, never altered');
});

t.test('json: exact for UTF-8, refuses other bytes', async (t) => {
  const rendered = renderEnvFile('json', { ...data, NUL: Buffer.from('a\0b'), BAD: Buffer.from([0xff]) });
  t.same(rendered.refused, ['BAD']);
  const parsed = JSON.parse(rendered.content.toString());
  for (const [key, value] of Object.entries(values)) t.equal(parsed[key], value, key);
  t.equal(parsed.NUL, 'a\0b');
});
