// Builds the dashboard into dist/: `node build.mjs` (development React, so StrictMode
// double-runs effects) or `node build.mjs --production` (minified).
import { build } from "esbuild";
import { copyFile, mkdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL(".", import.meta.url));
const production = process.argv.includes("--production");

await mkdir(`${here}dist`, { recursive: true });
await build({
  entryPoints: [`${here}src/main.tsx`],
  bundle: true,
  format: "esm",
  outfile: `${here}dist/app.js`,
  sourcemap: !production,
  minify: production,
  define: { "process.env.NODE_ENV": JSON.stringify(production ? "production" : "development") },
  // rtnb-react.js sits outside this folder (see tsconfig.json "paths"): its `import "react"`
  // must find this folder's React, the one the app uses.
  nodePaths: [`${here}node_modules`],
  logLevel: "warning",
});
await copyFile(`${here}index.html`, `${here}dist/index.html`);
console.log(`built ${here}dist (${production ? "production" : "development"})`);
