// The VSIXs of `npm run package`: one per VS Code target the installed onnxruntime-node has a binary
// for, each with that platform's binary (and its shared libraries) and no other, and a universal one
// with none; all with the bundles, the webview and the WASM runtime. Then the engine worker of the
// universal VSIX and of this machine's, unpacked outside the repository (so nothing resolves from its
// node_modules), runs stories260K: on WASM with the fallback notice, and on the native runtime.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { createRequire } from 'node:module';
import { EngineClient } from '../../src/engine/client';
import { binFolder, hostTarget, HOST_VSIX, nativeTargets, ROOT, UNIVERSAL, vsixPath } from '../../scripts/package';
import { STORIES, tempDir } from './helpers/shared';

interface Entry {
  name: string;
  method: number;
  compressedSize: number;
  localOffset: number;
}

/** The entries of a zip, from its central directory (VSIXs are small, plain zips: no zip64). */
function zipEntries(zip: Buffer): Entry[] {
  let eocd = zip.length - 22;
  while (eocd >= 0 && zip.readUInt32LE(eocd) !== 0x06054b50) eocd--;
  assert.ok(eocd >= 0, 'end of central directory found');
  const entries: Entry[] = [];
  let p = zip.readUInt32LE(eocd + 16);
  for (let i = zip.readUInt16LE(eocd + 10); i > 0; i--) {
    assert.equal(zip.readUInt32LE(p), 0x02014b50, 'central directory entry');
    const nameLength = zip.readUInt16LE(p + 28);
    entries.push({
      name: zip.toString('utf8', p + 46, p + 46 + nameLength),
      method: zip.readUInt16LE(p + 10),
      compressedSize: zip.readUInt32LE(p + 20),
      localOffset: zip.readUInt32LE(p + 42),
    });
    p += 46 + nameLength + zip.readUInt16LE(p + 30) + zip.readUInt16LE(p + 32);
  }
  return entries;
}

function zipRead(zip: Buffer, e: Entry): Buffer {
  const start = e.localOffset + 30 + zip.readUInt16LE(e.localOffset + 26) + zip.readUInt16LE(e.localOffset + 28);
  const data = zip.subarray(start, start + e.compressedSize);
  return e.method === 0 ? Buffer.from(data) : zlib.inflateRawSync(data);
}

function unzipTo(file: string, dir: string): void {
  const zip = fs.readFileSync(file);
  for (const e of zipEntries(zip)) {
    if (e.name.endsWith('/')) continue;
    const dest = path.join(dir, e.name);
    assert.ok(dest.startsWith(dir + path.sep), `entry inside the folder: ${e.name}`);
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    fs.writeFileSync(dest, zipRead(zip, e));
  }
}

/** The OS and CPU a native binary is built for, from its header: ELF, PE or Mach-O. */
function binaryPlatform(b: Buffer): string {
  if (b.readUInt32BE(0) === 0x7f454c46) return `linux-${({ 0x3e: 'x64', 0xb7: 'arm64', 0x28: 'armhf' } as Record<number, string>)[b.readUInt16LE(18)] ?? b.readUInt16LE(18)}`;
  if (b.toString('latin1', 0, 2) === 'MZ') {
    const pe = b.readUInt32LE(0x3c);
    return `win32-${({ 0x8664: 'x64', 0xaa64: 'arm64' } as Record<number, string>)[b.readUInt16LE(pe + 4)] ?? b.readUInt16LE(pe + 4)}`;
  }
  if (b.readUInt32LE(0) === 0xfeedfacf) return `darwin-${({ 0x01000007: 'x64', 0x0100000c: 'arm64' } as Record<number, string>)[b.readUInt32LE(4)] ?? b.readUInt32LE(4)}`;
  return 'unknown';
}

const ALL = [...nativeTargets(), UNIVERSAL];
const ORT_BIN = path.join(ROOT, 'node_modules/onnxruntime-node/bin/napi-v6');
const NATIVE_FILE = /\.(node|dll|dylib|so)(\.[\d.]+)?$/;
/** What every VSIX holds, under extension/. */
const COMMON = [
  'package.json',
  'out/extension.js',
  'out/worker.js',
  'out/webview/main.js',
  'out/webview/panel.css',
  'out/webview/report.js', // the HTML report's script and styles, inlined by Export HTML Report
  'out/webview/report.css',
  'node_modules/onnxruntime-web/package.json',
  'node_modules/onnxruntime-web/dist/ort.node.min.js',
  'node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.mjs',
  'node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.wasm',
  'node_modules/onnxruntime-common/package.json',
  'node_modules/onnxruntime-common/dist/cjs/index.js',
];

describe('the VSIXs of npm run package', () => {
  before(() => {
    if ([...ALL.map(vsixPath), HOST_VSIX].every((f) => fs.existsSync(f))) return;
    // scripts/test.sh packages first; alone, this test builds them (about 2 minutes on 2 cores).
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/package.ts'], { cwd: ROOT, stdio: 'inherit' });
    assert.equal(r.status, 0, 'npm run package failed');
  });

  test('the installed onnxruntime-node ships the expected platforms (Intel macOS has none: it gets the universal VSIX)', () => {
    assert.deepEqual(nativeTargets(), ['win32-x64', 'win32-arm64', 'linux-x64', 'linux-arm64', 'darwin-arm64']);
  });

  for (const target of ALL) {
    test(`${path.basename(vsixPath(target))}: the extension, the WASM runtime and ${target === UNIVERSAL ? 'no native binary' : `only the ${target} binary`}`, () => {
      const zip = fs.readFileSync(vsixPath(target));
      const entries = zipEntries(zip);
      const names = entries.map((e) => e.name);
      for (const f of COMMON) assert.ok(names.includes(`extension/${f}`), `${f} is in the VSIX`);
      assert.deepEqual(names.filter((n) => n.endsWith('.map') || n.startsWith('extension/out/test/') || n === 'extension/out/cli.js'), [], 'no dev files');

      const manifest = zipRead(zip, entries.find((e) => e.name === 'extension.vsixmanifest')!).toString('utf8');
      const identity = /<Identity\b[^>]*>/.exec(manifest)?.[0] ?? '';
      assert.match(identity, /Id="attention-lens"/);
      assert.equal(/TargetPlatform="([^"]*)"/.exec(identity)?.[1], target === UNIVERSAL ? undefined : target, identity);

      const native = names.filter((n) => NATIVE_FILE.test(n));
      const ortNode = names.filter((n) => n.startsWith('extension/node_modules/onnxruntime-node/'));
      const folder = binFolder(target);
      if (folder === null) {
        assert.deepEqual(native, [], 'no native binary');
        assert.deepEqual(ortNode, [], 'no onnxruntime-node at all: require fails and `auto` falls back to WASM');
        return;
      }
      // Exactly the folder onnxruntime-node's binding.js loads on this platform: the binding and every shared library next to it.
      const prefix = `extension/node_modules/onnxruntime-node/bin/napi-v6/${folder}/`;
      assert.deepEqual(native.sort(), fs.readdirSync(path.join(ORT_BIN, folder)).filter((f) => NATIVE_FILE.test(f)).map((f) => prefix + f).sort());
      assert.ok(native.includes(`${prefix}onnxruntime_binding.node`));
      assert.ok(native.some((n) => /\/(lib)?onnxruntime\.[^/]*(so|dll|dylib)/.test(n)), `the ONNX Runtime library: ${native.join(', ')}`);
      assert.deepEqual(ortNode.filter((n) => n.includes('/bin/') && !n.startsWith(prefix)), [], 'no other platform');
      for (const f of ['package.json', 'dist/index.js', 'dist/binding.js', 'dist/backend.js']) assert.ok(ortNode.includes(`extension/node_modules/onnxruntime-node/${f}`), f);
      // The binaries really are built for the target (an ELF/PE/Mach-O header check).
      for (const n of native) assert.equal(binaryPlatform(zipRead(zip, entries.find((e) => e.name === n)!)), target, n);
    });
  }

  test(`attention-lens.vsix (the end-to-end tests and the demo install it) is this machine's: ${hostTarget()}`, () => {
    assert.ok(fs.readFileSync(HOST_VSIX).equals(fs.readFileSync(vsixPath(hostTarget()))));
  });

  describe('the engine worker, run from the unpacked VSIX', () => {
    const text = 'Once upon a time, there was a little girl named Lily.';
    const unpacked: string[] = [];
    after(() => {
      for (const dir of unpacked) fs.rmSync(dir, { recursive: true, force: true });
    });

    async function runFrom(target: string) {
      // Outside the repository: Node must not find the repository's node_modules from there.
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), `al-vsix-${target}-`));
      unpacked.push(dir);
      unzipTo(vsixPath(target), dir);
      const out = path.join(dir, 'extension', 'out');
      const resolves = (() => {
        try {
          createRequire(path.join(out, 'worker.js')).resolve('onnxruntime-node');
          return true;
        } catch {
          return false;
        }
      })();
      assert.equal(resolves, target !== UNIVERSAL, 'onnxruntime-node is found from the extension only where it ships');
      const client = new EngineClient(path.join(out, 'worker.js'), { cacheDir: tempDir(), runtime: 'auto', offline: true });
      try {
        const layers: number[] = [];
        const { start } = await client.analyze({ model: STORIES, text }, { onPayload: (p) => p.kind === 'layer' && layers.push(p.layer) }).done;
        return { start, layers };
      } finally {
        await client.dispose();
      }
    }

    test('universal: `auto` falls back to the WASM runtime, with its notice, and runs stories260K', { skip: !fs.existsSync(STORIES) && 'no stories260K' }, async () => {
      const { start, layers } = await runFrom(UNIVERSAL);
      assert.equal(start.runtime, 'onnxruntime-web wasm');
      assert.ok(start.notices.some((n) => /native ONNX Runtime could not load.*WASM/.test(n)), start.notices.join('\n'));
      assert.deepEqual(start.shape.slice(0, 2), [5, 8]);
      assert.deepEqual(layers, [0, 1, 2, 3, 4]);
    });

    test(`${hostTarget()}: the native runtime loads from the VSIX`, { skip: (!fs.existsSync(STORIES) && 'no stories260K') || (hostTarget() === UNIVERSAL && 'no VSIX for this platform') }, async () => {
      const { start, layers } = await runFrom(hostTarget());
      assert.equal(start.runtime, 'onnxruntime-node cpu');
      assert.deepEqual(start.notices, []);
      assert.deepEqual(layers, [0, 1, 2, 3, 4]);
    });
  });
});
