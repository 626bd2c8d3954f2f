// Paths into ../shared (read in place, never copied) and readers for its reference fixtures.
import * as fs from 'node:fs';
import { after } from 'node:test';
import * as os from 'node:os';
import * as path from 'node:path';

export const SHARED = path.resolve(__dirname, '../../../../shared');
export const TINY_BERT = path.join(SHARED, 'fixtures/tiny-bert');
export const TINY_GPT2 = path.join(SHARED, 'fixtures/tiny-gpt2');
export const STORIES = path.join(SHARED, 'models/stories260K');
export const STORIES_GQA = path.join(SHARED, 'models/stories260K-gqa');
export const BERT_TOKENIZER = path.join(SHARED, 'tokenizers/bert-base-uncased');

export interface ReferenceCase {
  input_ids: number[][];
  attention_mask: number[][];
  token_type_ids?: number[][];
  position_ids?: number[][];
  file: string;
  /** [layers, batch, heads, q, k] */
  shape: [number, number, number, number, number];
}

export function readCases(fixture: string): Array<ReferenceCase & { reference: Float32Array }> {
  const cases = JSON.parse(fs.readFileSync(path.join(fixture, 'reference/cases.json'), 'utf8')) as ReferenceCase[];
  return cases.map((c) => {
    const bytes = fs.readFileSync(path.join(fixture, 'reference', c.file));
    const reference = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    return { ...c, reference };
  });
}

export function tempDir(prefix = 'attention-lens-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A maker of fresh temp folders for one test file, all removed after its tests. */
export function tempDirs(prefix: string): () => string {
  const dirs: string[] = [];
  after(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
  return () => {
    const d = tempDir(prefix);
    dirs.push(d);
    return d;
  };
}
