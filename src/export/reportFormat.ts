// What the HTML report's page holds, shared by its writer (src/export/report.ts, in Node) and its
// script (webview/report/main.ts, in the browser): kept apart so the browser bundle pulls in no Node.

import type { SourceText, WireModel, WireToken } from '../protocol/attention';
import type { RunStartMessage } from '../protocol/webview';

/** The JSON block: the run without its attention. */
export interface ReportRunJson {
  format: 'attention-lens-report';
  version: 1;
  model: WireModel;
  /** Absolute offsets, as in `sourceText`. */
  tokens: WireToken[];
  sourceText: SourceText;
  source: string;
  truncation: RunStartMessage['truncation'];
  notices: string[];
  runtime: string;
  /** Each layer's block: [heads][T][T] float16, little-endian, base64. */
  encoding: 'f16';
}

/** Element ids of the JSON block and of layer `l`'s block. */
export const REPORT_RUN_ID = 'report-run';
export const reportLayerId = (l: number): string => `report-layer-${l}`;
