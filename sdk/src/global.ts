// Script-tag build without rrweb: load rrweb's UMD build first (it defines `window.rrweb`).
import { SDK_VERSION } from './client';
import { makeInit, type RecordFn } from './init';

const init = makeInit(() => (globalThis as unknown as { rrweb?: { record?: RecordFn } }).rrweb?.record);
(globalThis as unknown as { Lucent: unknown }).Lucent = { init, version: SDK_VERSION };
