// Pure attention math shared by the engine, the extension host and the webview (no DOM, no vscode).
export * from './f16';
export * from './tensor';
export * from './words';
export * from './rollout';
export * from './attended';
export * from './thumbs';
export * from './valueWeighted';
export * from './cross';
export * from './rows';
