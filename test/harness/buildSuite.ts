// Bundles the integration suite for the extension host, mirroring the entry esbuild.js has:
//   test/integration/runSuite.ts  -> <outDir>/suite/index.js          (the extensionTestsPath)
//   test/integration/*.test.ts    -> <outDir>/integration/*.test.js   (found by runSuite at run time)
// mocha is bundled in, `vscode` is provided by the extension host.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as esbuild from 'esbuild';
import { REPO_ROOT } from './tools';

export interface BuildSuiteOptions {
  /** Where to write suite/index.js and integration/*.test.js (normally <extension>/out/test). */
  outDir: string;
  /** Folders whose *.test.ts files are bundled (default: test/integration). */
  testDirs?: string[];
}

export async function buildIntegrationSuite(options: BuildSuiteOptions): Promise<string> {
  const testDirs = options.testDirs ?? [path.join(REPO_ROOT, 'test', 'integration')];
  const entryPoints: Record<string, string> = {
    'suite/index': path.join(REPO_ROOT, 'test', 'integration', 'runSuite.ts'),
  };
  for (const dir of testDirs) {
    for (const name of fs.readdirSync(dir).filter((n) => n.endsWith('.test.ts'))) {
      entryPoints[`integration/${name.replace(/\.ts$/, '')}`] = path.join(dir, name);
    }
  }
  fs.rmSync(path.join(options.outDir, 'integration'), { recursive: true, force: true });
  await esbuild.build({
    entryPoints,
    outdir: options.outDir,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    sourcemap: 'inline',
    external: ['vscode', 'onnxruntime-node', 'onnxruntime-web', 'sharp'],
    logLevel: 'warning',
    // mocha's parallel mode (unused here) resolves its worker files at run time.
    logOverride: { 'require-resolve-not-external': 'silent' },
  });
  return path.join(options.outDir, 'suite', 'index.js');
}
