// Runs the mocha integration suite inside the real extension host of a real VS Code (code-server),
// offline. Usage (see test/harness/README.md):
//   node --import tsx test/harness/runIntegration.ts [--build] [--extension DIR] [--tests FILE]
//        [--workspace DIR] [--settings JSON] [--timeout SECONDS] [--verbose] [--test-dir DIR ...]
// Exit code: 0 when every test passed, 1 when a test failed, 2 when the harness itself failed
// (tools missing, VS Code did not start, timeout).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs, stripVTControlCharacters } from 'node:util';
import { launchBrowser, type Browser } from './browser';
import { buildIntegrationSuite } from './buildSuite';
import { startCodeServer, type CodeServer } from './codeServer';
import { REPO_ROOT, assertToolsInstalled, makeTempDir, outputPath, removeTempDir } from './tools';

// Keep in sync with test/integration/runSuite.ts (not imported: that file is extension-host code).
/** Prefix of the console output of the extension host during the run (mocha, tests, extension). */
const OUTPUT_MARK = '[ext] ';
/** Marks the suite's one-line JSON summary. */
const SUMMARY_PREFIX = '[attention-lens-suite] summary ';

interface Summary {
  passes: number;
  failures: number;
  pending?: number;
}

interface LogEntry {
  relativePath: string;
  contents: string;
}

/** A workspace with a couple of small files, for when the caller does not name one. */
function sampleWorkspace(): string {
  const dir = makeTempDir('al-ws');
  fs.writeFileSync(
    path.join(dir, 'sample.txt'),
    'The quick brown fox jumps over the lazy dog.\nOnce upon a time, there was a little girl named Lily.\n',
  );
  fs.writeFileSync(path.join(dir, 'sample.py'), 'def add(a, b):\n    return a + b\n\nprint(add(1, 2))\n');
  return dir;
}

function remoteUri(server: CodeServer, absPath: string): string {
  return `vscode-remote://${server.authority}${absPath.split(path.sep).map(encodeURIComponent).join('/')}`;
}

/** The text of one codeAutomationLog call: the workbench's logger passes (level, message). */
function formatLogArgs(args: unknown): string {
  if (typeof args === 'string') return args;
  if (Array.isArray(args)) return args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ');
  return JSON.stringify(args);
}

function parseSummary(text: string): Summary | undefined {
  const at = text.lastIndexOf(SUMMARY_PREFIX);
  if (at < 0) return undefined;
  const json = text.slice(at + SUMMARY_PREFIX.length).split('\n')[0];
  try {
    return JSON.parse(json.slice(0, json.lastIndexOf('}') + 1)) as Summary;
  } catch {
    return undefined;
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      extension: { type: 'string' },
      tests: { type: 'string' },
      workspace: { type: 'string' },
      settings: { type: 'string' },
      timeout: { type: 'string', default: '300' },
      build: { type: 'boolean', default: false },
      'test-dir': { type: 'string', multiple: true },
      verbose: { type: 'boolean', default: false },
    },
  });
  assertToolsInstalled();
  const started = Date.now();
  const extensionDir = path.resolve(values.extension ?? REPO_ROOT);
  const testsPath = path.resolve(values.tests ?? path.join(extensionDir, 'out', 'test', 'suite', 'index.js'));
  if (values.build) {
    const testDirs = values['test-dir']?.map((d) => path.resolve(d));
    await buildIntegrationSuite({ outDir: path.join(extensionDir, 'out', 'test'), testDirs });
    console.log(`[integration] bundled the suite into ${path.relative(process.cwd(), testsPath) || testsPath}`);
  }
  const manifest = JSON.parse(fs.readFileSync(path.join(extensionDir, 'package.json'), 'utf8')) as { main?: string };
  if (manifest.main && !fs.existsSync(path.resolve(extensionDir, manifest.main))) {
    throw new Error(`${manifest.main} is not built in ${extensionDir} (run: npm run build)`);
  }
  if (!fs.existsSync(testsPath)) throw new Error(`${testsPath} not found (run: npm run build, or pass --build)`);

  const ownWorkspace = values.workspace === undefined;
  const workspace = path.resolve(values.workspace ?? sampleWorkspace());
  fs.rmSync(path.join(outputPath('logs'), 'integration'), { recursive: true, force: true });
  const reportFile = path.join(outputPath('integration'), 'report.json');
  fs.rmSync(reportFile, { force: true });
  const timeoutMs = Number(values.timeout) * 1000;
  if (!(timeoutMs > 0)) throw new Error(`--timeout must be a number of seconds, not ${values.timeout}`);

  let server: CodeServer | undefined;
  let browser: Browser | undefined;
  try {
    server = await startCodeServer({
      workspace,
      name: 'integration',
      settings: values.settings ? (JSON.parse(values.settings) as Record<string, unknown>) : undefined,
      // NO_COLOR: mocha's symbols come from picocolors, which turns colors on whenever CI is set.
      env: { ATTENTION_LENS_TEST_REPORT: reportFile, NO_COLOR: '1' },
    });
    console.log(`[integration] code-server at ${server.url} (${Date.now() - started} ms)`);
    browser = await launchBrowser();
    const { page } = browser;

    const entries: { type: string; text: string }[] = [];
    let resolveExit: (code: number) => void = () => undefined;
    const exited = new Promise<number>((resolve) => (resolveExit = resolve));
    // Every workbench log message arrives here; the suite's own output carries OUTPUT_MARK and is
    // printed as it comes (workbench messages only with --verbose; all are in transcript.log).
    await page.exposeFunction('codeAutomationLog', (type: unknown, args: unknown) => {
      const text = stripVTControlCharacters(formatLogArgs(args));
      entries.push({ type: String(type), text });
      if (values.verbose) console.log(`[vscode:${String(type)}] ${text}`);
      else if (text.startsWith(OUTPUT_MARK) && !text.includes(SUMMARY_PREFIX)) {
        console.log(text.slice(OUTPUT_MARK.length));
      }
    });
    await page.exposeFunction('codeAutomationExit', (code: unknown, logs?: LogEntry[]) => {
      if (Array.isArray(logs)) {
        const dir = outputPath('logs', 'integration', 'workbench');
        for (const log of logs) {
          const file = path.join(dir, log.relativePath);
          if (!file.startsWith(dir)) continue;
          fs.mkdirSync(path.dirname(file), { recursive: true });
          fs.writeFileSync(file, log.contents);
        }
      }
      resolveExit(typeof code === 'number' ? code : 1);
    });
    page.on('pageerror', (error) => console.log(`[page] ${error.message}`));

    const payload = [
      ['extensionDevelopmentPath', remoteUri(server, extensionDir)],
      ['extensionTestsPath', remoteUri(server, testsPath)],
    ];
    const url =
      `${server.url}/?folder=${encodeURIComponent(workspace)}` +
      `&payload=${encodeURIComponent(JSON.stringify(payload))}`;
    await page.goto(url, { waitUntil: 'domcontentloaded' });

    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
    const result = await Promise.race([exited, timedOut]);
    clearTimeout(timer);

    const transcript = entries.map((e) => `[${e.type}] ${e.text}\n`).join('');
    const transcriptFile = path.join(outputPath('logs', 'integration'), 'transcript.log');
    fs.writeFileSync(transcriptFile, transcript);
    const errors = entries.filter((e) => e.type === 'error').map((e) => `[vscode:error] ${e.text}`);
    const report = fs.existsSync(reportFile) ? (JSON.parse(fs.readFileSync(reportFile, 'utf8')) as Summary) : undefined;
    const summary = parseSummary(transcript) ?? report;
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    if (result === 'timeout') {
      console.log(`[integration] timed out after ${values.timeout} s; last workbench output (all of it: ${transcriptFile}):`);
      console.log(transcript.split('\n').slice(-40).join('\n'));
      console.log(`integration: ${summary?.passes ?? 0} passed, ${summary?.failures ?? 0} failed (timeout, ${seconds} s)`);
      return 2;
    }
    if (!summary) {
      console.log(`[integration] the suite did not report (exit ${result}); errors logged by VS Code follow`);
      console.log(`[integration] (everything it logged: ${transcriptFile})`);
      console.log(errors.join('\n'));
      console.log(`integration: 0 passed, 0 failed (no report, exit ${result}, ${seconds} s)`);
      return result === 0 ? 2 : result;
    }
    console.log(`integration: ${summary.passes} passed, ${summary.failures} failed (${seconds} s)`);
    // VS Code exits 1 when run() rejects; a passing count with a non-zero exit still fails the run.
    return result !== 0 ? result : summary.failures > 0 ? 1 : 0;
  } finally {
    await browser?.close();
    await server?.stop();
    if (ownWorkspace) removeTempDir(workspace);
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`[integration] harness error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    console.log('integration: 0 passed, 0 failed (harness error)');
    process.exit(2);
  },
);
