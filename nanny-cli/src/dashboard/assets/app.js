// The nanny dashboard: reads GET /v1/live (server-sent events) with the
// API token and draws pools, workers, RSS charts and totals.
//
// The token is asked for once and kept in sessionStorage (this tab only),
// never in a URL. An EventSource cannot send an Authorization header, so
// the stream is read from a fetch body with a small SSE parser. No inline
// script, no external resource: the page's Content-Security-Policy allows
// neither.
'use strict';

(() => {
  const TOKEN_KEY = 'nanny.token';
  // Samples kept per chart: 5 minutes at one snapshot a second.
  const HISTORY = 300;
  // A stream that sends nothing for this long is dropped and reopened.
  const STALE_MS = 5000;
  // Reconnection delays: doubling from the first to the last.
  const BACKOFF_FIRST_MS = 500;
  const BACKOFF_MAX_MS = 15000;
  // The longest SSE line the parser holds before giving up on the stream.
  const MAX_LINE = 1 << 20;
  const SVG = 'http://www.w3.org/2000/svg';

  const $ = (id) => document.getElementById(id);
  const rssHistory = new Map(); // worker name -> [rss_bytes]
  const rpsHistory = [];
  let attempts = 0;
  let current = null; // the AbortController of the open stream
  let retryTimer = null;

  // ---- the token ----

  function showLogin(message) {
    clearTimeout(retryTimer);
    if (current) current.abort();
    current = null;
    $('live').hidden = true;
    $('login').hidden = false;
    $('login-error').textContent = message || '';
    setStatus('Not connected');
    $('token').focus();
  }

  $('login').addEventListener('submit', (e) => {
    e.preventDefault();
    const token = $('token').value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    $('token').value = '';
    $('login').hidden = true;
    attempts = 0;
    connect();
  });

  $('logout').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin('');
  });

  // ---- the stream ----

  // The connection's state, announced politely (so only when it changes).
  function setStatus(text) {
    if ($('status').textContent !== text) $('status').textContent = text;
  }

  function scheduleReconnect(why) {
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** attempts);
    attempts += 1;
    setStatus(`${why}; reconnecting in ${(delay / 1000).toFixed(1)} s`);
    clearTimeout(retryTimer);
    retryTimer = setTimeout(connect, delay);
  }

  async function connect() {
    clearTimeout(retryTimer);
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) {
      showLogin('');
      return;
    }
    if (current) current.abort();
    const controller = new AbortController();
    current = controller;
    let stale = null;
    const alive = () => {
      clearTimeout(stale);
      stale = setTimeout(() => controller.abort(), STALE_MS);
    };
    setStatus('Connecting…');
    try {
      alive();
      const response = await fetch('/v1/live', {
        headers: { Authorization: `Bearer ${token}`, Accept: 'text/event-stream' },
        cache: 'no-store',
        signal: controller.signal,
      });
      if (response.status === 401) {
        sessionStorage.removeItem(TOKEN_KEY);
        showLogin('That token was refused. Enter the current one.');
        return;
      }
      if (!response.ok || !response.body) {
        throw new Error(`the server answered ${response.status}`);
      }
      await readEvents(response.body, (event, data) => {
        if (event !== 'snapshot') return;
        alive();
        attempts = 0;
        render(JSON.parse(data));
      });
      if (current === controller) scheduleReconnect('The stream ended');
    } catch (err) {
      if (current !== controller) return; // replaced by a newer stream
      scheduleReconnect(controller.signal.aborted ? 'No data' : `Disconnected (${err.message})`);
    } finally {
      clearTimeout(stale);
    }
  }

  // Calls onEvent(type, data) for each event of a text/event-stream body.
  async function readEvents(body, onEvent) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    let type = '';
    let data = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let newline;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        let line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        if (line.endsWith('\r')) line = line.slice(0, -1);
        if (line === '') {
          if (data.length) onEvent(type || 'message', data.join('\n'));
          type = '';
          data = [];
          continue;
        }
        if (line.startsWith(':')) continue; // a comment (keep-alive)
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let text = colon < 0 ? '' : line.slice(colon + 1);
        if (text.startsWith(' ')) text = text.slice(1);
        if (field === 'event') type = text;
        else if (field === 'data') data.push(text);
      }
      if (buffer.length > MAX_LINE) throw new Error('an event too large');
    }
  }

  // ---- drawing ----

  function push(list, value) {
    list.push(value);
    if (list.length > HISTORY) list.splice(0, list.length - HISTORY);
  }

  function bytes(n) {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i += 1;
    }
    return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
  }

  function duration(secs) {
    const s = Math.floor(secs);
    const pad = (v) => String(v).padStart(2, '0');
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${pad(s % 60)} s`;
    return `${Math.floor(s / 3600)} h ${pad(Math.floor(s / 60) % 60)} min`;
  }

  // A small line chart of `values` (oldest first), labelled for screen readers.
  function sparkline(values, label) {
    const w = 120;
    const h = 24;
    const svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
    svg.setAttribute('width', w);
    svg.setAttribute('height', h);
    svg.setAttribute('class', 'spark');
    svg.setAttribute('role', 'img');
    svg.setAttribute('aria-label', label);
    const title = document.createElementNS(SVG, 'title');
    title.textContent = label;
    svg.appendChild(title);
    if (values.length > 0) {
      const min = Math.min(...values);
      const max = Math.max(...values);
      const span = max - min || 1;
      // The samples span the width (a single one is a short flat line).
      const step = values.length > 1 ? w / (values.length - 1) : 0;
      const at = (v) => (max === min ? h / 2 : h - 2 - ((v - min) / span) * (h - 4)).toFixed(1);
      const points = values.length > 1
        ? values.map((v, i) => `${(i * step).toFixed(1)},${at(v)}`)
        : [`0,${at(values[0])}`, `${w},${at(values[0])}`];
      const line = document.createElementNS(SVG, 'polyline');
      line.setAttribute('points', points.join(' '));
      line.setAttribute('fill', 'none');
      line.setAttribute('class', 'spark-line');
      svg.appendChild(line);
    }
    return svg;
  }

  function cell(row, field, content) {
    const td = document.createElement(field === 'name' ? 'th' : 'td');
    if (field === 'name') td.scope = 'row';
    td.className = field;
    if (content instanceof Node) td.appendChild(content);
    else td.textContent = String(content);
    row.appendChild(td);
  }

  function fillRows(tbody, rows) {
    tbody.replaceChildren(...rows);
  }

  function render(snap) {
    $('login').hidden = true;
    $('live').hidden = false;
    setStatus('Live');
    $('updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
    $('seq').textContent = String(snap.seq);

    const t = snap.totals;
    push(rpsHistory, snap.requests_per_second);
    $('rps').textContent = snap.requests_per_second.toFixed(1);
    $('rps-chart').replaceChildren(sparkline(rpsHistory, `requests per second over the last ${rpsHistory.length} s`));
    $('queued').textContent = String(t.queued);
    $('in-flight').textContent = String(t.in_flight);
    $('answered').textContent = String(t.answered);
    $('restarts').textContent = String(t.restarts);

    fillRows($('pools').tBodies[0], snap.pools.map((p) => {
      const tr = document.createElement('tr');
      tr.dataset.pool = p.name;
      cell(tr, 'name', p.name);
      cell(tr, 'workers', p.workers);
      cell(tr, 'target', p.target);
      cell(tr, 'queued', p.queued);
      cell(tr, 'state', p.failed ? 'failed' : p.workers === p.target ? 'ok' : 'scaling');
      if (p.failed) tr.classList.add('failed');
      return tr;
    }));

    // Rows in the pools' order, then by name: a restarted worker keeps its place.
    const order = new Map(snap.pools.map((p, i) => [p.name, i]));
    const workers = [...snap.workers].sort((a, b) =>
      (order.get(a.pool) ?? 0) - (order.get(b.pool) ?? 0) || a.name.localeCompare(b.name));
    const seen = new Set();
    fillRows($('workers').tBodies[0], workers.map((w) => {
      seen.add(w.name);
      if (!rssHistory.has(w.name)) rssHistory.set(w.name, []);
      const history = rssHistory.get(w.name);
      push(history, w.rss_bytes);
      const tr = document.createElement('tr');
      tr.dataset.worker = w.name;
      cell(tr, 'name', w.name);
      cell(tr, 'pool', w.pool);
      cell(tr, 'pid', w.pid);
      cell(tr, 'state', w.state);
      tr.querySelector('.state').classList.add(`state-${w.state}`);
      cell(tr, 'rss', bytes(w.rss_bytes));
      const low = bytes(Math.min(...history));
      const high = bytes(Math.max(...history));
      cell(tr, 'rss-chart', sparkline(history, `RSS of ${w.name} over the last ${history.length} s: from ${low} to ${high}`));
      cell(tr, 'in-flight', w.in_flight);
      cell(tr, 'served', w.served);
      cell(tr, 'restarts', w.restarts);
      cell(tr, 'uptime', duration(w.uptime_secs));
      return tr;
    }));
    for (const name of rssHistory.keys()) {
      if (!seen.has(name)) rssHistory.delete(name);
    }
  }

  if (sessionStorage.getItem(TOKEN_KEY)) connect();
  else showLogin('');
})();
