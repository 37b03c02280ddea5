import { defineConfig } from "vite";

// The UI lives under /ui/ on Sextant's HTTP port; `npm run dev` proxies the
// APIs to a server on :7070.
export default defineConfig({
  base: "/ui/",
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: {
    target: "es2022",
    assetsDir: "assets",
    reportCompressedSize: false,
    chunkSizeWarningLimit: 400,
  },
  server: {
    proxy: {
      "/api": "http://127.0.0.1:7070",
      "/jaeger": "http://127.0.0.1:7070",
    },
  },
});
