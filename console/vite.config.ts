/**
 * Builds the web console into dist/console/, which lockboxd serves at /ui/ (daemon/src/api/
 * console-static.ts). The output must run under a strict Content-Security-Policy: no inline
 * script or style, nothing fetched from anywhere but the daemon itself (no CDN; works offline).
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root: here,
  base: '/ui/',
  logLevel: 'warn',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: fileURLToPath(new URL('../dist/console', import.meta.url)),
    emptyOutDir: true,
    assetsInlineLimit: 0, // no data: URLs; every asset is a file the CSP allows as 'self'
    modulePreload: { polyfill: false }, // the polyfill would be inline script
    cssCodeSplit: false,
    sourcemap: false,
    reportCompressedSize: false,
  },
});
