/**
 * Bundles lockbox-agent into one file, dist/agent/lockbox-agent.js (what the `lockbox-agent`
 * command runs), from what tsc built. A sidecar starts with every pod, and resolving and reading
 * the ~200 modules of grpc-js, proto-loader, protobufjs, pino and commander one by one was a
 * fifth of its start-to-ready time (bench/agent-footprint.ts); one file skips that.
 * - nats stays outside: the agent imports it only once it is ready (and `once` never does).
 * - The bundled CommonJS modules call require() for node's built-ins; an ES module has none,
 *   so the banner makes one.
 * - The bundle sits in dist/agent/, so shared/src/proto.ts still finds proto/ by walking up.
 * Run by `npm run build` after tsc.
 */
import { build } from 'esbuild';

await build({
  entryPoints: ['dist/agent/src/main.js'],
  outfile: 'dist/agent/lockbox-agent.js',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['nats'],
  sourcemap: true,
  logLevel: 'warning',
  banner: { js: "import { createRequire as lockboxCreateRequire } from 'node:module'; const require = lockboxCreateRequire(import.meta.url);" },
});
