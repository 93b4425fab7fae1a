import type { Compressor, Transport } from './types';

/**
 * The browser transport: `fetch` for regular sends, `navigator.sendBeacon` for
 * the last sends of a page.
 */
export const fetchTransport: Transport = {
  async post(url, body, headers, init) {
    // `X-Lucent-Api-Key` and `Content-Encoding` make this a non-simple CORS
    // request: the browser sends a preflight first, which the server answers.
    // No cookies: the key is the only credential.
    // `keepalive` lets a request sent when the tab is hidden outlive the page;
    // `signal` aborts it after the client's timeout.
    const res = await fetch(url, {
      method: 'POST',
      headers,
      body: body as BodyInit,
      credentials: 'omit',
      mode: 'cors',
      keepalive: init?.keepalive === true,
      signal: init?.signal,
    });
    // Readable cross-origin because the server sends Access-Control-Expose-Headers: Retry-After.
    return { status: res.status, retryAfter: res.headers.get('Retry-After') };
  },

  beacon(url, body) {
    try {
      if (typeof navigator !== 'undefined' && typeof navigator.sendBeacon === 'function') {
        // text/plain keeps the beacon a CORS "simple" request (no preflight).
        // A gzip body (Uint8Array) is recognised by the server from its magic bytes.
        return navigator.sendBeacon(url, new Blob([body as BlobPart], { type: 'text/plain' }));
      }
      // No sendBeacon: a keepalive fetch outlives the page the same way (same 64 KiB quota).
      fetch(url, { method: 'POST', body: body as BodyInit, keepalive: true, credentials: 'omit', mode: 'cors' }).catch(() => {});
      return true;
    } catch {
      return false;
    }
  },
};

/** gzip with `CompressionStream`, where the browser has it; `null` otherwise (send plain JSON). */
export function gzipCompressor(): Compressor {
  if (typeof CompressionStream !== 'function') return null;
  return async (text: string) => {
    const stream = new Blob([text]).stream().pipeThrough(new CompressionStream('gzip'));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  };
}
