// From recording to replay in a real browser, once per queue (the embedded
// segment log, and Kafka through a tansu broker):
//
//   Chromium opens the SDK's test page (sdk/test-page) from another origin,
//   types and clicks (each value becomes a list item), changes the DOM, and
//   opens a second tab from the first (same session, another window); the
//   batches go through lucent-ingest, the queue, lucent-consumer and the
//   store; then the replay page served by lucent-query, in Chromium, lists
//   the session, plays each window to the end, and the replayed DOM (inside
//   rrweb's iframe) holds the typed values and the final state.
//
// Also checked on the page: its security headers, the window picker, seeking,
// a phone-width layout (player, list, key field), and the messages for a refused key (401: asked again),
// an unknown session (404) and an unreachable server.
//
// Screenshots go to target/replay-e2e/; LUCENT_UPDATE_SCREENSHOT=1 also writes
// the README's docs/replay-page.png (from the embedded run).
// Needs the debug binaries (`cargo build --bins`), the SDK's bundle
// (`npm run build` in sdk/), Chromium, and for Kafka the tansu broker.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { waitFor } from '../../../sdk/e2e/harness.mjs';
import { REPO, openReplayPage, playToEnd, screenshot, slowEventsProxy, withPipeline } from './stack.mjs';

const ORG = 'replay-e2e';
const TAB1_VALUES = ['alpha typed in tab 1', 'bravo typed in tab 1'];
const TAB2_VALUES = ['charlie typed in tab 2'];
const FINAL_TITLE = 'Final state: checked out';
const SDK_BUNDLE = path.join(REPO, 'sdk/dist/lucent.bundle.min.js');

for (const queue of ['embedded', 'kafka']) {
  test(`recorded in Chromium, replayed on the replay page (${queue} queue)`, { timeout: 180_000 }, async (t) => {
    assert.ok(fs.existsSync(SDK_BUNDLE), `${SDK_BUNDLE} is missing: run \`npm ci && npm run build\` in sdk/`);
    const started = Date.now();
    const note = (msg) => t.diagnostic(`${((Date.now() - started) / 1000).toFixed(1)}s ${msg}`);
    await withPipeline(t, ORG, { queue }, async (stack, browser) => {
      note(`pipeline up on the ${queue} queue: ingest ${stack.ingestUrl}, query ${stack.queryUrl}`);
      // ---- recording ---------------------------------------------------------------
      const recording = await browser.newContext({ viewport: { width: 1024, height: 640 } });
      const pageUrl =
        `${stack.pagesUrl}/sdk/test-page/index.html?endpoint=${encodeURIComponent(stack.ingestUrl)}` +
        `&key=${stack.publicKey}&flush=300&mask=0`;
      const tab1 = await recording.newPage();
      await tab1.goto(pageUrl);
      const ids = (page) => page.evaluate(() => ({ sessionId: window.lucent?.sessionId, windowId: window.lucent?.windowId, error: window.lucentError ?? null }));
      const first = await ids(tab1);
      assert.equal(first.error, null, `the SDK did not start: ${first.error}`);
      const typeAndAdd = async (page, value) => {
        await page.locator('#name').pressSequentially(value, { delay: 5 });
        await page.locator('#add').click();
      };
      for (const v of TAB1_VALUES) await typeAndAdd(tab1, v);

      const [tab2] = await Promise.all([recording.waitForEvent('page'), tab1.evaluate((url) => window.open(url), pageUrl)]);
      await tab2.waitForLoadState();
      const second = await ids(tab2);
      assert.equal(second.sessionId, first.sessionId, 'the second tab records the same session');
      assert.notEqual(second.windowId, first.windowId, 'in a window of its own');
      for (const v of TAB2_VALUES) await typeAndAdd(tab2, v);
      // A DOM change that is not an input: the final state to find in the replay.
      await tab1.bringToFront();
      await tab1.evaluate((title) => {
        document.querySelector('h1').textContent = title;
        document.body.classList.add('done');
      }, FINAL_TITLE);
      note(`session ${first.sessionId}: tab 1 ${first.windowId}, tab 2 ${second.windowId}`);

      // ---- stored --------------------------------------------------------------------
      const sid = encodeURIComponent(first.sessionId);
      const windowHas = async (windowId, texts) => {
        const res = await fetch(`${stack.queryUrl}/api/v1/sessions/${sid}/events?windowId=${encodeURIComponent(windowId)}`, {
          headers: { Authorization: `Bearer ${stack.readKey}` },
        });
        const body = res.status === 200 ? await res.text() : '';
        return texts.every((x) => body.includes(JSON.stringify(x)));
      };
      await waitFor(async () => (await windowHas(first.windowId, [...TAB1_VALUES, FINAL_TITLE])) && (await windowHas(second.windowId, TAB2_VALUES)), {
        timeoutMs: 30_000,
        everyMs: 250,
        message: () => `the session was not stored with both tabs' events within 30 s\n${stack.logs()}`,
      });
      await recording.close();
      const row = await stack.api(`/api/v1/sessions/${sid}`);
      note(`stored: ${row.eventCount} events in ${row.windows.length} windows, ${row.integrity}`);

      // ---- the replay page -------------------------------------------------------------
      const viewing = await browser.newContext({ viewport: { width: 1280, height: 720 } });
      const problems = [];
      const { page, response } = await openReplayPage(viewing, stack);
      page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
      // The sandbox refusing a recorded script is the replay working as meant.
      const expected = /frame is sandboxed and the 'allow-scripts' permission is not set/;
      page.on('console', (m) => m.type() === 'error' && !expected.test(m.text()) && problems.push(`console: ${m.text()}`));

      await t.test('the page is served with strict headers', () => {
        const h = response.headers();
        assert.equal(response.status(), 200);
        assert.match(h['content-type'], /^text\/html/);
        assert.match(h['content-security-policy'], /script-src 'self';/);
        assert.match(h['content-security-policy'], /frame-ancestors 'none'/);
        assert.equal(h['referrer-policy'], 'no-referrer');
        assert.equal(h['x-frame-options'], 'DENY');
        assert.equal(h['x-content-type-options'], 'nosniff');
      });

      await t.test('the list shows the session with its facts', async () => {
        const item = page.locator(`a.session[data-session-id="${first.sessionId}"]`);
        await item.waitFor({ timeout: 10_000 });
        assert.equal(await item.locator('.url').textContent(), pageUrl);
        assert.equal(await item.locator('.badge').textContent(), 'complete');
        assert.match(await item.locator('.agent').textContent(), /HeadlessChrome/);
        assert.match(await item.locator('.counts').textContent(), /2 tabs/);
        assert.match(await item.locator('.duration').textContent(), /^\d+:\d\d$/);
        assert.equal(await page.evaluate(() => sessionStorage.getItem('lucent.secretKey')), stack.readKey, 'the key is in sessionStorage');
        assert.equal(await page.evaluate(() => localStorage.length), 0, 'nothing in localStorage');
        await screenshot(page, `${queue}-list`);
      });

      await t.test('tab 1 replays to the typed values and the final state', async () => {
        const frame = await playToEnd(page, first.sessionId, first.windowId);
        assert.equal(await page.locator('#window-picker').inputValue(), first.windowId);
        assert.deepEqual(await frame.locator('#items li').allTextContents(), TAB1_VALUES);
        assert.equal(await frame.locator('h1').textContent(), FINAL_TITLE);
        assert.equal(await frame.locator('body').getAttribute('class'), 'done');
        // At 1280×720 the recording and the controls fit without scrolling.
        for (const part of ['#stage', '#play', '#seek', '#speed']) {
          const box = await page.locator(part).boundingBox();
          assert.ok(box.y + box.height <= 720 && box.x + box.width <= 1280, `${part} within 1280×720: ${JSON.stringify(box)}`);
        }
        // Back to just after the first value was typed, before it was added:
        // the replayed input holds the text as typed.
        const events = await stack.api(`/api/v1/sessions/${sid}/events?windowId=${encodeURIComponent(first.windowId)}`);
        const typed = events.find((e) => e.type === 3 && e.data.source === 5 && e.data.text === TAB1_VALUES[0]);
        assert.ok(typed, 'the input event of the first value was stored');
        const t0 = Math.min(...events.map((e) => e.timestamp));
        await page.locator('#seek').evaluate((input, value) => {
          input.value = value;
          input.dispatchEvent(new Event('change'));
        }, String(typed.timestamp - t0 + 1));
        await waitFor(async () => (await frame.locator('#name').inputValue({ timeout: 1000 }).catch(() => null)) === TAB1_VALUES[0], {
          timeoutMs: 10_000,
          message: `the replayed input does not hold "${TAB1_VALUES[0]}"`,
        });
        assert.deepEqual(await frame.locator('#items li').allTextContents(), [], 'not yet added');
        await playToEnd(page, first.sessionId, first.windowId);
        const shot = await screenshot(page, `${queue}-tab1`);
        if (queue === 'embedded' && process.env.LUCENT_UPDATE_SCREENSHOT) fs.copyFileSync(shot, path.join(REPO, 'docs/replay-page.png'));
      });

      await t.test('the window picker and seeking: tab 2 at its end holds its own value', async () => {
        // Without a window in the URL the tab opened first plays, listed first,
        // whatever the order of the (random) window ids.
        await page.goto(`${stack.queryUrl}/#/sessions/${sid}`);
        await page.locator('#window-picker').waitFor({ timeout: 20_000 });
        assert.equal(await page.locator('#window-picker').inputValue(), first.windowId);
        const labels = await page.locator('#window-picker option').allTextContents();
        assert.equal(labels.length, 2);
        assert.match(labels[0], /^Tab 1, opened /);
        assert.deepEqual(
          await page.locator('#window-picker option').evaluateAll((options) => options.map((o) => o.value)),
          [first.windowId, second.windowId],
        );
        await page.locator('#window-picker').selectOption(second.windowId);
        await page.locator('#player[data-stream="done"]').waitFor({ timeout: 20_000 });
        assert.match(page.url(), new RegExp(`window=${encodeURIComponent(second.windowId)}$`));
        const seek = page.locator('#seek');
        const end = await seek.getAttribute('max');
        await seek.evaluate((input, value) => {
          input.value = value;
          input.dispatchEvent(new Event('change'));
        }, end);
        const frame = page.frameLocator('#stage iframe');
        await waitFor(async () => (await frame.locator('#items li').allTextContents()).length === TAB2_VALUES.length, {
          timeoutMs: 10_000,
          message: 'tab 2 did not show its item after seeking to the end',
        });
        assert.deepEqual(await frame.locator('#items li').allTextContents(), TAB2_VALUES);
        assert.equal(await page.locator('#player').getAttribute('data-state'), 'paused');
        // Back to the start: the list is empty again.
        await seek.evaluate((input) => {
          input.value = '0';
          input.dispatchEvent(new Event('change'));
        });
        await waitFor(async () => (await frame.locator('#items li').count()) === 0, { timeoutMs: 10_000, message: 'seeking back did not empty the list' });
      });

      await t.test('a session that arrives slowly plays before its last piece', async () => {
        // The stream of tab 1 in 20 pieces, 150 ms apart, through a slow proxy
        // that holds the last piece until the player has been seen playing.
        const proxy = await slowEventsProxy(stack.queryUrl, { pieces: 20, delayMs: 150 });
        const slow = await viewing.newPage();
        try {
          await slow.goto(`${proxy.url}/#/sessions/${sid}?window=${encodeURIComponent(first.windowId)}`);
          // The key is per tab (sessionStorage): this tab asks for it.
          await slow.locator('input[name="secretKey"]').fill(stack.readKey);
          await slow.locator('#key-form button[type="submit"]').click();
          await slow.locator('#play:not([disabled])').waitFor({ timeout: 20_000 });
          const when = await slow.locator('#player').evaluate((p) => ({ stream: p.dataset.stream, events: Number(p.dataset.events) }));
          assert.equal(when.stream, 'streaming', 'the player was ready while the events were still arriving');
          await slow.locator('#play').click();
          assert.equal(await slow.locator('#player').getAttribute('data-stream'), 'streaming', 'and played before the last piece');
          proxy.release();
          await slow.locator('#player[data-stream="done"]').waitFor({ timeout: 20_000 });
          const total = Number(await slow.locator('#player').getAttribute('data-events'));
          t.diagnostic(`playable after ${when.events} of ${total} events`);
          assert.ok(when.events < total, `playable after ${when.events} of ${total} events`);
          await slow.locator('#player[data-state="finished"]').waitFor({ timeout: 30_000 });
          const frame = slow.frameLocator('#stage iframe');
          assert.deepEqual(await frame.locator('#items li').allTextContents(), TAB1_VALUES);
          assert.equal(await frame.locator('h1').textContent(), FINAL_TITLE);
        } finally {
          await slow.close();
          await proxy.close();
        }
      });

      await t.test('usable at phone width', async () => {
        await page.setViewportSize({ width: 390, height: 844 });
        await page.evaluate(() => window.dispatchEvent(new Event('resize')));
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        assert.ok(overflow <= 0, `the page is ${overflow}px wider than the phone`);
        for (const control of ['#play', '#seek', '#speed', '#skip-inactive']) assert.ok(await page.locator(control).isVisible(), `${control} visible`);
        const stage = await page.locator('#stage').boundingBox();
        assert.ok(stage.width <= 390, `the player fits (${stage.width}px)`);
        await screenshot(page, `${queue}-phone`);
        // The list, its rows stacked: the long first URL does not widen the page.
        await page.evaluate(() => {
          location.hash = '#/';
        });
        const item = page.locator(`a.session[data-session-id="${first.sessionId}"]`);
        await item.waitFor({ timeout: 10_000 });
        const listOverflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        assert.ok(listOverflow <= 0, `the list is ${listOverflow}px wider than the phone`);
        for (const part of ['.url', '.duration', '.badge', '.agent']) {
          const box = await item.locator(part).boundingBox();
          assert.ok(box && box.width > 0 && box.x >= 0 && box.x + box.width <= 390, `${part} within the phone's width: ${JSON.stringify(box)}`);
        }
        await screenshot(page, `${queue}-phone-list`);
        // The Secret key field, in a tab that has no key yet.
        const fresh = await viewing.newPage();
        await fresh.setViewportSize({ width: 390, height: 844 });
        await fresh.goto(`${stack.queryUrl}/`);
        const input = fresh.locator('input[name="secretKey"]');
        await input.waitFor({ timeout: 10_000 });
        const inputBox = await input.boundingBox();
        assert.ok(inputBox.x >= 0 && inputBox.x + inputBox.width <= 390, `the key field fits: ${JSON.stringify(inputBox)}`);
        assert.ok(await fresh.locator('#key-form button[type="submit"]').isVisible());
        assert.ok((await fresh.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)) <= 0, 'the key form fits');
        await fresh.close();
        await page.setViewportSize({ width: 1280, height: 720 });
      });

      assert.deepEqual(problems, [], 'no script error or console error on the replay page');

      await t.test('clear messages: unknown session (404), unreachable server, refused key (401)', async () => {
        await page.evaluate(() => {
          location.hash = '#/sessions/no-such-session';
        });
        await page.locator('.error[data-kind="not-found"]').waitFor({ timeout: 10_000 });
        assert.match(await page.locator('div.error').textContent(), /Session not found/);

        await viewing.route('**/api/v1/**', (route) => route.abort('connectionrefused'));
        await page.evaluate(() => {
          location.hash = '#/';
        });
        await page.locator('.error[data-kind="network"]').waitFor({ timeout: 10_000 });
        assert.match(await page.locator('div.error').textContent(), /cannot be reached/);
        await viewing.unroute('**/api/v1/**');

        await page.evaluate(() => sessionStorage.setItem('lucent.secretKey', `luc_sk_${'f'.repeat(32)}`));
        await page.reload();
        await page.locator('#key-panel:not([hidden])').waitFor({ timeout: 10_000 });
        assert.match(await page.locator('#key-message').textContent(), /refused/);
        assert.equal(await page.evaluate(() => sessionStorage.getItem('lucent.secretKey')), null, 'the refused key is forgotten');
        await screenshot(page, `${queue}-key-refused`);
      });
      await viewing.close();
      note('done');
    });
  });
}
