// A small Markdown renderer for model answers (runtime/src/serve/webui.rs serves it).
//
// Safety first: the answer is HTML-escaped BEFORE any Markdown is recognised, so nothing the
// model writes can become markup (a `<script>` in an answer is shown as the text `<script>`).
// The only tags in the output are the ones this file emits; link targets are limited to
// http(s) and mailto and are escaped again as attribute values.
//
// Covers what answers about documents use: paragraphs and line breaks, # headings, - / * / 1.
// lists, > quotes, ``` fenced code, `inline code`, **bold**, *italic*, [links](https://…) and
// pipe tables. Anything else stays plain (escaped) text.
(function (root) {
  'use strict';

  function escapeHtml(s) {
    return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
      .replace(/"/g, '&quot;').replace(/'/g, '&#39;');
  }

  // Inline Markdown on already-escaped text. Code spans are cut out first so their content is
  // not formatted, then put back.
  function inline(s) {
    const codes = [];
    s = s.replace(/`([^`\n]+)`/g, (_, c) => { codes.push(c); return '\u0000' + (codes.length - 1) + '\u0000'; });
    s = s.replace(/\[([^\]\n]+)\]\(([^)\s]+)\)/g, (m, text, url) => {
      // `url` is escaped text: &amp; etc. stay as they are, which is right inside an attribute.
      if (!/^(https?:\/\/|mailto:)/i.test(url)) return m;
      return '<a href="' + url.replace(/"/g, '&quot;') + '" target="_blank" rel="noopener noreferrer">' + text + '</a>';
    });
    s = s.replace(/\*\*([^*\n]+)\*\*/g, '<strong>$1</strong>');
    s = s.replace(/(^|[^\w])__([^_\n]+)__(?!\w)/g, '$1<strong>$2</strong>'); // not inside words (snake__case)
    s = s.replace(/(^|[^*\w])\*([^*\s][^*\n]*?)\*(?!\*)/g, '$1<em>$2</em>');
    s = s.replace(/(^|[^_\w])_([^_\s][^_\n]*?)_(?![_\w])/g, '$1<em>$2</em>');
    s = s.replace(/\u0000(\d+)\u0000/g, (_, i) => '<code>' + codes[+i] + '</code>');
    return s;
  }

  const isTableRow = (l) => /^\s*\|.*\|\s*$/.test(l);
  const isTableRule = (l) => /^\s*\|(\s*:?-{3,}:?\s*\|)+\s*$/.test(l);
  const cells = (l) => l.trim().replace(/^\||\|$/g, '').split('|').map((c) => inline(c.trim()));

  function render(text) {
    const lines = escapeHtml(String(text).replace(/\u0000/g, '')).replace(/\r\n?/g, '\n').split('\n');
    const out = [];
    let para = [];
    const flush = () => {
      if (para.length) out.push('<p>' + para.map(inline).join('<br>') + '</p>');
      para = [];
    };
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      let m;
      if ((m = line.match(/^\s*```\s*([\w+-]*)\s*$/))) {
        flush();
        const body = [];
        i++;
        while (i < lines.length && !/^\s*```\s*$/.test(lines[i])) body.push(lines[i++]);
        const cls = m[1] ? ' class="lang-' + m[1] + '"' : '';
        out.push('<pre><code' + cls + '>' + body.join('\n') + '</code></pre>');
        continue; // an unclosed fence runs to the end (a streaming answer mid-block)
      }
      if ((m = line.match(/^(#{1,6})\s+(.*)$/))) {
        flush();
        const n = m[1].length;
        out.push('<h' + n + '>' + inline(m[2]) + '</h' + n + '>');
        continue;
      }
      if (isTableRow(line) && i + 1 < lines.length && isTableRule(lines[i + 1])) {
        flush();
        const head = cells(line);
        i += 2;
        const rows = [];
        while (i < lines.length && isTableRow(lines[i])) rows.push(cells(lines[i++]));
        i--;
        out.push('<table><thead><tr>' + head.map((c) => '<th>' + c + '</th>').join('') + '</tr></thead><tbody>' +
          rows.map((r) => '<tr>' + r.map((c) => '<td>' + c + '</td>').join('') + '</tr>').join('') + '</tbody></table>');
        continue;
      }
      if (/^\s*&gt;\s?/.test(line)) {
        flush();
        const q = [];
        while (i < lines.length && /^\s*&gt;\s?/.test(lines[i])) q.push(lines[i++].replace(/^\s*&gt;\s?/, ''));
        i--;
        out.push('<blockquote>' + render_escaped(q) + '</blockquote>');
        continue;
      }
      const ul = /^\s*[-*+]\s+(.*)$/, ol = /^\s*\d+[.)]\s+(.*)$/;
      if (ul.test(line) || ol.test(line)) {
        flush();
        const re = ul.test(line) ? ul : ol;
        const tag = re === ul ? 'ul' : 'ol';
        const items = [];
        while (i < lines.length && re.test(lines[i])) items.push(inline(lines[i++].match(re)[1]));
        i--;
        out.push('<' + tag + '>' + items.map((x) => '<li>' + x + '</li>').join('') + '</' + tag + '>');
        continue;
      }
      if (/^\s*$/.test(line)) { flush(); continue; }
      para.push(line);
    }
    flush();
    return out.join('\n');
  }

  // Quotes hold lines that are already escaped: render them without escaping twice.
  function render_escaped(lines) {
    const unescape = (s) => s.replace(/&#39;/g, "'").replace(/&quot;/g, '"').replace(/&gt;/g, '>')
      .replace(/&lt;/g, '<').replace(/&amp;/g, '&');
    return render(lines.map(unescape).join('\n'));
  }

  root.H2Markdown = { render, escapeHtml };
})(globalThis);
