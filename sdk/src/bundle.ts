// Script-tag build with rrweb inside: one file defines `window.Lucent`.
import { record } from 'rrweb';
import { SDK_VERSION } from './client';
import { makeInit, type RecordFn } from './init';

const init = makeInit(() => record as unknown as RecordFn);
(globalThis as unknown as { Lucent: unknown }).Lucent = { init, version: SDK_VERSION };
