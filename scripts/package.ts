// npm run package: a production build and a platform-specific VSIX (attention-lens.vsix) holding
// the bundles, the webview assets and only this platform's ONNX Runtime binary (each platform's
// binary is 25-86 MB; shipping all of them would make a ~300 MB VSIX).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..');
const target = process.env.VSCE_TARGET ?? `${process.platform === 'win32' ? 'win32' : process.platform}-${process.arch}`;
const [platform, arch] = target.split('-');
const out = process.argv[2] ?? 'attention-lens.vsix';

const ignoreFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'attention-lens-vsce-')), '.vscodeignore');
const template = fs.readFileSync(path.join(root, '.vscodeignore'), 'utf8');
fs.writeFileSync(ignoreFile, template.replaceAll('{platform}', platform).replaceAll('{arch}', arch));

const run = (cmd: string, args: string[]) => execFileSync(cmd, args, { cwd: root, stdio: 'inherit' });
fs.rmSync(path.join(root, 'out'), { recursive: true, force: true }); // no stale dev files (source maps, tests) in the VSIX
run(process.execPath, ['esbuild.js', '--production']);
run(process.execPath, [
  require.resolve('@vscode/vsce/vsce'),
  'package',
  '--ignoreFile', ignoreFile,
  '--target', target,
  // The README's images are relative to the repository; there is no public repository URL to rewrite them to.
  '--no-rewrite-relative-links',
  '--out', out,
]);
const size = fs.statSync(path.join(root, out)).size;
console.log(`${out}: ${(size / 2 ** 20).toFixed(1)} MiB for ${target}`);
