import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const root = dirname(fileURLToPath(import.meta.url));

/**
 * The dashboard builds to static files (apps/dashboard/dist) that the API serves at `/` under a strict
 * Content-Security-Policy: no inline script or style, so nothing here may inject any. `npm run
 * dashboard:dev` serves it with Vite and forwards /api to a running API (DASHBOARD_API, default
 * http://127.0.0.1:8080).
 */
export default defineConfig({
  root,
  base: '/',
  publicDir: 'public',
  oxc: { jsx: { runtime: 'automatic' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsDir: 'assets',
    target: 'es2022',
    sourcemap: false,
    // The preload polyfill is for old browsers; every browser the dashboard supports has modulepreload.
    modulePreload: { polyfill: false },
    // Keep every asset a file: a data: URL for a script or style would need a CSP exception.
    assetsInlineLimit: 0,
    reportCompressedSize: false,
  },
  server: {
    proxy: { '/api': { target: process.env.DASHBOARD_API ?? 'http://127.0.0.1:8080', changeOrigin: false } },
  },
});
