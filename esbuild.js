// Bundles the extension host code, the engine worker, the CLI and the webview app.
// Usage: node esbuild.js [--production] [--watch]
const esbuild = require('esbuild');
const fs = require('fs');

const production = process.argv.includes('--production');
const watch = process.argv.includes('--watch');

/** transformers.js imports sharp for images; we never touch images, so it resolves to an empty module. */
const stubSharp = {
  name: 'stub-sharp',
  setup(build) {
    build.onResolve({ filter: /^sharp$/ }, () => ({ path: 'sharp', namespace: 'stub' }));
    build.onLoad({ filter: /.*/, namespace: 'stub' }, () => ({ contents: 'module.exports = {};', loader: 'js' }));
  },
};

const nodeCommon = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: !production,
  minify: production,
  // Native or self-locating packages stay outside the bundle and ship as files (see .vscodeignore).
  external: ['vscode', 'onnxruntime-node', 'onnxruntime-web'],
  plugins: [stubSharp],
  // transformers.js' node build reads import.meta.url; in CJS it falls back to __filename.
  define: { 'import.meta.url': 'undefined' },
  logLevel: 'warning',
};

const builds = [
  { ...nodeCommon, entryPoints: { extension: 'src/extension.ts' }, outdir: 'out' },
  { ...nodeCommon, entryPoints: { worker: 'src/engine/worker.ts' }, outdir: 'out' },
  { ...nodeCommon, entryPoints: { cli: 'src/cli/main.ts' }, outdir: 'out', banner: { js: '#!/usr/bin/env node' } },
  {
    bundle: true,
    platform: 'browser',
    target: 'chrome114',
    format: 'iife',
    sourcemap: !production,
    minify: production,
    entryPoints: { main: 'webview/main.ts' },
    outdir: 'out/webview',
    logLevel: 'warning',
  },
  // The standalone HTML report's script and styles (report.js, report.css), which src/export/report.ts
  // inlines into each report: no source map (nothing for one to point at), any current browser.
  {
    bundle: true,
    platform: 'browser',
    target: ['chrome114', 'firefox115', 'safari16'],
    format: 'iife',
    minify: production,
    entryPoints: { report: 'webview/report/main.ts' },
    outdir: 'out/webview',
    logLevel: 'warning',
  },
  // The integration suite for the extension host (test/harness/runIntegration.ts); never shipped.
  ...(production
    ? []
    : [
        {
          ...nodeCommon,
          entryPoints: {
            'suite/index': 'test/integration/runSuite.ts',
            ...Object.fromEntries(
              fs
                .readdirSync('test/integration')
                .filter((f) => f.endsWith('.test.ts'))
                .map((f) => [`integration/${f.slice(0, -3)}`, `test/integration/${f}`]),
            ),
          },
          outdir: 'out/test',
          sourcemap: 'inline',
          logOverride: { 'require-resolve-not-external': 'silent' }, // mocha's unused parallel mode
        },
      ]),
].filter((b) => Object.values(b.entryPoints).every((p) => fs.existsSync(p)));

async function main() {
  fs.rmSync('out/test', { recursive: true, force: true }); // deleted tests must not linger
  fs.mkdirSync('out/webview', { recursive: true });
  if (fs.existsSync('media/panel.css')) fs.copyFileSync('media/panel.css', 'out/webview/panel.css');
  if (watch) {
    for (const b of builds) await (await esbuild.context(b)).watch();
    return;
  }
  await Promise.all(builds.map((b) => esbuild.build(b)));
  if (fs.existsSync('out/cli.js')) fs.chmodSync('out/cli.js', 0o755);
  console.log(`built ${builds.map((b) => Object.keys(b.entryPoints)[0]).join(', ')}${production ? ' (production)' : ''}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
