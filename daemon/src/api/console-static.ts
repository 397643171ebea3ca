/**
 * Serves the web console (console/, built by `npm run build` into dist/console/) at /ui/ on the
 * REST address. The files are read once at start-up into a table: a request can only ever get
 * one of those files, whatever its path says (no path is joined onto the disk, so `..` and
 * symlinks lead nowhere). Every answer carries the security headers:
 * - a Content-Security-Policy that allows script, style and fetches from this origin only (no
 *   inline script or style, no eval, no other origin), and no framing;
 * - X-Frame-Options: DENY for browsers without frame-ancestors, nosniff, no referrer.
 * The console holds no secret itself: it calls the public REST API with the token the user pastes.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';

export const consoleSecurityHeaders: Record<string, string> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; font-src 'self'; connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

const contentTypes: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
};

/**
 * Where `npm run build` put the console: dist/console, found from this file whether it runs from
 * dist/ (dist/daemon/src/api) or from the sources (daemon/src/api, as the tests do). Only a
 * directory inside dist/ qualifies, never console/ of the sources.
 */
export function defaultConsoleDir(): string {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
  const candidates = [join(root, 'dist', 'console'), join(root, 'console')].filter((dir) => basename(dirname(dir)) === 'dist');
  return candidates.find((dir) => existsSync(join(dir, 'index.html'))) ?? candidates[0];
}

/** Every file under `dir` by its URL path below /ui/ (e.g. "assets/index-1a2b.js"). */
function readTree(dir: string): Map<string, { body: Buffer; type: string }> {
  const files = new Map<string, { body: Buffer; type: string }>();
  const walk = (at: string) => {
    for (const entry of readdirSync(at)) {
      const path = join(at, entry);
      const stat = statSync(path);
      if (stat.isDirectory()) walk(path);
      else if (stat.isFile() && contentTypes[extname(entry)]) files.set(relative(dir, path).split(sep).join('/'), { body: readFileSync(path), type: contentTypes[extname(entry)] });
    }
  };
  walk(dir);
  return files;
}

/**
 * Registers /ui and /ui/* on `app`. Returns false (and registers nothing) when the console was
 * not built; the caller says so in its log.
 */
export function registerConsole(app: FastifyInstance, dir: string): boolean {
  if (!existsSync(join(dir, 'index.html'))) return false;
  const files = readTree(dir);
  const index = files.get('index.html')!;
  app.get('/ui', async (_request, reply) => reply.code(308).header('location', '/ui/').send());
  app.get('/ui/*', async (request, reply) => {
    const path = (request.params as { '*': string })['*'];
    // The console routes by the URL's #fragment, so the only page is index.html; anything else is an asset or 404.
    const file = path === '' || path === 'index.html' ? index : files.get(path);
    if (!file) return reply.callNotFound();
    void reply.headers(consoleSecurityHeaders).header('content-type', file.type);
    return reply.send(file.body);
  });
  return true;
}
