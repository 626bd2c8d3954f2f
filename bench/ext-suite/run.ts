// Runs one of the suites in bench/ext-suite inside a real VS Code extension host (code-server, with
// Chromium showing the workbench, so webview panels really render), the way
// test/harness/runIntegration.ts runs the integration tests, and returns what the suite wrote to
// $ATTENTION_LENS_BENCH_OUT.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT, round } from '../util';

export interface ExtSuite {
  /** bench/ext-suite/<name>.test.ts; also the log name (test-output/logs/bench-<name>). */
  name: string;
  /** Files of the workspace folder, by name. */
  files: Record<string, string>;
  /** The extension under test (default: this repository). */
  extension?: string;
  env?: Record<string, string>;
  timeoutMs?: number;
}

export async function runExtSuite(suite: ExtSuite): Promise<Record<string, unknown>> {
  const { buildIntegrationSuite } = await import('../../test/harness/buildSuite');
  const { startCodeServer } = await import('../../test/harness/codeServer');
  const { launchBrowser } = await import('../../test/harness/browser');
  const { makeTempDir, removeTempDir } = await import('../../test/harness/tools');
  const outDir = path.join(ROOT, 'bench/out/ext-suite', suite.name);
  fs.rmSync(outDir, { recursive: true, force: true });
  // Only this suite's file is bundled: a folder of its own holding it.
  const testDir = path.join(outDir, 'src');
  fs.mkdirSync(testDir, { recursive: true });
  fs.copyFileSync(path.join(ROOT, 'bench/ext-suite', `${suite.name}.test.ts`), path.join(testDir, `${suite.name}.test.ts`));
  const testsPath = await buildIntegrationSuite({ outDir, testDirs: [testDir] });
  const resultFile = path.join(outDir, 'result.json');
  const workspace = makeTempDir('al-bench-ws');
  for (const [name, text] of Object.entries(suite.files)) fs.writeFileSync(path.join(workspace, name), text);
  const started = performance.now();
  const server = await startCodeServer({ workspace, name: `bench-${suite.name}`, env: { ATTENTION_LENS_BENCH_OUT: resultFile, NO_COLOR: '1', ...suite.env } });
  const browser = await launchBrowser();
  try {
    const { page } = browser;
    let resolveExit: (code: number) => void = () => undefined;
    const exited = new Promise<number>((resolve) => (resolveExit = resolve));
    await page.exposeFunction('codeAutomationLog', () => undefined);
    await page.exposeFunction('codeAutomationExit', (code: unknown) => resolveExit(typeof code === 'number' ? code : 1));
    const remote = (p: string) => `vscode-remote://${server.authority}${p.split(path.sep).map(encodeURIComponent).join('/')}`;
    const payload = [
      ['extensionDevelopmentPath', remote(suite.extension ?? ROOT)],
      ['extensionTestsPath', remote(testsPath)],
    ];
    await page.goto(`${server.url}/?folder=${encodeURIComponent(workspace)}&payload=${encodeURIComponent(JSON.stringify(payload))}`, { waitUntil: 'domcontentloaded' });
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([exited, new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), suite.timeoutMs ?? 180_000)))]);
    clearTimeout(timer);
    if (!fs.existsSync(resultFile)) throw new Error(`the ${suite.name} suite wrote nothing (exit ${code}; logs: test-output/logs/bench-${suite.name})`);
    const r = JSON.parse(fs.readFileSync(resultFile, 'utf8')) as Record<string, unknown>;
    return { ...r, session_s: round((performance.now() - started) / 1000, 1) };
  } finally {
    await browser.close();
    await server.stop();
    removeTempDir(workspace);
  }
}
