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
