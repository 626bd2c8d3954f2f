// npm run package [-- --target linux-x64 --target universal ...] [-- --jobs N]
// One production build (in a staging folder: the repository's out/ is left alone), then one VSIX
// per VS Code target that the installed onnxruntime-node ships a binary for, each holding only that
// platform's ONNX Runtime (binding + shared libraries), plus a universal VSIX (no --target) with no
// native binary at all, which runs on the WASM runtime (onnxruntime-web): the Marketplace serves it to
// every platform without a VSIX of its own (Intel macOS, Alpine, armhf). Each platform's binary is
// 25-86 MB: one VSIX holding them all would be ~300 MB.
// Writes dist/attention-lens-<target>.vsix and dist/attention-lens-universal.vsix, and
// attention-lens.vsix: this machine's VSIX (the universal one where there is none), which the
// end-to-end tests and `npm run demo` install.
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

export const ROOT = path.resolve(__dirname, '..');
export const DIST = path.join(ROOT, 'dist');
/** This machine's VSIX, a copy of one in dist/. */
export const HOST_VSIX = path.join(ROOT, 'attention-lens.vsix');
export const UNIVERSAL = 'universal';
const BIN = path.join(ROOT, 'node_modules/onnxruntime-node/bin/napi-v6');

/** VS Code's targets (vsce's list) with the onnxruntime-node folder each would load from (its binding.js: bin/napi-v6/<process.platform>/<process.arch>). */
const VSCODE_TARGETS: Record<string, string | null> = {
  'win32-x64': 'win32/x64',
  'win32-arm64': 'win32/arm64',
  'linux-x64': 'linux/x64',
  'linux-arm64': 'linux/arm64',
  'linux-armhf': 'linux/arm',
  'darwin-x64': 'darwin/x64',
  'darwin-arm64': 'darwin/arm64',
  // onnxruntime-node's Linux binaries are built against glibc; on musl they cannot load.
  'alpine-x64': null,
  'alpine-arm64': null,
  web: null,
};

/** The onnxruntime-node folder (platform/arch) a target ships, or null for the universal VSIX. */
export function binFolder(target: string): string | null {
  return VSCODE_TARGETS[target] ?? null;
}

/** The targets the installed onnxruntime-node has a binary for, in VS Code's order. */
export function nativeTargets(): string[] {
  return Object.keys(VSCODE_TARGETS).filter((t) => {
    const folder = binFolder(t);
    return folder !== null && fs.existsSync(path.join(BIN, folder, 'onnxruntime_binding.node'));
  });
}

export function vsixPath(target: string): string {
  return path.join(DIST, `attention-lens-${target}.vsix`);
}

/** This machine's target when it has its own VSIX, else the universal one. */
export function hostTarget(): string {
  const target = `${process.platform}-${process.arch === 'arm' ? 'armhf' : process.arch}`;
  return nativeTargets().includes(target) ? target : UNIVERSAL;
}

/**
 * The ignore file for one target, from the .vscodeignore template: {platform}/{arch} filled in; for
 * the universal VSIX every onnxruntime-node line is dropped, so none of its files (JS or binary) ship
 * and `require('onnxruntime-node')` fails with "Cannot find module", which `auto` turns into WASM.
 */
export function ignoreFileFor(target: string, template: string): string {
  const folder = binFolder(target);
  if (folder === null) return template.split('\n').filter((l) => !l.startsWith('!node_modules/onnxruntime-node/')).join('\n');
  const [platform, arch] = folder.split('/');
  return template.replaceAll('{platform}', platform).replaceAll('{arch}', arch);
}

/** Runs a command, its output kept and printed in one piece when it ends (jobs run side by side). */
function spawnQuiet(cmd: string, args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.stderr.on('data', (c: Buffer) => chunks.push(c));
    child.on('error', reject);
    child.on('close', (code) => {
      const output = Buffer.concat(chunks).toString('utf8');
      if (code === 0) return resolve();
      process.stderr.write(output);
      reject(new Error(`${path.basename(args[0] ?? cmd)} ${args.slice(1).join(' ')} exited ${code}`));
    });
  });
}

async function main() {
  const { values } = parseArgs({ options: { target: { type: 'string', multiple: true }, jobs: { type: 'string' } } });
  const all = [...nativeTargets(), UNIVERSAL];
  const targets = values.target ?? all;
  for (const t of targets) if (!all.includes(t)) throw new Error(`no VSIX for target "${t}": onnxruntime-node ships binaries for ${all.join(', ')}`);
  // vsce is mostly zip compression on one core: one job per core.
  const jobs = Math.max(1, Number(values.jobs ?? os.availableParallelism()));

  const started = Date.now();
  const seconds = (since: number) => `${((Date.now() - since) / 1000).toFixed(1)} s`;
  // The VSIXs are packed from a staging folder with its own production build, so the repository's
  // out/ (the dev build, a watch build) is left alone, and a build there cannot slip into a VSIX.
  const stage = fs.mkdtempSync(path.join(os.tmpdir(), 'attention-lens-package-'));
  const link = (name: string) => fs.symlinkSync(path.join(ROOT, name), path.join(stage, name), 'junction');
  try {
    for (const f of ['package.json', 'README.md', 'LICENSE']) fs.copyFileSync(path.join(ROOT, f), path.join(stage, f));
    const sources = ['src', 'webview', 'media'].filter((d) => fs.existsSync(path.join(ROOT, d)));
    for (const d of [...sources, 'node_modules']) link(d);
    execFileSync(process.execPath, [path.join(ROOT, 'esbuild.js'), '--production'], { cwd: stage, stdio: 'inherit' });
    for (const d of sources) fs.unlinkSync(path.join(stage, d)); // the links, before vsce lists the folder
    console.log(`production build: ${seconds(started)}; packaging ${targets.join(', ')} (${jobs} at a time)`);

    fs.mkdirSync(DIST, { recursive: true });
    const template = fs.readFileSync(path.join(ROOT, '.vscodeignore'), 'utf8');
    const pack = async (target: string) => {
      const t0 = Date.now();
      const ignoreFile = path.join(stage, `.vscodeignore-${target}`);
      fs.writeFileSync(ignoreFile, ignoreFileFor(target, template));
      const out = vsixPath(target);
      fs.rmSync(out, { force: true });
      await spawnQuiet(process.execPath, [
        require.resolve('@vscode/vsce/vsce'),
        'package',
        '--ignoreFile', ignoreFile,
        ...(target === UNIVERSAL ? [] : ['--target', target]),
        // The README's images are relative to the repository; there is no public repository URL to rewrite them to.
        '--no-rewrite-relative-links',
        '--allow-missing-repository',
        '--out', out,
      ], stage);
      const line = `${path.relative(ROOT, out)}: ${(fs.statSync(out).size / 2 ** 20).toFixed(1)} MiB (${seconds(t0)})`;
      console.log(line);
    };
    const queue = [...targets];
    await Promise.all(Array.from({ length: Math.min(jobs, queue.length) }, async () => {
      for (let t = queue.shift(); t !== undefined; t = queue.shift()) await pack(t);
    }));
  } finally {
    // Unlink the links first, so that nothing is ever removed through them.
    for (const d of ['src', 'webview', 'media', 'node_modules']) if (fs.lstatSync(path.join(stage, d), { throwIfNoEntry: false })?.isSymbolicLink()) fs.unlinkSync(path.join(stage, d));
    fs.rmSync(stage, { recursive: true, force: true });
  }

  const host = hostTarget();
  if (targets.includes(host)) {
    fs.rmSync(HOST_VSIX, { force: true });
    fs.copyFileSync(vsixPath(host), HOST_VSIX);
    console.log(`${path.relative(ROOT, HOST_VSIX)}: a copy of ${path.relative(ROOT, vsixPath(host))}`);
  }
  console.log(`${targets.length} VSIX in ${seconds(started)}`);
}

if (require.main === module) {
  main().catch((e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  });
}
