// The chat page of `h2ovl serve` in a real browser (Debian's headless Chromium driven by
// playwright-core), against three servers started by scripts/test-webui.sh on the tiny golden
// checkpoint: BASE (no key), BASE_KEY (--api-key KEY) and DOOMED_BASE (process DOOMED_PID, which
// this test kills).
//
// Steps: the settings panel shows the server's defaults; a PNG attached with the button and a
// 2-page PDF dropped on the page, a question, the streamed answer with its timings; a follow-up
// that reuses the KV cache; paste adds an image; Stop cuts a long generation; reload finds the
// conversation again; an answer containing <script> (a crafted SSE stream fulfilled by
// page.route) is shown as text; a narrow window turns the settings panel into a closed drawer;
// with --api-key the page asks for the key, keeps it, and works; a phone (390×844, touch): the
// drawers, the composer in view, the camera input, a photo + PDF question answered; the server
// killed mid-answer, then gone: messages in words instead of "Failed to fetch".
// Prints "N passed, M failed" and exits non-zero on any failure.
import { chromium } from 'playwright-core';
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const env = (k) => { const v = process.env[k]; if (!v) throw new Error(`${k} is not set (run scripts/test-webui.sh)`); return v; };
const BASE = env('BASE'), BASE_KEY = env('BASE_KEY'), KEY = env('KEY');
const PNG = env('PNG'), JPG = env('JPG'), SHOT = env('SCREENSHOT'), SHOT_PHONE = env('SCREENSHOT_PHONE');
const DOOMED = env('DOOMED_BASE'), DOOMED_PID = Number(env('DOOMED_PID'));
const TIMEOUT = 30_000;

// A 2-page PDF written as raw PDF syntax (text in Helvetica + a filled rectangle on each page),
// with a correct cross-reference table so any reader, ours included, opens it.
function twoPagePdf() {
  const page = (n, text, rgb) => `BT /F1 20 Tf 30 220 Td (${text}) Tj ET ${rgb} rg 30 40 ${120 + 60 * n} 120 re f`;
  const streams = [page(1, 'Invoice 17: total 42.00 EUR', '0.1 0.4 0.8'), page(2, 'Page two: paid 2026-12-04', '0.8 0.3 0.1')];
  const objs = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R 5 0 R] /Count 2 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 400 300] /Resources << /Font << /F1 7 0 R >> >> /Contents 4 0 R >>',
    `<< /Length ${streams[0].length} >>\nstream\n${streams[0]}\nendstream`,
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 400 300] /Resources << /Font << /F1 7 0 R >> >> /Contents 6 0 R >>',
    `<< /Length ${streams[1].length} >>\nstream\n${streams[1]}\nendstream`,
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>',
  ];
  let out = '%PDF-1.4\n';
  const offsets = [];
  objs.forEach((o, i) => { offsets.push(out.length); out += `${i + 1} 0 obj\n${o}\nendobj\n`; });
  const xref = out.length;
  out += `xref\n0 ${objs.length + 1}\n0000000000 65535 f \n` + offsets.map((o) => `${String(o).padStart(10, '0')} 00000 n \n`).join('');
  out += `trailer\n<< /Size ${objs.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(out, 'latin1');
}

let passed = 0, failed = 0;
async function step(name, fn) {
  const t = Date.now();
  try {
    await fn();
    passed++;
    console.log(`ok   ${name} (${Date.now() - t} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.message.split('\n').slice(0, 6).join('\n     ')}`);
    throw e;
  }
}
function check(cond, msg) { if (!cond) throw new Error(msg); }

// Drops files on the page as a user dragging them from the desktop would (a DataTransfer with File items).
async function dropFiles(page, files) {
  const dt = await page.evaluateHandle((fs) => {
    const d = new DataTransfer();
    for (const f of fs) d.items.add(new File([Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0))], f.name, { type: f.type }));
    return d;
  }, files.map((f) => ({ ...f, b64: f.buffer.toString('base64') })));
  for (const type of ['dragenter', 'dragover', 'drop']) await page.dispatchEvent('#messages', type, { dataTransfer: dt });
}

async function waitAnswer(page, n) {
  // n-th assistant message (1-based) leaves the streaming state.
  const sel = `#messages .msg.assistant >> nth=${n - 1}`;
  await page.waitForFunction((i) => {
    const m = document.querySelectorAll('#messages .msg.assistant')[i];
    return m && m.dataset.status !== 'streaming';
  }, n - 1, { timeout: TIMEOUT });
  return page.locator(sel);
}

async function ask(page, text) {
  await page.fill('#prompt', text);
  await page.click('#send');
}

// Inside the viewport, and the topmost element at its centre (no drawer or scrim over it).
async function reachable(page, sel) {
  return page.evaluate((s) => {
    const e = document.querySelector(s), r = e.getBoundingClientRect();
    const inside = r.width > 0 && r.left >= 0 && r.top >= 0 && r.right <= innerWidth && r.bottom <= innerHeight;
    return inside && e.contains(document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2));
  }, sel);
}
const modelShown = (page, props) =>
  page.waitForFunction((m) => document.getElementById('model-name').textContent === m, props.model_name || props.model);

const userData = mkdtempSync(join(tmpdir(), 'h2ovl-webui-chromium-'));
// A fresh profile folder (Playwright passes it as --user-data-dir); the --api-key server is another
// origin (port), so its page starts with empty localStorage too.
const launch = {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync'],
};
const browser = await chromium.launchPersistentContext(userData, { ...launch, viewport: { width: 1280, height: 820 } });
// The phone: touch and a mobile viewport are per-context settings, so it is a second browser.
const phoneBrowser = await chromium.launch(launch);
const phone = await phoneBrowser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
const pageErrors = [];
try {
  const page = browser.pages()[0] || await browser.newPage();
  page.on('pageerror', (e) => pageErrors.push(e.message));
  // Chromium logs every non-2xx fetch; the broken-PDF step expects one 400.
  page.on('console', (m) => { if (m.type() === 'error' && !/status of 400/.test(m.text())) pageErrors.push('console: ' + m.text()); });
  page.setDefaultTimeout(TIMEOUT);
  const props = await (await fetch(BASE + '/props')).json();

  await step('page loads, header and settings filled from /props', async () => {
    await page.goto(BASE + '/');
    await page.waitForFunction((m) => document.getElementById('model-name').textContent === m, props.model_name || props.model);
    check((await page.textContent('#build-info')).includes(props.build_info.cpu), 'build info missing the CPU line');
    await page.click('#toggle-settings');
    const d = props.default_generation_settings;
    for (const f of ['temperature', 'top_p', 'top_k', 'max_tokens']) {
      const v = await page.inputValue('#s-' + f);
      check(Number(v) === Number(d[f]), `settings ${f} = ${v}, server default ${d[f]}`);
    }
    await page.fill('#s-max_tokens', '12'); // short answers keep the test fast
  });

  await step('PNG by button + 2-page PDF by drop: previews', async () => {
    await page.setInputFiles('#file-input', PNG);
    await page.waitForSelector('#attachments .thumb.image img');
    await dropFiles(page, [{ name: 'invoice.pdf', type: 'application/pdf', buffer: twoPagePdf() }]);
    await page.waitForSelector('#attachments .thumb.pdf');
    const chip = await page.textContent('#attachments .thumb.pdf');
    check(chip.includes('invoice.pdf') && /\d+(\.\d)? (B|KB)/.test(chip), `PDF chip shows name and size: ${chip}`);
  });

  let first;
  await step('question with both attachments: streamed answer with timings', async () => {
    await ask(page, 'What is the total on this invoice?');
    await page.waitForSelector('#stop:not([hidden])');
    const a = await waitAnswer(page, 1);
    const status = await a.getAttribute('data-status');
    const text = await a.textContent();
    check(status === 'done', `answer status ${status}: ${text}`);
    first = await a.locator('.meta').textContent();
    check(/image encode .* \(3 images\)/.test(first), `3 images encoded (PNG + 2 PDF pages): ${first}`);
    check(/tiles \d+ \+ \d+ \+ \d+/.test(first) && /decode \d+ tok, [\d.]+ tok\/s/.test(first), `timings: ${first}`);
    check((await page.locator('#messages .msg.user .thumb').count()) === 2, 'the user message shows its 2 attachments');
    check((await page.locator('#attachments .thumb').count()) === 0, 'composer attachments cleared');
  });

  await step('follow-up: whole history sent, prefill reuses the KV cache', async () => {
    await ask(page, 'And the date?');
    const a = await waitAnswer(page, 2);
    const meta = await a.locator('.meta').textContent();
    const m = meta.match(/prefill (\d+) tok in .*\((\d+) reused from the KV cache\)/);
    check(m, `no KV reuse shown: ${meta}`);
    check(Number(m[2]) > 3 * Number(m[1]), `reused ${m[2]} positions vs ${m[1]} prefilled`);
    check(!/image encode/.test(meta), `images were encoded again: ${meta}`);
    await page.screenshot({ path: SHOT });
  });

  await step('paste adds an image preview; × removes it', async () => {
    const b64 = readFileSync(JPG).toString('base64');
    await page.evaluate((data) => {
      const d = new DataTransfer();
      d.items.add(new File([Uint8Array.from(atob(data), (c) => c.charCodeAt(0))], 'pasted.jpg', { type: 'image/jpeg' }));
      document.getElementById('prompt').dispatchEvent(new ClipboardEvent('paste', { clipboardData: d, bubbles: true }));
    }, b64);
    await page.waitForSelector('#attachments .thumb.image img');
    await page.click('#attachments .thumb .remove');
    check((await page.locator('#attachments .thumb').count()) === 0, 'removed');
  });

  await step('New chat + Stop cuts a long generation', async () => {
    await page.click('#new-chat');
    check((await page.locator('#messages .msg').count()) === 0, 'new chat is empty');
    await page.fill('#s-max_tokens', '4000');
    await page.fill('#s-temperature', '0.9');
    await ask(page, 'Write a very long story.');
    await page.waitForFunction(() => {
      const m = document.querySelector('#messages .msg.assistant .body');
      return m && m.textContent.length > 20;
    });
    await page.click('#stop');
    const a = await waitAnswer(page, 1);
    check((await a.getAttribute('data-status')) === 'stopped', 'status stopped');
    check((await a.locator('.status').textContent()) === 'stopped', 'shows stopped');
    const len = (await a.locator('.body').textContent()).length;
    await page.waitForTimeout(500);
    check((await a.locator('.body').textContent()).length === len, 'text kept growing after Stop');
    // The server is free again: a next turn (with the stopped answer in its history) is answered.
    await page.fill('#s-max_tokens', '8');
    await ask(page, 'Shorter, please.');
    check((await (await waitAnswer(page, 2)).getAttribute('data-status')) === 'done', 'answer after Stop');
  });

  await step('reload: both conversations listed, the first one reopens with its attachments', async () => {
    await page.reload();
    await page.waitForSelector('#conversations li');
    const titles = await page.locator('#conversations li .open').allTextContents();
    check(titles.includes('What is the total on this invoice?') && titles.includes('Write a very long story.'), `list: ${titles}`);
    await page.click('#conversations li .open >> text=What is the total on this invoice?');
    check((await page.locator('#messages .msg.user').count()) === 2 && (await page.locator('#messages .msg.assistant').count()) === 2, 'messages restored');
    check((await page.locator('#messages .msg.user .thumb.image img').count()) === 1, 'image preview restored');
    check((await page.textContent('#messages .msg.assistant .meta')) === first, 'timings restored');
    check(Number(await page.inputValue('#s-max_tokens')) === 8, 'settings kept');
  });

  await step('an answer containing <script> is shown as text (crafted stream)', async () => {
    const evil = 'Here: <script>window.__pwned = 1</script> <img src=x onerror="window.__pwned = 2"> **bold** and `<b>code</b>` [x](javascript:window.__pwned=3)';
    const chunk = (o) => `data: ${JSON.stringify(o)}\n\n`;
    const body = chunk({ choices: [{ index: 0, delta: { role: 'assistant', content: '' } }] }) +
      evil.match(/.{1,7}/gs).map((p) => chunk({ choices: [{ index: 0, delta: { content: p } }] })).join('') +
      chunk({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }], timings: { cache_n: 0, prompt_n: 5, prompt_ms: 1, predicted_n: 9, predicted_ms: 2, predicted_per_second: 4500, image_encode_ms: 0, images_encoded: 0, image_tiles: [] } }) +
      'data: [DONE]\n\n';
    await page.route('**/v1/chat/completions', (r) => r.fulfill({ status: 200, headers: { 'content-type': 'text/event-stream' }, body }));
    await page.click('#new-chat');
    await ask(page, 'Say something dangerous.');
    const a = await waitAnswer(page, 1);
    await page.unroute('**/v1/chat/completions');
    const shown = await a.locator('.body').textContent();
    check(shown.includes('<script>window.__pwned = 1</script>') && shown.includes('<img src=x onerror="window.__pwned = 2">'), `not shown as text: ${shown}`);
    check((await a.locator('script, img, a').count()) === 0, 'model output became markup');
    check((await a.locator('strong').textContent()) === 'bold' && (await a.locator('code').textContent()) === '<b>code</b>', 'Markdown rendered');
    check((await page.evaluate(() => window.__pwned)) === undefined, 'injected code ran');
    const rendered = await page.evaluate(() => window.H2Markdown.render('# T\n- a\n- b\n\n| x | y |\n|---|---|\n| 1 | <i>2</i> |\n\n```\n<p>\n```'));
    check(rendered.includes('<h1>T</h1>') && rendered.includes('<li>b</li>') && rendered.includes('<td>&lt;i&gt;2&lt;/i&gt;</td>') && rendered.includes('<pre><code>&lt;p&gt;</code></pre>'), rendered);
  });

  await step('JSON mode: schema from the panel is sent and its answer shown', async () => {
    let sent = null;
    page.on('request', (r) => { if (r.url().endsWith('/v1/chat/completions')) sent = r.postDataJSON(); });
    await page.selectOption('#s-json', 'schema');
    await page.fill('#s-schema', '{"type":"object","properties":{"total":{"type":"string"}},"required":["total"]}');
    await page.fill('#s-max_tokens', '40');
    await page.click('#new-chat');
    await ask(page, 'Give the total as JSON.');
    const a = await waitAnswer(page, 1);
    check(sent && sent.response_format.type === 'json_schema' && sent.response_format.json_schema.schema.required[0] === 'total', JSON.stringify(sent && sent.response_format));
    check(sent.max_tokens === 40 && sent.stream === true, JSON.stringify(sent));
    check((await a.getAttribute('data-status')) === 'done', await a.textContent());
    check((await a.locator('.body').textContent()).trim().startsWith('{'), 'a JSON answer');
    await page.selectOption('#s-json', 'off');
  });

  await step('a broken PDF: the server 400 message is shown, the next turn still works', async () => {
    await page.click('#new-chat');
    await dropFiles(page, [{ name: 'broken.pdf', type: 'application/pdf', buffer: twoPagePdf().subarray(0, 200) }]);
    await ask(page, 'Read this.');
    const a = await waitAnswer(page, 1);
    const status = await a.locator('.status').textContent();
    check((await a.getAttribute('data-status')) === 'error' && /pdf/i.test(status), `error shown: ${status}`);
    await page.fill('#s-max_tokens', '4');
    await ask(page, 'Then just say hi.');
    check((await (await waitAnswer(page, 2)).getAttribute('data-status')) === 'done', 'turn after a refused one');
  });

  await step('a 6-page PDF over a small context: read page by page, the groups shown while it works, how in the meta line', async () => {
    // The server started with -c 2048 (SMALL_BASE): six A4 pages do not fit even at the floor.
    const sp = await browser.newPage();
    sp.setDefaultTimeout(TIMEOUT);
    await sp.goto(env('SMALL_BASE') + '/');
    await modelShown(sp, props);
    if (!(await sp.isVisible('#s-max_tokens'))) await sp.click('#toggle-settings');
    await sp.fill('#s-max_tokens', '8');
    await dropFiles(sp, [{ name: 'six_pages.pdf', type: 'application/pdf', buffer: readFileSync(env('SIX_PDF')) }]);
    await ask(sp, 'What is the total?');
    await sp.waitForSelector('#messages .msg.assistant .status:has-text("page group")');
    const a = await waitAnswer(sp, 1);
    check((await a.getAttribute('data-status')) === 'done', 'answered');
    const meta = await a.locator('.meta').textContent();
    check(/fitted: read page by page: 6 groups/.test(meta) && /tiles 7( \+ 7){5}/.test(meta), `meta line: ${meta}`);
    await sp.close();
  });

  await step('narrow window: the open settings panel becomes a closed drawer, also after reload; wide again reopens it', async () => {
    check(await page.isVisible('#settings'), 'the panel left open on the wide layout');
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForSelector('#settings', { state: 'hidden' });
    await page.reload();
    await modelShown(page, props);
    check(!(await page.isVisible('#settings')) && !(await page.isVisible('#scrim')), 'drawer open after a reload on a narrow screen');
    check(await reachable(page, '#prompt') && await reachable(page, '#send'), 'composer not reachable');
    await page.setViewportSize({ width: 1280, height: 820 });
    await page.waitForSelector('#settings', { state: 'visible' });
    check(!(await page.isVisible('#scrim')) && !(await page.isVisible('#toggle-chats')), 'drawer parts shown on the wide layout');
  });

  await step('with --api-key: the page asks for the key, keeps it, answers', async () => {
    const kp = await browser.newPage();
    kp.setDefaultTimeout(TIMEOUT);
    kp.on('pageerror', (e) => pageErrors.push('key page: ' + e.message));
    await kp.goto(BASE_KEY + '/');
    await kp.waitForSelector('#key-dialog[open]');
    await kp.fill('#key-input', 'wrong-key');
    await kp.click('#key-save');
    await kp.waitForSelector('#key-dialog[open] #key-error:not([hidden])');
    check((await kp.textContent('#key-error')).includes('API key'), await kp.textContent('#key-error'));
    await kp.fill('#key-input', KEY);
    await kp.click('#key-save');
    await kp.waitForFunction(() => document.getElementById('build-info').textContent.includes('llm: ggml-cpu'));
    await kp.click('#toggle-settings');
    await kp.fill('#s-max_tokens', '6');
    await kp.fill('#prompt', 'Hello?');
    await kp.click('#send');
    const a = await waitAnswer(kp, 1);
    check((await a.getAttribute('data-status')) === 'done', await a.textContent());
    await kp.reload();
    await kp.waitForFunction(() => document.getElementById('build-info').textContent.includes('llm: ggml-cpu'));
    check(!(await kp.locator('#key-dialog[open]').count()), 'asked again after reload');
    await kp.close();
  });

  const pp = await phone.newPage();
  pp.setDefaultTimeout(TIMEOUT);
  pp.on('pageerror', (e) => pageErrors.push('phone: ' + e.message));
  pp.on('console', (m) => { if (m.type() === 'error') pageErrors.push('phone console: ' + m.text()); });

  await step('phone 390×844: settings drawer closed at load, composer fully in view', async () => {
    await pp.goto(BASE + '/');
    await modelShown(pp, props);
    check(!(await pp.isVisible('#settings')) && (await pp.getAttribute('#toggle-settings', 'aria-expanded')) === 'false', 'settings drawer open at load');
    check(!(await pp.isVisible('#sidebar')) && await pp.isVisible('#toggle-chats'), 'conversation list not a closed drawer');
    for (const sel of ['#prompt', '#send', '#attach', '#camera', '#toggle-settings', '#toggle-chats']) {
      check(await reachable(pp, sel), `${sel} not fully in view and on top`);
    }
    check(await pp.evaluate(() => document.documentElement.scrollWidth <= innerWidth), 'the page scrolls sideways');
  });

  await step('phone: the settings drawer opens, and closes with ×, Escape and a tap beside it', async () => {
    const closedAgain = async (how) => {
      await pp.waitForSelector('#settings', { state: 'hidden' });
      check(!(await pp.isVisible('#scrim')) && await reachable(pp, '#send'), `composer covered after closing with ${how}`);
    };
    await pp.tap('#toggle-settings');
    await pp.waitForSelector('#settings', { state: 'visible' });
    check(await pp.isVisible('#scrim') && await reachable(pp, '#close-settings') && await reachable(pp, '#s-max_tokens'), 'drawer shown');
    await pp.fill('#s-max_tokens', '10');
    await pp.tap('#close-settings');
    await closedAgain('×');
    await pp.tap('#toggle-settings');
    await pp.waitForSelector('#settings', { state: 'visible' });
    check(Number(await pp.inputValue('#s-max_tokens')) === 10, 'setting kept');
    await pp.keyboard.press('Escape');
    await closedAgain('Escape');
    await pp.tap('#toggle-settings');
    await pp.waitForSelector('#settings', { state: 'visible' });
    await pp.touchscreen.tap(30, 420); // the scrim, left of the drawer
    await closedAgain('a tap beside it');
  });

  await step('phone: Attach takes images and PDFs, Camera takes a photo from the back camera', async () => {
    const accept = (await pp.getAttribute('#file-input', 'accept')).split(',');
    check(accept.includes('image/*') && accept.includes('application/pdf'), `file input accept=${accept}`);
    check((await pp.getAttribute('#camera-input', 'accept')) === 'image/*' && (await pp.getAttribute('#camera-input', 'capture')) === 'environment',
      'camera input: accept image/* and capture environment');
    // A photo from the camera, then a PDF from Attach's chooser, as a phone user would tap them.
    const [cam] = await Promise.all([pp.waitForEvent('filechooser'), pp.tap('#camera')]);
    check(!cam.isMultiple(), 'the camera gives one photo');
    await cam.setFiles(JPG);
    await pp.waitForSelector('#attachments .thumb.image img');
    const [files] = await Promise.all([pp.waitForEvent('filechooser'), pp.tap('#attach')]);
    check(files.isMultiple(), 'Attach takes several files');
    await files.setFiles({ name: 'invoice.pdf', mimeType: 'application/pdf', buffer: twoPagePdf() });
    await pp.waitForSelector('#attachments .thumb.pdf');
  });

  await step('phone: a question with the photo and the PDF is answered; composer still in view', async () => {
    await pp.fill('#prompt', 'What is the total on this invoice?');
    await pp.tap('#send');
    const a = await waitAnswer(pp, 1);
    check((await a.getAttribute('data-status')) === 'done', await a.textContent());
    const meta = await a.locator('.meta').textContent();
    // Three images sent (photo + 2 PDF pages); the PDF's pages may come from the server's cache (the desktop sent it).
    check(/tiles \d+ \+ \d+ \+ \d+ ·/.test(meta) && /decode \d+ tok/.test(meta), `photo + 2 PDF pages sent: ${meta}`);
    check(await reachable(pp, '#prompt') && await reachable(pp, '#send'), 'composer out of view after the answer');
    check(!(await pp.isVisible('#settings')), 'drawer closed for the screenshot');
    await pp.screenshot({ path: SHOT_PHONE });
  });

  await step('phone: the conversation drawer lists the chat; New chat closes it', async () => {
    await pp.tap('#toggle-chats');
    await pp.waitForSelector('#sidebar', { state: 'visible' });
    check((await pp.locator('#conversations li').count()) === 1 && await reachable(pp, '#new-chat'), 'conversation listed');
    await pp.tap('#new-chat');
    await pp.waitForSelector('#sidebar', { state: 'hidden' });
    check((await pp.locator('#messages .msg').count()) === 0 && !(await pp.isVisible('#scrim')), 'new chat shown');
  });

  await step('server killed mid-answer, then gone: both said in words, not "Failed to fetch"', async () => {
    const dp = await browser.newPage();
    dp.setDefaultTimeout(TIMEOUT);
    // Chromium logs the cut stream and the refused connection as console errors: expected here.
    dp.on('pageerror', (e) => pageErrors.push('doomed page: ' + e.message));
    await dp.goto(DOOMED + '/');
    await modelShown(dp, props);
    await dp.click('#toggle-settings');
    await dp.fill('#s-max_tokens', '4000');
    await dp.fill('#s-temperature', '0.9');
    await ask(dp, 'Write a very long story.');
    await dp.waitForFunction(() => {
      const m = document.querySelector('#messages .msg.assistant .body');
      return m && m.textContent.length > 20;
    });
    process.kill(DOOMED_PID, 'SIGKILL');
    const a = await waitAnswer(dp, 1);
    const cut = await a.locator('.status').textContent();
    check((await a.getAttribute('data-status')) === 'error' && cut.includes('The connection to the server was lost during the answer; the partial answer is kept above. Try again.'), `cut: ${cut}`);
    check((await a.locator('.body').textContent()).length > 20, 'partial answer kept');
    await ask(dp, 'Are you there?');
    const b = await waitAnswer(dp, 2);
    const gone = await b.locator('.status').textContent();
    check(gone.includes(`Cannot reach the h2ovl server at ${DOOMED}: is it still running? Check the address and your network, then try again.`), `gone: ${gone}`);
    const all = await dp.textContent('#messages');
    check(!/Failed to fetch|network error/i.test(all), `raw browser error shown: ${all}`);
    await dp.close();
  });

  await step('no page errors', async () => check(pageErrors.length === 0, pageErrors.join('\n')));
} catch (e) {
  // The failing step has printed itself; keep going to the summary.
} finally {
  await browser.close();
  await phoneBrowser.close();
  rmSync(userData, { recursive: true, force: true });
}
console.log(`webui: ${passed} passed, ${failed} failed`);
process.exit(failed || !passed ? 1 : 0);
