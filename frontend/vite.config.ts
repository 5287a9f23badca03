import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";

// The backend serves `dist` at the site root (index.html for every page
// route, far-future caching for the hashed files under /assets/).
export default defineConfig({
  base: "/",
  plugins: [react()],
  build: {
    outDir: "dist",
    assetsDir: "assets",
    emptyOutDir: true,
    sourcemap: false,
  },
  server: {
    // `npm run dev` talks to a local `manage.py runserver` on port 8000.
    proxy: {
      "/api": { target: "http://127.0.0.1:8000", changeOrigin: false },
    },
  },
  test: {
    environment: "node",
    include: ["src/**/*.test.{ts,tsx}"],
    restoreMocks: true,
  },
});
