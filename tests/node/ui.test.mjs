// The browser UI in headless Chromium: prompt, generate, progress, gallery,
// cancel of a second job; saves a screenshot.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { startServer } from './server_util.mjs';

test('generate from the UI, then cancel a second job', async () => {
  const srv = await startServer();
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] });
  try {
    // Playwright's waitForFunction evaluates strings, which the page's CSP forbids.
    const page = await (await browser.newContext({ bypassCSP: true })).newPage();
    await page.goto(srv.url + '/');
    await page.waitForFunction(() => document.querySelectorAll('#sampler option').length > 5);
    await page.fill('#prompt', 'a photograph of an astronaut riding a horse');
    await page.fill('#steps', '6');
    await page.click('#go');
    await page.waitForFunction(() => /step \d+\/\d+/.test(document.querySelector('#status').textContent) ||
                                     /done/.test(document.querySelector('#status').textContent));
    await page.waitForSelector('#gallery .card img', { timeout: 60000 });
    await page.waitForFunction(() => /done in/.test(document.querySelector('#status').textContent));
    const info = await page.textContent('#gallery .card pre');
    assert.match(info, /Steps: 6/);
    // a long second job, cancelled with the same button
    await page.fill('#steps', '1000');
    await page.click('#go');
    await page.waitForFunction(() => document.querySelector('#go').textContent === 'Cancel');
    await page.waitForFunction(() => /step [1-9]/.test(document.querySelector('#status').textContent), null, { timeout: 30000 });
    await page.click('#go');
    await page.waitForFunction(() => document.querySelector('#status').textContent === 'cancelled', null, { timeout: 30000 });
    assert.equal(await page.textContent('#go'), 'Generate');
    // an error is shown next to the field the server names
    await page.fill('#steps', '0');
    await page.click('#go');
    await page.waitForFunction(() => document.querySelector('.err[data-param="steps"]').textContent.includes('invalid_argument'));
    await page.screenshot({ path: process.env.VG_SCREENSHOT || 'ui.png', fullPage: true });
  } finally {
    await browser.close();
    await srv.stop();
  }
});
