import { defineConfig } from 'vite';

// The dashboard lives under /ui/ on the serveml server (see src/api/web_routes.cc); `GET /`
// answers index.html to browsers. Everything is bundled: no CDN, no external fonts, and no
// inline scripts or styles (the server sends a strict Content-Security-Policy).
export default defineConfig({
  base: '/ui/',
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    target: 'es2020',
    sourcemap: false,
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 400,
  },
  server: {
    // `npm run dev` against a local `serveml serve` on :8000.
    proxy: { '/api': 'http://127.0.0.1:8000' },
  },
});
