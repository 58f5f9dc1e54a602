import { defineConfig } from 'vitest/config';
import react from '@vitejs/plugin-react';

// `npm run dev` forwards the API to HUB_URL (default http://127.0.0.1:8787), so the site stays same-origin.
const hub = process.env.HUB_URL ?? 'http://127.0.0.1:8787';

export default defineConfig({
  base: './',
  plugins: [react()],
  // Sessions need Hub to know the dev server's address: set its app_url setting to it.
  server: { proxy: { '/api': hub, '/v1': hub, '/auth': hub } },
  test: { include: ['src/**/*.test.ts'] },
});
