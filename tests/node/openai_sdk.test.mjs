// The official OpenAI Node SDK against `visiongen serve`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import OpenAI, { toFile } from 'openai';
import { startServer, isPng } from './server_util.mjs';

test('images.generate and images.edit return images', async () => {
  const srv = await startServer(['--api-key', 'test-key']);
  try {
    const client = new OpenAI({ apiKey: 'test-key', baseURL: srv.url + '/v1' });
    const gen = await client.images.generate({
      model: 'dall-e-2', prompt: 'a photograph of an astronaut riding a horse', n: 2, size: '64x64',
      response_format: 'b64_json', steps: 2, seed: 42,
    });
    assert.equal(gen.data.length, 2);
    assert.ok(isPng(Buffer.from(gen.data[0].b64_json, 'base64')));
    const fixtures = process.env.VG_FIXTURES;
    const image = await toFile(fs.createReadStream(path.join(fixtures, 'sd1-tiny/inputs/test_image_64.png')), 'image.png', { type: 'image/png' });
    const mask = await toFile(fs.createReadStream(path.join(fixtures, 'sd1-tiny/inputs/test_mask_64.png')), 'mask.png', { type: 'image/png' });
    const edit = await client.images.edit({ image, mask, prompt: 'a red circle', n: 1, response_format: 'b64_json', steps: 2 });
    assert.equal(edit.data.length, 1);
    assert.ok(isPng(Buffer.from(edit.data[0].b64_json, 'base64')));
    // errors arrive in OpenAI's shape, so the SDK raises its own error classes
    await assert.rejects(client.images.generate({ prompt: 'x', size: 'huge' }), (e) => e instanceof OpenAI.BadRequestError && e.param === 'size');
    const bad = new OpenAI({ apiKey: 'wrong', baseURL: srv.url + '/v1', maxRetries: 0 });
    await assert.rejects(bad.images.generate({ prompt: 'x' }), (e) => e instanceof OpenAI.AuthenticationError);
  } finally {
    await srv.stop();
  }
});

// FLUX through the SDK: the preset fills what the request leaves out
// (cfg 1, distilled guidance 3.5); guidance_scale is FluxPipeline's guidance.
test('images.generate with a FLUX model', async () => {
  const fx = process.env.VG_FIXTURES;
  const srv = await startServer(['--precision', 'fp32'], fx + '/flux-tiny/models/flux-tiny-dev');
  try {
    const client = new OpenAI({ apiKey: 'none', baseURL: srv.url + '/v1' });
    const gen = await client.images.generate({ model: 'flux-tiny-dev', prompt: 'a red fox', size: '64x64', steps: 2, seed: 3, guidance_scale: 5 });
    assert.equal(gen.data.length, 1);
    const png = Buffer.from(gen.data[0].b64_json, 'base64');
    assert.ok(isPng(png));
    // the PNG's A1111 parameters chunk records the distilled guidance
    assert.match(png.toString('latin1'), /Guidance: 5/);
    assert.match(png.toString('latin1'), /CFG scale: 1/);
  } finally {
    await srv.stop();
  }
});
