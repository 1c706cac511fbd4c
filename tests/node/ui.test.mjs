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

// The controls follow the selected model's family (POST /v1/models/{id}/load):
// FLUX-dev distilled guidance and "true CFG", no clip skip; schnell no
// guidance; SD3 skip layers.
test('per-family controls for FLUX and SD3', async () => {
  const fx = process.env.VG_FIXTURES;
  const srv = await startServer(['--precision', 'fp32', '--models-dir', fx + '/flux-tiny/models', '--models-dir', fx + '/sd3-tiny/models'],
                                fx + '/flux-tiny/models/flux-tiny-dev');
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] });
  try {
    const page = await (await browser.newContext({ bypassCSP: true })).newPage();
    await page.goto(srv.url + '/');
    await page.waitForFunction(() => document.querySelectorAll('#sampler option').length > 5);
    const visible = (id) => page.isVisible('#ctl-' + id);
    assert.equal(await page.textContent('#family'), 'flux-dev');
    assert.equal(await visible('guidance'), true);
    assert.equal(await visible('clip_skip'), false);
    assert.equal(await visible('skip_layers'), false);
    assert.equal(await page.textContent('#cfg_label'), 'true CFG');
    assert.equal(await page.inputValue('#steps'), '28');
    assert.equal(await page.inputValue('#cfg_scale'), '1');
    assert.equal(await page.inputValue('#guidance'), '3.5');
    // generate with the distilled guidance the UI shows
    await page.fill('#steps', '2');
    await page.fill('#guidance', '5');
    await page.selectOption('#size', '64x64');
    await page.click('#go');
    await page.waitForSelector('#gallery .card img', { timeout: 120000 });
    assert.match(await page.textContent('#gallery .card pre'), /Guidance: 5/);

    await page.selectOption('#model', 'flux-tiny-schnell');
    await page.waitForFunction(() => document.querySelector('#family').textContent === 'flux-schnell');
    assert.equal(await visible('guidance'), false);
    assert.equal(await page.inputValue('#steps'), '4');

    await page.selectOption('#model', 'sd3-tiny');
    await page.waitForFunction(() => document.querySelector('#family').textContent === 'sd3', null, { timeout: 60000 });
    assert.equal(await visible('guidance'), false);
    assert.equal(await visible('skip_layers'), true);
    assert.equal(await visible('clip_skip'), true);
    assert.equal(await page.textContent('#cfg_label'), 'CFG scale');
    assert.equal(await page.inputValue('#cfg_scale'), '7');
  } finally {
    await browser.close();
    await srv.stop();
  }
});

// The video tab with a Wan model: frames and fps, a clip made through the
// jobs API, shown in a player that Chromium can decode (WebM/VP9).
test('video tab generates a short clip and plays it', async () => {
  const fx = process.env.VG_FIXTURES;
  const srv = await startServer(['--precision', 'fp32'], fx + '/wan22-tiny/models/wan22-tiny-ti2v');
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] });
  try {
    const page = await (await browser.newContext({ bypassCSP: true })).newPage();
    await page.goto(srv.url + '/');
    await page.waitForFunction(() => document.querySelectorAll('#sampler option').length > 5);
    await page.waitForFunction(() => document.querySelector('#tab-video').classList.contains('on'));
    assert.equal(await page.isVisible('#frames'), true);
    await page.fill('#prompt', 'a red balloon floats over a field');
    await page.selectOption('#size', '64x64');
    await page.fill('#steps', '2');
    await page.fill('#frames', '5');
    await page.fill('#fps', '12');
    await page.click('#go');
    await page.waitForSelector('#gallery .card video', { timeout: 120000 });
    await page.waitForFunction(() => { const v = document.querySelector('#gallery video'); return v && v.readyState >= 1; },
                               null, { timeout: 30000 });
    const [w, h] = await page.evaluate(() => { const v = document.querySelector('#gallery video'); return [v.videoWidth, v.videoHeight]; });
    assert.deepEqual([w, h], [64, 64]);
    assert.match(await page.textContent('#gallery .card pre'), /5 frames at 12 fps/);
  } finally {
    await browser.close();
    await srv.stop();
  }
});
