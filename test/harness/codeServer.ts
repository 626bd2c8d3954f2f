// Starts a real VS Code (code-server, installed by scripts/setup-tools.sh) for integration and
// end-to-end tests: isolated temp profile, free 127.0.0.1 port, own process group.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  CODE_SERVER_ENTRY,
  NODE24,
  assertToolsInstalled,
  freePort,
  makeTempDir,
  outputPath,
  removeTempDir,
  sleep,
  tailFile,
} from './tools';

/** An isolated code-server profile: user data, extensions, and HOME/XDG folders, all temporary. */
export interface Profile {
  root: string;
  userDataDir: string;
  extensionsDir: string;
  /** Environment for every code-server process of this profile (HOME and XDG_* point into root). */
  env: NodeJS.ProcessEnv;
}

/** Settings that keep the workbench quiet and deterministic in tests; tests' own settings win. */
export const DEFAULT_TEST_SETTINGS: Readonly<Record<string, unknown>> = {
  'telemetry.telemetryLevel': 'off',
  'update.mode': 'none',
  'extensions.autoCheckUpdates': false,
  'extensions.autoUpdate': false,
  'extensions.ignoreRecommendations': true,
  'workbench.startupEditor': 'none',
  'workbench.tips.enabled': false,
  'workbench.enableExperiments': false,
  'security.workspace.trust.enabled': false,
  'chat.disableAIFeatures': true,
  'git.enabled': false,
  'files.autoSave': 'off',
  // Room for the editor and the panel side by side; long lines visible for hovering.
  'workbench.secondarySideBar.defaultVisibility': 'hidden',
  'editor.wordWrap': 'on',
};

export function createProfile(): Profile {
  const root = makeTempDir('al-cs');
  const dirs = ['user-data', 'extensions', 'home', 'config', 'data', 'cache'].map((d) => path.join(root, d));
  for (const d of dirs) fs.mkdirSync(d, { recursive: true });
  const [userDataDir, extensionsDir, home, config, data, cache] = dirs;
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    // Do not let an outer VS Code (tests started from its terminal) leak into this one.
    if (key.startsWith('VSCODE_') || key === 'ELECTRON_RUN_AS_NODE') continue;
    env[key] = value;
  }
  Object.assign(env, {
    HOME: home,
    XDG_CONFIG_HOME: config,
    XDG_DATA_HOME: data,
    XDG_CACHE_HOME: cache,
    PATH: `${path.dirname(NODE24)}${path.delimiter}${process.env.PATH ?? ''}`,
    // No extension gallery (code-server defaults to open-vsx.org, unreachable offline): the
    // workbench then makes no update queries, and logs no network errors.
    EXTENSIONS_GALLERY: process.env.EXTENSIONS_GALLERY ?? '{}',
  });
  return { root, userDataDir, extensionsDir, env };
}

/** Writes `<userDataDir>/User/settings.json` (DEFAULT_TEST_SETTINGS plus `settings`). Call before start. */
export function writeUserSettings(profile: Profile, settings: Record<string, unknown> = {}): void {
  const dir = path.join(profile.userDataDir, 'User');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'settings.json'), JSON.stringify({ ...DEFAULT_TEST_SETTINGS, ...settings }, null, 2));
}

/** Installs a VSIX into the profile (about 1 s). */
export function installVsix(profile: Profile, vsixPath: string): void {
  const vsix = path.resolve(vsixPath);
  if (!fs.existsSync(vsix)) throw new Error(`VSIX not found: ${vsix} (build it with: npm run package)`);
  const result = spawnSync(
    NODE24,
    [
      CODE_SERVER_ENTRY,
      '--user-data-dir',
      profile.userDataDir,
      '--extensions-dir',
      profile.extensionsDir,
      '--install-extension',
      vsix,
      '--force',
    ],
    { env: profile.env, encoding: 'utf8', timeout: 120_000 },
  );
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}`.trim();
  if (result.status !== 0 || /failed installing/i.test(output)) {
    throw new Error(`installing ${vsix} failed (exit ${result.status ?? result.signal}):\n${output}`);
  }
}

export interface StartOptions {
  /** Folder the workbench opens when the URL names none. */
  workspace: string;
  /** Profile to use; a fresh one (removed on stop) when omitted. */
  profile?: Profile;
  /**
   * User settings, written (with DEFAULT_TEST_SETTINGS) before start. When omitted, a profile that
   * already has a settings.json (from writeUserSettings) keeps it; a new one gets the defaults.
   */
  settings?: Record<string, unknown>;
  /** VSIX files to install before start. */
  vsix?: string[];
  /** Extra environment for code-server and its extension host. */
  env?: NodeJS.ProcessEnv;
  /** Names the log folder test-output/logs/<name>/ that stop() copies the server's logs into. */
  name?: string;
  /** How long to wait for /healthz. */
  startTimeoutMs?: number;
}

export interface CodeServer {
  /** http://127.0.0.1:PORT */
  url: string;
  port: number;
  /** 127.0.0.1:PORT, the remote authority in vscode-remote:// URIs. */
  authority: string;
  workspace: string;
  profile: Profile;
  /** code-server's stdout and stderr. */
  logFile: string;
  /** Kills the whole process group (server, extension host, watchers) and cleans up. Idempotent. */
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();

function killGroup(child: ChildProcess, signal: NodeJS.Signals): boolean {
  if (child.pid === undefined) return false;
  try {
    process.kill(-child.pid, signal);
    return true;
  } catch {
    return false; // ESRCH: the group is gone
  }
}

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

// Never leave a code-server behind, whatever way the harness ends.
process.on('exit', () => {
  for (const child of running) killGroup(child, 'SIGKILL');
});
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    for (const child of running) killGroup(child, 'SIGKILL');
    process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1));
  });
}

async function waitForHealthz(url: string, child: ChildProcess, logFile: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`code-server exited (${child.exitCode ?? child.signalCode}) before answering:\n${tailFile(logFile)}`);
    }
    try {
      const response = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) });
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await sleep(200);
  }
  throw new Error(`code-server did not answer ${url}/healthz within ${timeoutMs} ms:\n${tailFile(logFile)}`);
}

function copyLogs(profile: Profile, logFile: string, name: string): void {
  try {
    const dest = outputPath('logs', name);
    fs.copyFileSync(logFile, path.join(dest, 'code-server.log'));
    const vscodeLogs = path.join(profile.userDataDir, 'logs');
    fs.rmSync(path.join(dest, 'vscode'), { recursive: true, force: true });
    if (fs.existsSync(vscodeLogs)) fs.cpSync(vscodeLogs, path.join(dest, 'vscode'), { recursive: true });
  } catch (error) {
    console.warn(`[harness] could not copy code-server logs: ${String(error)}`);
  }
}

/** Starts code-server and waits until it answers /healthz (well under a second once started). */
export async function startCodeServer(options: StartOptions): Promise<CodeServer> {
  assertToolsInstalled();
  const ownProfile = options.profile === undefined;
  const profile = options.profile ?? createProfile();
  const workspace = path.resolve(options.workspace);
  if (!fs.existsSync(workspace)) throw new Error(`workspace not found: ${workspace}`);
  if (!fs.existsSync(path.join(profile.userDataDir, 'User', 'settings.json')) || options.settings) {
    writeUserSettings(profile, options.settings);
  }
  for (const vsix of options.vsix ?? []) installVsix(profile, vsix);

  const name = options.name ?? 'code-server';
  const logFile = path.join(profile.root, 'code-server.log');
  fs.rmSync(logFile, { force: true });
  // A port can be taken between freePort() and code-server's listen(); try a few.
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const out = fs.openSync(logFile, 'a');
    const child = spawn(
      NODE24,
      [
        CODE_SERVER_ENTRY,
        '--bind-addr',
        `127.0.0.1:${port}`,
        '--auth',
        'none',
        '--user-data-dir',
        profile.userDataDir,
        '--extensions-dir',
        profile.extensionsDir,
        '--disable-telemetry',
        '--disable-update-check',
        '--disable-workspace-trust',
        '--disable-getting-started-override',
        '--vscode-option',
        'enable-smoke-test-driver',
        workspace,
      ],
      { env: { ...profile.env, ...options.env }, stdio: ['ignore', out, out], detached: true },
    );
    fs.closeSync(out);
    running.add(child);
    child.once('exit', () => running.delete(child));
    let stopped: Promise<void> | undefined;
    const stop = (): Promise<void> =>
      (stopped ??= (async () => {
        if (child.pid !== undefined && killGroup(child, 'SIGTERM')) {
          const deadline = Date.now() + 5000;
          while (groupAlive(child.pid) && Date.now() < deadline) await sleep(100);
          killGroup(child, 'SIGKILL');
        }
        running.delete(child);
        copyLogs(profile, logFile, name);
        if (ownProfile) removeTempDir(profile.root);
      })());
    try {
      await waitForHealthz(url, child, logFile, options.startTimeoutMs ?? 30_000);
      return { url, port, authority: `127.0.0.1:${port}`, workspace, profile, logFile, stop };
    } catch (error) {
      lastError = error;
      killGroup(child, 'SIGKILL');
      running.delete(child);
      if (!/EADDRINUSE/.test(String(error))) break;
    }
  }
  copyLogs(profile, logFile, name);
  if (ownProfile) removeTempDir(profile.root);
  throw lastError;
}
