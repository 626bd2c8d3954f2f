// Checks the cache folder before the engine uses it, within a time bound, so that a folder that
// cannot hold files fails at once with a clear error instead of hanging the load.
//
// Why: Node's recursive mkdir loops forever (100% of a core, never returning) when mkdir answers
// ENOENT although the parent exists, which is what procfs does: a cache folder such as
// /proc/attention-cache hung "Exposing attention in the ONNX graph" for good. Here each missing
// folder is created on its own (no recursive mkdir), pseudo file systems are refused up front, and
// a probe file is written, read back and deleted.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EngineError } from './types';

/** The longest the whole check may take (a hung network or FUSE mount never answers). */
export const CACHE_CHECK_TIMEOUT_MS = 10_000;

/** statfs f_type magic numbers (Linux) of kernel pseudo file systems, which cannot hold ordinary files. */
const PSEUDO_FILE_SYSTEMS: ReadonlyMap<number, string> = new Map([
  [0x9fa0, 'procfs'],
  [0x62656572, 'sysfs'],
  [0x64626720, 'debugfs'],
  [0x74726163, 'tracefs'],
  [0x73636673, 'securityfs'],
  [0x27e0eb, 'cgroup'],
  [0x63677270, 'cgroup2'],
  [0x1cd1, 'devpts'],
  [0xcafe4a11, 'bpf'],
  [0x6165676c, 'pstore'],
  [0x62656570, 'configfs'],
  [0x65735543, 'fusectl'],
  [0xde5e81e4, 'efivarfs'],
  [0x42494e4d, 'binfmt_misc'],
  [0x958458f6, 'hugetlbfs'],
]);

function unusable(dir: string, what: string): EngineError {
  return new EngineError(
    'CACHE_UNUSABLE',
    `The cache folder ${dir} cannot be used: ${what}. Set attentionLens.cacheDirectory to a writable folder on a local disk, ` +
      'or clear it to use the default (on the command line: --cache-dir).',
  );
}

const reason = (e: unknown) => (e as NodeJS.ErrnoException).code ?? (e as Error).message;

/**
 * Resolves when `dir` exists (created if missing), is a folder on a real file system, and a file
 * can be written, read back and deleted in it; else rejects with CACHE_UNUSABLE, within `timeoutMs`.
 */
export async function checkCacheDir(dir: string, timeoutMs = CACHE_CHECK_TIMEOUT_MS): Promise<void> {
  if (!dir.trim()) throw unusable(dir, 'no folder is set');
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(unusable(dir, `the file system did not answer within ${timeoutMs / 1000} s (a hung network or FUSE mount?)`)), timeoutMs);
  });
  try {
    await Promise.race([check(dir), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function check(dir: string): Promise<void> {
  const target = path.resolve(dir);

  // The deepest folder that exists (a bounded walk: one step per path component).
  const missing: string[] = [];
  let existing = target;
  for (;;) {
    try {
      const stat = await fs.promises.stat(existing);
      if (!stat.isDirectory()) throw unusable(dir, existing === target ? 'it is a file, not a folder' : `${existing} is a file, not a folder`);
      break;
    } catch (e) {
      if (e instanceof EngineError) throw e;
      const code = (e as NodeJS.ErrnoException).code;
      const parent = path.dirname(existing);
      if (code === 'ENOTDIR') throw unusable(dir, `a part of the path is a file, not a folder`);
      if (code !== 'ENOENT' || parent === existing) throw unusable(dir, `${existing} cannot be read (${reason(e)})`);
      missing.unshift(existing);
      existing = parent;
    }
  }

  // A kernel pseudo file system (procfs, sysfs, ...): refuse before touching it.
  if (process.platform === 'linux' && typeof fs.promises.statfs === 'function') {
    try {
      const { type } = await fs.promises.statfs(existing);
      const kind = PSEUDO_FILE_SYSTEMS.get(Number(type));
      if (kind) throw unusable(dir, `${existing} is on ${kind}, a kernel pseudo file system that cannot hold files`);
    } catch (e) {
      if (e instanceof EngineError) throw e;
      // statfs unsupported here: the probe below still decides.
    }
  }

  // Create what is missing one folder at a time: never a recursive mkdir (see the top of this file).
  for (const folder of missing) {
    try {
      await fs.promises.mkdir(folder);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' && (await fs.promises.stat(folder).then((s) => s.isDirectory(), () => false))) continue;
      throw unusable(dir, `${folder} cannot be created (${reason(e)})`);
    }
  }

  // A probe file: written, read back, deleted.
  const probe = path.join(target, `.attention-lens-probe-${process.pid}-${randomBytes(6).toString('hex')}`);
  const bytes = randomBytes(64);
  try {
    await fs.promises.writeFile(probe, bytes, { flag: 'wx' });
  } catch (e) {
    await fs.promises.rm(probe, { force: true }).catch(() => undefined);
    throw unusable(dir, `a file cannot be written in it (${reason(e)})`);
  }
  let readBack: Buffer | Error;
  try {
    readBack = await fs.promises.readFile(probe);
  } catch (e) {
    readBack = e as Error;
  }
  try {
    await fs.promises.unlink(probe);
  } catch (e) {
    throw unusable(dir, `a file written in it cannot be deleted (${reason(e)})`);
  }
  if (readBack instanceof Error) throw unusable(dir, `a file written in it cannot be read back (${reason(readBack)})`);
  if (!readBack.equals(bytes)) throw unusable(dir, 'a file written in it reads back differently');
}
