// Picks the ONNX Runtime build. Native onnxruntime-node is fastest; its prebuilt binary can fail
// to load (unsupported platform, missing libc), so `auto` falls back to the WASM build with a notice.
import { EngineError, type RuntimeChoice } from './types';
import type * as OrtTypes from 'onnxruntime-common';

export type Ort = typeof OrtTypes;

export interface LoadedRuntime {
  ort: Ort;
  /** e.g. "onnxruntime-node cpu". */
  label: string;
  executionProviders: string[];
  notice?: string;
}

/** The module loaders, replaceable in tests to simulate a binary that cannot load. */
// require(), not import: loaded on demand, so a binary that cannot load throws here, where `auto` catches it.
/* eslint-disable @typescript-eslint/no-require-imports */
export const runtimeLoaders = {
  native: (): Ort => require('onnxruntime-node') as Ort,
  wasm: (): Ort => require('onnxruntime-web') as Ort,
};
/* eslint-enable @typescript-eslint/no-require-imports */

export function loadRuntime(choice: RuntimeChoice, threads?: number): LoadedRuntime {
  const loadWasm = (notice?: string): LoadedRuntime => {
    let ort: Ort;
    try {
      ort = runtimeLoaders.wasm();
    } catch (e) {
      throw new EngineError('RUNTIME_UNAVAILABLE', `The WASM runtime (onnxruntime-web) could not load: ${(e as Error).message}`);
    }
    // Threads in onnxruntime-web need SharedArrayBuffer workers; a single thread is the portable choice.
    ort.env.wasm.numThreads = 1;
    return { ort, label: 'onnxruntime-web wasm', executionProviders: ['wasm'], notice };
  };
  const loadNative = (): Ort => {
    const ort = runtimeLoaders.native();
    if (threads) (ort.env as { threads?: number }).threads = threads;
    return ort;
  };

  switch (choice) {
    case 'wasm':
      return loadWasm();
    case 'webgpu':
      try {
        return { ort: loadNative(), label: 'onnxruntime-node webgpu', executionProviders: ['webgpu'] };
      } catch (e) {
        throw new EngineError('RUNTIME_UNAVAILABLE', `The native runtime needed for WebGPU could not load: ${(e as Error).message}`);
      }
    case 'cpu':
      try {
        return { ort: loadNative(), label: 'onnxruntime-node cpu', executionProviders: ['cpu'] };
      } catch (e) {
        throw new EngineError(
          'RUNTIME_UNAVAILABLE',
          `The native ONNX Runtime (onnxruntime-node) could not load on ${process.platform}-${process.arch}: ${(e as Error).message}. Set the runtime to "wasm" or "auto".`,
        );
      }
    case 'auto':
    default:
      try {
        return { ort: loadNative(), label: 'onnxruntime-node cpu', executionProviders: ['cpu'] };
      } catch (e) {
        return loadWasm(
          `The native ONNX Runtime could not load (${(e as Error).message.split('\n')[0]}); using the WASM runtime instead, which is several times slower.`,
        );
      }
  }
}
