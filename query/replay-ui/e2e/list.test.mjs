// The session list against the real API: newest first, paged through
// `nextCursor` with "Older sessions", and each integrity badge (complete,
// gaps, no full snapshot), with the player saying when a session cannot be
// played. Sessions are posted straight to the ingest, as an SDK would.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { waitFor } from '../../../sdk/e2e/harness.mjs';
import { openReplayPage, screenshot, withPipeline } from './stack.mjs';

const PAGE_SIZE = 50; // src/sessions.js
const COMPLETE = 52;

function events(now, { snapshot = true } = {}) {
  const node = {
    type: 0,
    id: 1,
    childNodes: [
      { type: 1, id: 2, name: 'html', publicId: '', systemId: '' },
      { type: 2, id: 3, tagName: 'html', attributes: {}, childNodes: [{ type: 2, id: 4, tagName: 'body', attributes: {}, childNodes: [] }] },
    ],
  };
  const meta = { type: 4, timestamp: now, data: { href: 'https://shop.test/', width: 800, height: 600 } };
  return snapshot ? [meta, { type: 2, timestamp: now + 1, data: { node, initialOffset: { left: 0, top: 0 } } }] : [meta];
}

test('the list: newest first, paged, with every integrity badge', { timeout: 120_000 }, async (t) => {
  await withPipeline(t, 'list-e2e', {}, async (stack, browser) => {
    const post = async (sessionId, seq, evs) => {
      const res = await fetch(`${stack.ingestUrl}/api/sdk/replay`, {
        method: 'POST',
        headers: { 'X-Lucent-Api-Key': stack.publicKey, 'Content-Type': 'application/json' },
        body: JSON.stringify({ sessionId, seq, events: evs, metadata: { url: `https://shop.test/${sessionId}` } }),
      });
      assert.equal(res.status, 202);
    };
    // One after the other, so that each is first received after the previous one.
    const ids = [];
    for (let i = 0; i < COMPLETE; i++) {
      const id = `s-${String(i).padStart(3, '0')}`;
      await post(id, 0, events(Date.now()));
      ids.push(id);
      await waitFor(async () => (await stack.api(`/api/v1/sessions/${id}`)) !== null, { timeoutMs: 10_000, everyMs: 20, message: `${id} not stored` });
    }
    await post('gappy', 0, events(Date.now()));
    await post('gappy', 2, [{ type: 3, timestamp: Date.now() + 50, data: { source: 1, positions: [] } }]);
    await waitFor(async () => (await stack.api('/api/v1/sessions/gappy'))?.eventCount === 3, { timeoutMs: 10_000, message: 'gappy not stored' });
    await post('unplayable', 0, events(Date.now(), { snapshot: false }));
    await waitFor(async () => (await stack.api('/api/v1/sessions/unplayable')) !== null, { timeoutMs: 10_000, message: 'unplayable not stored' });

    const { page } = await openReplayPage(await browser.newContext({ viewport: { width: 1280, height: 720 } }), stack);
    const shown = () => page.locator('a.session').evaluateAll((as) => as.map((a) => a.dataset.sessionId));
    await page.locator('a.session').first().waitFor();
    const first = await shown();
    assert.equal(first.length, PAGE_SIZE, 'one page');
    const newestFirst = ['unplayable', 'gappy', ...ids.slice().reverse()];
    assert.deepEqual(first, newestFirst.slice(0, PAGE_SIZE));
    const badge = (id) => page.locator(`a.session[data-session-id="${id}"] .badge`).textContent();
    assert.equal(await badge('unplayable'), 'no full snapshot');
    assert.equal(await badge('gappy'), 'gaps');
    assert.match(await page.locator('a.session[data-session-id="gappy"] .badge').getAttribute('title'), /^1 batch missing/);
    assert.equal(await badge(ids.at(-1)), 'complete');
    await screenshot(page, 'list-badges');

    await page.locator('button.more').click();
    await waitFor(async () => (await shown()).length === newestFirst.length, { timeoutMs: 10_000, message: 'the second page did not come' });
    assert.deepEqual(await shown(), newestFirst, 'every session once, newest first');
    assert.ok(await page.locator('button.more').isHidden(), 'no more pages');

    await page.locator('a.session[data-session-id="unplayable"]').click();
    await page.locator('.status', { hasText: 'no full snapshot' }).waitFor({ timeout: 10_000 });
    assert.equal(await page.locator('#player').count(), 0, 'no player for an unplayable session');
  });
});

