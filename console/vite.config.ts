import { defineConfig } from "vite";

// Built to static files that Kraud.Api serves at /console (Kraud.Api/Console). Everything is an external file:
// the Content-Security-Policy allows no inline script or style, and no eval.
export default defineConfig({
  base: "/console/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    assetsInlineLimit: 0, // no data: URLs for assets: the policy's img-src is 'self'
    modulePreload: { polyfill: false }, // Chromium, Firefox and Safari all support modulepreload
    sourcemap: true,
    target: "es2022",
  },
});
