// The player's controls on a session with a long quiet stretch: a mouse move
// and a text change, then 30 minutes without any user action, then another
// move and a last text change. Posted straight to the ingest, as an SDK would.
//
//   - Skip inactivity off, 1×: the first text change plays and no skip starts
//     (rrweb decides to skip when it plays the move before the stretch, so
//     by the time the text shows, a skip would have started); pause stops the
//     clock, play goes on from where it stopped.
//   - Skip inactivity on, from the start: the skip starts at the move before
//     the stretch ("Skipping inactivity (360×)…" shows), and the session plays
//     to its end, where the last text change holds: 30 minutes at 1×, which
//     this test could not wait for without the skip.
//
// No wall-clock race: every step waits for a state the page shows; the one
// fixed wait (300 ms, three ticks of the page's clock, while paused) only
// gives a clock that should not move time to show that it does.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { waitFor } from '../../../sdk/e2e/harness.mjs';
import { openReplayPage, screenshot, withPipeline } from './stack.mjs';

const SESSION = 'quiet-stretch';
const QUIET_MS = 30 * 60 * 1000;

/** The session's events: its quiet stretch ends 1 minute ago. */
function quietSession(now) {
  const t0 = now - QUIET_MS - 60_000;
  const elem = (id, tagName, attributes, childNodes = []) => ({ type: 2, id, tagName, attributes, childNodes });
  const node = {
    type: 0,
    id: 1,
    childNodes: [
      { type: 1, id: 2, name: 'html', publicId: '', systemId: '' },
      elem(3, 'html', {}, [
        elem(4, 'head', {}),
        elem(5, 'body', {}, [elem(6, 'p', { id: 'phase' }, [{ type: 3, id: 7, textContent: 'start' }])]),
      ]),
    ],
  };
  const text = (value) => ({ source: 0, texts: [{ id: 7, value }], attributes: [], removes: [], adds: [] });
  const move = { source: 1, positions: [{ x: 20, y: 20, id: 6, timeOffset: 0 }] };
  return [
    { type: 4, timestamp: t0, data: { href: 'https://quiet.test/', width: 800, height: 600 } },
    { type: 2, timestamp: t0 + 1, data: { node, initialOffset: { left: 0, top: 0 } } },
    { type: 3, timestamp: t0 + 500, data: move },
    { type: 3, timestamp: t0 + 1000, data: text('before the pause') },
    { type: 3, timestamp: t0 + 1000 + QUIET_MS, data: move },
    { type: 3, timestamp: t0 + 1010 + QUIET_MS, data: text('after the pause') },
  ];
}

/** Sets the seek bar to `ms` as a person letting go of it does. */
const seekTo = (page, ms) =>
  page.locator('#seek').evaluate((input, value) => {
    input.value = value;
    input.dispatchEvent(new Event('change'));
  }, String(ms));

test('the controls: skip inactivity, pause and play on a session with a 30-minute quiet stretch', { timeout: 120_000 }, async (t) => {
  await withPipeline(t, 'controls-e2e', {}, async (stack, browser) => {
    const res = await fetch(`${stack.ingestUrl}/api/sdk/replay`, {
      method: 'POST',
      headers: { 'X-Lucent-Api-Key': stack.publicKey, 'Content-Type': 'application/json' },
      body: JSON.stringify({ sessionId: SESSION, seq: 0, events: quietSession(Date.now()), metadata: { url: 'https://quiet.test/' } }),
    });
    assert.equal(res.status, 202);
    await waitFor(async () => (await stack.api(`/api/v1/sessions/${SESSION}`))?.eventCount === 6, {
      timeoutMs: 10_000,
      message: () => `${SESSION} not stored\n${stack.logs()}`,
    });

    const { page } = await openReplayPage(await browser.newContext({ viewport: { width: 1280, height: 720 } }), stack);
    const problems = [];
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    await page.evaluate((h) => {
      location.hash = h;
    }, `#/sessions/${SESSION}`);
    await page.locator('#player[data-stream="done"]').waitFor({ timeout: 20_000 });
    const player = page.locator('#player');
    const frame = page.frameLocator('#stage iframe');
    const phase = () => frame.locator('#phase').textContent();
    assert.equal(await phase(), 'start');
    assert.equal(await page.locator('#time').textContent(), '0:00 / 30:01');
    assert.equal(await page.locator('#speed').inputValue(), '1');
    assert.ok(await page.locator('#skip-inactive').isChecked(), 'skip inactivity is on by default');

    await t.test('skip inactivity off: no skip; pause stops the clock, play goes on', async () => {
      await page.locator('#skip-inactive').uncheck();
      await page.locator('#play').click();
      await waitFor(async () => (await phase()) === 'before the pause', { timeoutMs: 10_000, message: 'the first text change did not play' });
      assert.equal(await player.getAttribute('data-skips'), '0', 'no skip started');
      assert.equal(await player.getAttribute('data-state'), 'playing');
      assert.ok(await page.locator('#skipping').isHidden());

      await page.locator('#play').click();
      assert.equal(await player.getAttribute('data-state'), 'paused');
      assert.equal(await page.locator('#play').textContent(), 'Play');
      // Twice through the page's 100 ms ticker, paused: the clock stays still.
      const stopped = await page.evaluate(async () => {
        const seek = document.getElementById('seek');
        const before = Number(seek.value);
        await new Promise((resolve) => setTimeout(resolve, 300));
        return { before, after: Number(seek.value) };
      });
      assert.equal(stopped.after, stopped.before, 'paused: the position does not move');
      assert.ok(stopped.before >= 999, `paused after the first text change (${stopped.before} ms)`);

      // Play, and the first position shown after it: on from the paused one, not from the start.
      const resumed = await page.evaluate(async (before) => {
        document.getElementById('play').click();
        const seek = document.getElementById('seek');
        for (let i = 0; i < 1000 && Number(seek.value) === before; i++) await new Promise((resolve) => setTimeout(resolve, 10));
        return { state: document.getElementById('player').dataset.state, at: Number(seek.value) };
      }, stopped.before);
      assert.equal(resumed.state, 'playing');
      assert.equal(await page.locator('#play').textContent(), 'Pause');
      assert.ok(resumed.at > stopped.before, `went on from ${stopped.before} ms (now ${resumed.at} ms)`);
      assert.equal(await phase(), 'before the pause');
    });

    await t.test('skip inactivity on: the quiet stretch is skipped and the session plays to its end', async () => {
      await page.locator('#skip-inactive').check();
      // Back to the start, still playing: the move before the stretch plays again, now with skipping on.
      await seekTo(page, 0);
      // Read at once, in the page: the indicator while rrweb skips.
      const shown = await page.waitForFunction(
        () => {
          const p = document.getElementById('player');
          const label = document.getElementById('skipping');
          return p.dataset.skipping === 'true' && label.checkVisibility() && label.textContent;
        },
        null,
        { timeout: 10_000 },
      );
      assert.match(await shown.jsonValue(), /^Skipping inactivity \(360×\)…$/);
      await screenshot(page, 'controls-skipping');
      await page.locator('#player[data-state="finished"]').waitFor({ timeout: 60_000 });
      assert.equal(await phase(), 'after the pause');
      assert.ok(Number(await player.getAttribute('data-skips')) >= 1);
      assert.equal(await player.getAttribute('data-skipping'), null, 'the skip ended');
      assert.ok(await page.locator('#skipping').isHidden());
      assert.equal(await page.locator('#time').textContent(), '30:01 / 30:01');
    });

    assert.deepEqual(problems, [], 'no script error on the replay page');
  });
});
