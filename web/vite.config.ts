/**
 * The web client's build. In production the API serves `dist/` on its own origin; in development Vite
 * proxies `/graphql` (HTTP and SSE) and `/v1` to the API at CHAINMETER_API_URL (default the `npm start` one).
 */
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

const api = process.env.CHAINMETER_API_URL ?? 'http://127.0.0.1:4000';

export default defineConfig({
  plugins: [react()],
  build: { outDir: 'dist', sourcemap: true, target: 'es2022', chunkSizeWarningLimit: 600 },
  server: { proxy: { '/graphql': { target: api, ws: true }, '/v1': api } },
});
