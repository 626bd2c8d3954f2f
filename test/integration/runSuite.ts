// Entry point of the integration suite, loaded by VS Code's extension host through
// `extensionTestsPath` (bundled to out/test/suite/index.js; the test files are bundled next to it,
// to out/test/integration/*.test.js). Runs mocha over them and rejects when any test fails,
// which makes VS Code exit the test run with code 1.
//
// Output: the extension host forwards console output to the workbench, which hands it to the
// harness (test/harness/runIntegration.ts) through window.codeAutomationLog together with the
// workbench's own log. It passes the arguments unformatted, so during the run console.* is wrapped
// to format each message itself (mocha's reporter uses printf-style "%s" arguments) and to prefix
// it with OUTPUT_MARK, by which the harness tells test output (mocha, the tests, the extension)
// from workbench noise. When ATTENTION_LENS_TEST_REPORT names a file, a JSON report (counts and
// failures) is also written there, so the harness has the result even if forwarding changes.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { format } from 'node:util';
import Mocha from 'mocha';

export interface SuiteReport {
  passes: number;
  failures: number;
  pending: number;
  tests: number;
  durationMs: number;
  failed: { title: string; error: string }[];
}

/** Prefix of every console message printed in the extension host while the suite runs. */
export const OUTPUT_MARK = '[ext] ';

/** Marks the one-line JSON summary in the log (parsed by the harness). */
export const SUMMARY_PREFIX = '[attention-lens-suite] summary ';

const LEVELS = ['log', 'info', 'warn', 'error', 'debug'] as const;

/**
 * Formats and marks console output (see the top of this file); returns a function that undoes it.
 * The extension host installs console.* as getters with a no-op setter (its console forwarder),
 * so plain assignment is ignored: redefine the properties and put the originals back afterwards.
 */
function markConsole(): () => void {
  const saved = LEVELS.map((level) => [level, Object.getOwnPropertyDescriptor(console, level)] as const);
  for (const level of LEVELS) {
    const write = console[level];
    const marked = (...args: unknown[]): void => write.call(console, OUTPUT_MARK + format(...args));
    try {
      Object.defineProperty(console, level, { configurable: true, enumerable: true, get: () => marked, set: () => undefined });
    } catch {
      // not configurable: output stays unmarked (still in the harness's transcript)
    }
  }
  const consoleLog = Mocha.reporters.Base.consoleLog;
  Mocha.reporters.Base.consoleLog = (...args: unknown[]) => console.log(...args);
  return () => {
    for (const [level, descriptor] of saved) {
      if (descriptor) Object.defineProperty(console, level, descriptor);
    }
    Mocha.reporters.Base.consoleLog = consoleLog;
  };
}

function testFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((name) => name.endsWith('.test.js'))
    .sort()
    .map((name) => path.join(dir, name));
}

export function run(): Promise<void> {
  const mocha = new Mocha({
    ui: 'bdd',
    color: false,
    reporter: 'spec',
    // Activation and model loading are slow the first time; individual tests can lower this.
    timeout: Number(process.env.ATTENTION_LENS_TEST_TIMEOUT_MS ?? 60_000),
    grep: process.env.ATTENTION_LENS_TEST_GREP || undefined,
  });
  const files = testFiles(path.resolve(__dirname, '..', 'integration'));
  for (const file of files) mocha.addFile(file);

  return new Promise<void>((resolve, reject) => {
    if (files.length === 0) {
      reject(new Error(`no *.test.js files in ${path.resolve(__dirname, '..', 'integration')}`));
      return;
    }
    const report: SuiteReport = { passes: 0, failures: 0, pending: 0, tests: 0, durationMs: 0, failed: [] };
    const started = Date.now();
    const restoreConsole = markConsole();
    try {
      const runner = mocha.run((failures) => {
        report.durationMs = Date.now() - started;
        report.failures = failures;
        console.log(`${SUMMARY_PREFIX}${JSON.stringify({ passes: report.passes, failures, pending: report.pending })}`);
        restoreConsole();
        const reportFile = process.env.ATTENTION_LENS_TEST_REPORT;
        if (reportFile) {
          try {
            fs.mkdirSync(path.dirname(reportFile), { recursive: true });
            fs.writeFileSync(reportFile, JSON.stringify(report, null, 2));
          } catch (error) {
            console.error(`could not write ${reportFile}: ${String(error)}`);
          }
        }
        if (failures > 0) reject(new Error(`${failures} integration test(s) failed`));
        else resolve();
      });
      runner.on('test end', () => report.tests++);
      runner.on('pass', () => report.passes++);
      runner.on('pending', () => report.pending++);
      runner.on('fail', (test, error: unknown) => {
        const e = error as { stack?: string; message?: string } | undefined;
        report.failed.push({ title: test.fullTitle(), error: e?.stack ?? e?.message ?? String(error) });
      });
    } catch (error) {
      restoreConsole();
      reject(error);
    }
  });
}
