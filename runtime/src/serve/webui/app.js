// The chat page of `h2ovl serve` (runtime/src/serve/webui.rs): plain browser JavaScript, no
// framework. It is a client of the server's public API like any other:
//  - GET /props fills the header and the settings panel's defaults;
//  - POST /v1/chat/completions with stream:true, the whole conversation each turn (the server
//    keeps the common prefix in its KV cache, so a follow-up prefills only the new tokens: the
//    `timings` of each answer show it), aborted by Stop (the server stops on disconnect);
//  - with --api-key, the first 401 opens a dialog; the key is kept in localStorage and sent as
//    `Authorization: Bearer`.
// Conversations (attachments included, as data: URLs) live in localStorage. On narrow screens
// (phones) the conversation list and the settings are drawers over the chat.
(function () {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const KEY = 'h2ovl.apiKey', CONVS = 'h2ovl.conversations', CURRENT = 'h2ovl.current', SETTINGS = 'h2ovl.settings';
  const FIELDS = ['temperature', 'top_p', 'top_k', 'max_tokens', 'seed'];
  const NARROW = window.matchMedia('(max-width: 760px)'); // the breakpoint of style.css

  const state = {
    props: null,
    convs: loadJson(CONVS, []),
    current: localStorage.getItem(CURRENT),
    pending: [],          // attachments of the message being written
    busy: null,           // {controller, conv, msg} while an answer streams
  };

  function loadJson(k, dflt) {
    try { const v = JSON.parse(localStorage.getItem(k)); return v == null ? dflt : v; } catch (_) { return dflt; }
  }

  // ---- storage -------------------------------------------------------------------------------
  // localStorage holds a few MB: when it is full, attachments of the oldest conversations are
  // dropped (their names stay) until the rest fits, and the page says so.
  function save() {
    for (;;) {
      try {
        localStorage.setItem(CONVS, JSON.stringify(state.convs));
        break;
      } catch (e) {
        const victim = [...state.convs].sort((a, b) => a.updated - b.updated)
          .flatMap((c) => c.messages.flatMap((m) => m.files || [])).find((f) => f.dataUrl);
        if (!victim) { note('Browser storage is full: this conversation is not saved.'); return; }
        victim.dataUrl = null;
        note('Browser storage is full: attachments of older conversations were dropped (their text is kept).');
      }
    }
    if (state.current) localStorage.setItem(CURRENT, state.current); else localStorage.removeItem(CURRENT);
  }
  function note(text) { const n = $('storage-note'); n.textContent = text; n.hidden = false; }
  const currentConv = () => state.convs.find((c) => c.id === state.current) || null;

  // ---- API -----------------------------------------------------------------------------------
  function headers() {
    const h = { 'Content-Type': 'application/json' };
    const k = localStorage.getItem(KEY);
    if (k) h.Authorization = 'Bearer ' + k;
    return h;
  }

  let keyWaiters = null;
  // Opens the key dialog (once, however many requests are waiting) and resolves when saved.
  function askKey(message) {
    const d = $('key-dialog');
    $('key-error').textContent = message || '';
    $('key-error').hidden = !message;
    if (!keyWaiters) {
      keyWaiters = [];
      $('key-input').value = '';
      d.showModal();
      $('key-input').focus();
    }
    return new Promise((resolve) => keyWaiters.push(resolve));
  }
  $('key-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const k = $('key-input').value.trim();
    if (!k) return;
    // A header carries ASCII only: fetch would refuse the request as if the server were down.
    if (/[^\x20-\x7e]/.test(k)) { $('key-error').textContent = 'An API key is plain ASCII text.'; $('key-error').hidden = false; return; }
    localStorage.setItem(KEY, k);
    $('key-dialog').close();
    $('forget-key').hidden = false;
    const w = keyWaiters || [];
    keyWaiters = null;
    w.forEach((r) => r());
  });
  $('key-dialog').addEventListener('cancel', (e) => e.preventDefault()); // the page is useless without it

  // What fetch's bare TypeError ("Failed to fetch", "Load failed", ...) means for the user.
  const UNREACHABLE = () => 'Cannot reach the h2ovl server at ' + location.origin +
    ': is it still running? Check the address and your network, then try again.';
  const LOST = (partial) => 'The connection to the server was lost during the answer' +
    (partial ? '; the partial answer is kept above' : '') + '. Try again.';

  // fetch that answers a 401 by asking for the key and trying again.
  async function apiFetch(path, init) {
    for (let attempt = 0; ; attempt++) {
      let r;
      try {
        r = await fetch(path, { ...init, headers: headers() });
      } catch (e) {
        if (e.name === 'AbortError') throw e;
        throw new Error(UNREACHABLE());
      }
      if (r.status !== 401 || attempt > 5) return r;
      const had = localStorage.getItem(KEY);
      await askKey(had ? 'That key was refused: ' + (await errorText(r)) : '');
    }
  }
  async function errorText(r) {
    const t = await r.text();
    try { return JSON.parse(t).error.message; } catch (_) { return t || r.status + ' ' + r.statusText; }
  }

  // ---- /props and settings --------------------------------------------------------------------
  async function loadProps() {
    let r;
    try { r = await apiFetch('/props', { method: 'GET' }); } catch (e) { $('build-info').textContent = e.message; return; }
    if (!r.ok) { $('build-info').textContent = '/props: ' + (await errorText(r)); return; }
    const p = state.props = await r.json();
    $('model-name').textContent = p.model_name || p.model;
    const mods = [p.modalities.vision ? 'vision' : 'text only'];
    if (p.modalities.pdf) mods.push('PDF');
    $('model-info').textContent = mods.join(' + ') + ' · context ' + p.n_ctx + ' tokens · max ' + p.limits.max_tiles + ' tiles';
    $('build-info').textContent = p.build_info.version + ' · ' + p.build_info.cpu + ' · ' + p.build_info.threads + ' threads';
    if (!p.modalities.vision) {
      for (const b of ['attach', 'camera']) { $(b).disabled = true; $(b).title = 'this server has no vision model'; }
    }
    fillSettings();
  }

  function fillSettings() {
    const d = (state.props && state.props.default_generation_settings) || {};
    const mine = loadJson(SETTINGS, {});
    for (const f of FIELDS) {
      const el = $('s-' + f);
      el.value = mine[f] != null ? mine[f] : (f === 'seed' ? '' : (d[f] != null ? d[f] : ''));
      if (f === 'seed') el.placeholder = 'server default (' + (d.seed != null ? d.seed : 0) + ')';
      if (f === 'max_tokens' && d.max_tokens_limit) el.max = d.max_tokens_limit;
    }
    $('s-json').value = mine.json || 'off';
    if (mine.schema) $('s-schema').value = mine.schema;
    jsonModeChanged();
  }
  function saveSettings() {
    const d = (state.props && state.props.default_generation_settings) || {};
    const mine = {};
    for (const f of FIELDS) {
      const v = $('s-' + f).value;
      if (v !== '' && String(d[f]) !== v) mine[f] = v;
    }
    mine.json = $('s-json').value;
    mine.schema = $('s-schema').value;
    localStorage.setItem(SETTINGS, JSON.stringify(mine));
  }
  const JSON_HELP = {
    off: '',
    object: 'The answer is any JSON object (response_format json_object).',
    template: 'Write a JSON template in your message, e.g. {"total": "", "date": ""}: the answer has exactly its keys.',
    schema: 'The answer follows this JSON Schema (response_format json_schema).',
  };
  function jsonModeChanged() {
    $('schema-label').hidden = $('s-json').value !== 'schema';
    $('json-help').textContent = JSON_HELP[$('s-json').value];
  }
  $('settings').addEventListener('input', () => { jsonModeChanged(); saveSettings(); });
  $('reset-settings').addEventListener('click', () => { localStorage.removeItem(SETTINGS); fillSettings(); });
  $('forget-key').hidden = !localStorage.getItem(KEY);
  $('forget-key').addEventListener('click', () => { localStorage.removeItem(KEY); $('forget-key').hidden = true; });

  // ---- panels and drawers --------------------------------------------------------------------
  // Wide screens: the settings panel is a column that stays open across reloads if left open.
  // Narrow screens: the settings and the conversation list are drawers over the chat, closed at
  // load (open they cover most of a phone), closed by their ×, Escape or a tap beside them.
  const SETTINGS_OPEN = 'h2ovl.settingsOpen';
  const chatsOpen = () => $('sidebar').classList.contains('open');
  function drawerChanged() {
    $('scrim').hidden = !(NARROW.matches && (!$('settings').hidden || chatsOpen()));
  }
  function showSettings(open) {
    $('settings').hidden = !open;
    $('toggle-settings').setAttribute('aria-expanded', String(open));
    if (!NARROW.matches) localStorage.setItem(SETTINGS_OPEN, open ? '1' : '');
    else if (open) { showChats(false); $('close-settings').focus(); }
    drawerChanged();
  }
  function showChats(open) {
    $('sidebar').classList.toggle('open', open);
    $('toggle-chats').setAttribute('aria-expanded', String(open));
    if (open) { showSettings(false); $('close-chats').focus(); }
    drawerChanged();
  }
  function closeDrawers() {
    const back = !$('settings').hidden ? 'toggle-settings' : chatsOpen() ? 'toggle-chats' : null;
    showSettings(false);
    showChats(false);
    if (back) $(back).focus();
  }
  function layoutChanged() {
    showChats(false);
    showSettings(!NARROW.matches && !!localStorage.getItem(SETTINGS_OPEN));
  }
  $('toggle-settings').addEventListener('click', () => showSettings($('settings').hidden));
  $('toggle-chats').addEventListener('click', () => showChats(!chatsOpen()));
  $('close-settings').addEventListener('click', () => { showSettings(false); $('toggle-settings').focus(); });
  $('close-chats').addEventListener('click', closeDrawers);
  $('scrim').addEventListener('click', closeDrawers);
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && NARROW.matches && !$('key-dialog').open && !$('scrim').hidden) closeDrawers();
  });
  NARROW.addEventListener('change', layoutChanged);
  layoutChanged();

  // Request fields from the panel; throws a message for the user on a bad value.
  function generationFields() {
    const out = {};
    const num = (f, int) => {
      const v = $('s-' + f).value.trim();
      if (v === '') return;
      const n = Number(v);
      if (!Number.isFinite(n) || (int && !Number.isInteger(n))) throw new Error(f + ': not a' + (int ? 'n integer' : ' number'));
      out[f] = n;
    };
    num('temperature'); num('top_p'); num('top_k', true); num('max_tokens', true); num('seed', true);
    const mode = $('s-json').value;
    if (mode === 'object') out.response_format = { type: 'json_object' };
    if (mode === 'template') out.response_format = { type: 'json_template' };
    if (mode === 'schema') {
      let schema;
      try { schema = JSON.parse($('s-schema').value); } catch (e) { throw new Error('JSON Schema: ' + e.message); }
      out.response_format = { type: 'json_schema', json_schema: { name: 'answer', schema } };
    }
    return out;
  }

  // ---- attachments ---------------------------------------------------------------------------
  const isPdf = (f) => f.type === 'application/pdf' || /\.pdf$/i.test(f.name);
  function readDataUrl(file) {
    return new Promise((resolve, reject) => {
      const r = new FileReader();
      r.onload = () => resolve(r.result);
      r.onerror = () => reject(r.error);
      r.readAsDataURL(file);
    });
  }
  async function addFiles(list) {
    const limit = state.props ? state.props.limits.body_limit_bytes : 20 << 20;
    for (const f of list) {
      const pdf = isPdf(f);
      if (!pdf && !f.type.startsWith('image/')) { composerError(f.name + ': only images and PDFs can be attached'); continue; }
      if (f.size * 4 / 3 > limit) { composerError(f.name + ': too large for this server (request limit ' + size(limit) + ')'); continue; }
      let url = await readDataUrl(f);
      // Files without a MIME type come as data:application/octet-stream: say what they are.
      if (pdf) url = 'data:application/pdf;base64,' + url.slice(url.indexOf(',') + 1);
      state.pending.push({ kind: pdf ? 'pdf' : 'image', name: f.name || (pdf ? 'document.pdf' : 'pasted image'), size: f.size, dataUrl: url });
    }
    renderPending();
  }
  function size(n) {
    return n < 1024 ? n + ' B' : n < 1 << 20 ? (n / 1024).toFixed(1) + ' KB' : (n / (1 << 20)).toFixed(1) + ' MB';
  }
  function fileChip(f, onRemove) {
    const el = document.createElement('span');
    el.className = 'thumb ' + f.kind;
    el.title = f.name + ' (' + size(f.size) + ')';
    if (f.kind === 'image' && f.dataUrl) {
      const img = document.createElement('img');
      img.src = f.dataUrl;
      img.alt = f.name;
      el.append(img);
    } else {
      const icon = document.createElement('span');
      icon.className = 'icon';
      icon.textContent = f.kind === 'pdf' ? 'PDF' : 'IMG';
      const label = document.createElement('span');
      label.textContent = f.name + ' · ' + size(f.size) + (f.dataUrl ? '' : ' (not kept)');
      el.append(icon, label);
    }
    if (onRemove) {
      const x = document.createElement('button');
      x.type = 'button';
      x.className = 'remove';
      x.textContent = '×';
      x.setAttribute('aria-label', 'Remove ' + f.name);
      x.addEventListener('click', onRemove);
      el.append(x);
    }
    return el;
  }
  function renderPending() {
    const box = $('attachments');
    box.replaceChildren(...state.pending.map((f, i) => fileChip(f, () => { state.pending.splice(i, 1); renderPending(); })));
  }
  function composerError(text) {
    const e = $('composer-error');
    e.textContent = text;
    e.hidden = !text;
  }

  $('attach').addEventListener('click', () => $('file-input').click());
  $('camera').addEventListener('click', () => $('camera-input').click());
  for (const id of ['file-input', 'camera-input']) {
    $(id).addEventListener('change', async (e) => { await addFiles([...e.target.files]); e.target.value = ''; });
  }
  document.addEventListener('paste', (e) => {
    const files = [...(e.clipboardData ? e.clipboardData.files : [])];
    if (files.length) { e.preventDefault(); addFiles(files); }
  });
  let dragDepth = 0;
  const hasFiles = (e) => e.dataTransfer && [...e.dataTransfer.types].includes('Files');
  window.addEventListener('dragenter', (e) => { if (hasFiles(e)) { dragDepth++; $('drop-overlay').hidden = false; } });
  window.addEventListener('dragleave', () => { if (--dragDepth <= 0) { dragDepth = 0; $('drop-overlay').hidden = true; } });
  window.addEventListener('dragover', (e) => { if (hasFiles(e)) e.preventDefault(); });
  window.addEventListener('drop', (e) => {
    dragDepth = 0;
    $('drop-overlay').hidden = true;
    if (!hasFiles(e)) return;
    e.preventDefault();
    addFiles([...e.dataTransfer.files]);
  });

  // ---- conversation list ---------------------------------------------------------------------
  function title(c) {
    const u = c.messages.find((m) => m.role === 'user');
    if (!u) return 'New chat';
    const t = u.text.trim().replace(/\s+/g, ' ');
    return (t || (u.files[0] && u.files[0].name) || 'New chat').slice(0, 60);
  }
  function renderList() {
    const ul = $('conversations');
    const items = [...state.convs].sort((a, b) => b.updated - a.updated).map((c) => {
      const li = document.createElement('li');
      li.dataset.id = c.id;
      if (c.id === state.current) li.className = 'active';
      const open = document.createElement('button');
      open.type = 'button';
      open.className = 'open';
      open.textContent = c.title;
      open.title = c.title;
      open.addEventListener('click', () => { state.current = c.id; save(); renderAll(); if (NARROW.matches) showChats(false); });
      const del = document.createElement('button');
      del.type = 'button';
      del.className = 'delete';
      del.textContent = '×';
      del.setAttribute('aria-label', 'Delete conversation ' + c.title);
      del.addEventListener('click', () => {
        if (state.busy && state.busy.conv === c) state.busy.controller.abort();
        state.convs = state.convs.filter((x) => x !== c);
        if (state.current === c.id) state.current = null;
        save();
        renderAll();
      });
      li.append(open, del);
      return li;
    });
    ul.replaceChildren(...items);
  }
  $('new-chat').addEventListener('click', () => {
    state.current = null;
    save();
    renderAll();
    if (NARROW.matches) showChats(false); else $('prompt').focus(); // focus would pop up a phone's keyboard
  });

  // ---- messages ------------------------------------------------------------------------------
  function timingsText(m) {
    const t = m.timings;
    if (!t) return '';
    const ms = (x) => (x >= 1000 ? (x / 1000).toFixed(2) + ' s' : Math.round(x) + ' ms');
    const parts = [];
    if (t.images_encoded) parts.push('image encode ' + ms(t.image_encode_ms) + ' (' + t.images_encoded + (t.images_encoded > 1 ? ' images)' : ' image)'));
    // Tiles of every image of the conversation; images seen before come from the server's cache.
    if (t.image_tiles && t.image_tiles.length) parts.push((t.images_encoded ? '' : 'images cached, ') + 'tiles ' + t.image_tiles.join(' + '));
    // The server lowered the tile budget so the pages fit the context (--pages-mode auto).
    if (t.fit) parts.push('fitted: ' + t.fit);
    parts.push('prefill ' + t.prompt_n + ' tok in ' + ms(t.prompt_ms) + (t.cache_n ? ' (' + t.cache_n + ' reused from the KV cache)' : ''));
    parts.push('decode ' + t.predicted_n + ' tok, ' + t.predicted_per_second.toFixed(1) + ' tok/s');
    if (m.finish === 'length') parts.push('cut at max tokens');
    return parts.join(' · ');
  }
  function messageEl(m) {
    const el = document.createElement('div');
    el.className = 'msg ' + m.role;
    el.dataset.status = m.status || 'done';
    if (m.role === 'user') {
      if (m.files && m.files.length) {
        const files = document.createElement('div');
        files.className = 'files';
        files.append(...m.files.map((f) => fileChip(f)));
        el.append(files);
      }
      el.append(document.createTextNode(m.text));
      return el;
    }
    const body = document.createElement('div');
    body.className = 'body';
    // The renderer escapes the whole answer before adding its own tags (markdown.js).
    body.innerHTML = window.H2Markdown.render(m.text);
    if (m.status === 'streaming') body.classList.add('cursor');
    el.append(body);
    const status = { stopped: 'stopped', error: 'error: ' + (m.error || 'failed'), streaming: m.text ? '' : (m.progress ? m.progress + '…' : 'thinking…') }[m.status];
    if (status) {
      const s = document.createElement('div');
      s.className = 'status' + (m.status === 'error' ? ' error' : '');
      s.textContent = status;
      el.append(s);
    }
    const meta = timingsText(m);
    if (meta) {
      const d = document.createElement('div');
      d.className = 'meta';
      d.textContent = meta;
      el.append(d);
    }
    return el;
  }
  function renderMessages() {
    const box = $('messages');
    const c = currentConv();
    if (!c || !c.messages.length) { box.replaceChildren(emptyNode); return; }
    box.replaceChildren(...c.messages.map(messageEl));
    box.scrollTop = box.scrollHeight;
  }
  let emptyNode = null;
  function renderAll() { renderList(); renderMessages(); }

  // While streaming only the last message is redrawn, at most once per frame.
  let frame = 0;
  function redrawStreaming() {
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      const b = state.busy;
      if (!b || b.conv.id !== state.current) return;
      const box = $('messages');
      const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
      const last = box.lastElementChild;
      if (last) last.replaceWith(messageEl(b.msg));
      if (nearBottom) box.scrollTop = box.scrollHeight;
    });
  }

  // ---- sending -------------------------------------------------------------------------------
  // The conversation as OpenAI messages. A turn the server refused (status error) is left out:
  // for the model it never happened, and sending its input again would fail again.
  function apiMessages(c) {
    const out = [];
    const ms = c.messages;
    for (let i = 0; i < ms.length; i++) {
      const m = ms[i];
      if (m.status === 'streaming') break;
      if (m.role === 'user' && ms[i + 1] && ms[i + 1].status === 'error') { i++; continue; }
      if (m.role === 'assistant') { out.push({ role: 'assistant', content: m.text }); continue; }
      const files = (m.files || []).filter((f) => f.dataUrl);
      if (!files.length) { out.push({ role: 'user', content: m.text }); continue; }
      const parts = files.map((f) => f.kind === 'pdf'
        ? { type: 'file', file: { filename: f.name, file_data: f.dataUrl } }
        : { type: 'image_url', image_url: { url: f.dataUrl } });
      if (m.text) parts.push({ type: 'text', text: m.text });
      out.push({ role: 'user', content: parts });
    }
    return out;
  }

  async function send() {
    if (state.busy) return;
    const text = $('prompt').value.trim();
    if (!text && !state.pending.length) return;
    let fields;
    try { fields = generationFields(); } catch (e) { composerError(e.message); return; }
    composerError('');
    let c = currentConv();
    if (!c) {
      c = { id: Date.now().toString(36) + Math.random().toString(36).slice(2, 8), title: '', updated: Date.now(), messages: [] };
      state.convs.push(c);
      state.current = c.id;
    }
    c.messages.push({ role: 'user', text, files: state.pending });
    const msg = { role: 'assistant', text: '', status: 'streaming' };
    c.messages.push(msg);
    c.title = title(c);
    c.updated = Date.now();
    state.pending = [];
    renderPending();
    $('prompt').value = '';
    save();
    renderAll();
    await generate(c, msg, fields);
  }

  async function generate(c, msg, fields) {
    const controller = new AbortController();
    state.busy = { controller, conv: c, msg };
    $('send').hidden = true;
    $('stop').hidden = false;
    const body = { messages: apiMessages(c), stream: true, ...fields };
    if (state.props) body.model = state.props.model;
    try {
      const r = await apiFetch('/v1/chat/completions', { method: 'POST', body: JSON.stringify(body), signal: controller.signal });
      if (!r.ok) throw new Error(await errorText(r));
      await readStream(r, msg);
      msg.status = 'done';
    } catch (e) {
      if (e.name === 'AbortError') msg.status = 'stopped';
      else { msg.status = 'error'; msg.error = e.message; }
    } finally {
      state.busy = null;
      $('send').hidden = false;
      $('stop').hidden = true;
      c.updated = Date.now();
      save();
      if (c.id === state.current) renderMessages();
      renderList();
    }
  }

  // Server-sent events: `data: {chunk}` blocks separated by blank lines, ending with `data: [DONE]`.
  async function readStream(r, msg) {
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (e) {
        if (e.name === 'AbortError') throw e;
        throw new Error(LOST(msg.text !== ''));
      }
      const { value, done } = chunk;
      // The server always ends with [DONE]: an end before it (and before the last chunk) is a cut.
      if (done) { if (msg.finish) return; throw new Error(LOST(msg.text !== '')); }
      buf += dec.decode(value, { stream: true });
      let cut;
      while ((cut = buf.search(/\r?\n\r?\n/)) >= 0) {
        const event = buf.slice(0, cut);
        buf = buf.slice(cut).replace(/^\r?\n\r?\n/, '');
        const lines = event.split(/\r?\n/);
        // `: page group 2 of 6 …` comments: a long document read page by page shows where it is.
        const note = lines.filter((l) => l.startsWith(':')).map((l) => l.slice(1).trim()).pop();
        if (note) { msg.progress = note; redrawStreaming(); }
        const data = lines.filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, '')).join('\n');
        if (!data) continue;
        if (data === '[DONE]') return;
        const ch = JSON.parse(data);
        if (ch.error) throw new Error(ch.error.message);
        const choice = ch.choices && ch.choices[0];
        if (choice && choice.delta && choice.delta.content) msg.text += choice.delta.content;
        if (choice && choice.finish_reason) msg.finish = choice.finish_reason;
        if (ch.timings) msg.timings = ch.timings;
        redrawStreaming();
      }
    }
  }

  $('composer').addEventListener('submit', (e) => { e.preventDefault(); send(); });
  $('prompt').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
  });
  $('stop').addEventListener('click', () => { if (state.busy) state.busy.controller.abort(); });

  // ---- start ---------------------------------------------------------------------------------
  emptyNode = $('empty');
  // A reload in the middle of an answer leaves it marked streaming: it was cut there.
  for (const c of state.convs) for (const m of c.messages) if (m.status === 'streaming') m.status = 'stopped';
  if (!currentConv()) state.current = null;
  renderAll();
  fillSettings();
  loadProps();
})();
