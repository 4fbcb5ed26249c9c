// The clayhook operator console: one page (index.html) that routes on
// location.pathname and talks to the admin API with the session cookie.
// Server data is only ever put in the page with textContent and
// createElement, never as HTML.
'use strict';
(function () {
  const BASE = '/console';
  const POLL_MS = 5000;
  const CHUNK = 500; // ids per replay or discard request
  const PAGE = 50; // events per page

  const state = {
    csrf: null,
    session: null, // a promise of the session, fetched once
    renderId: 0,
    timer: null,
    leaving: false,
  };

  // ---------- DOM helpers ----------

  // el('tag', {class, text, on: {click: fn}, 'data-x': v, ...}, child...)
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    setAttrs(e, attrs);
    append(e, children);
    return e;
  }

  function setAttrs(e, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'text') e.textContent = String(v);
      else if (k === 'class') e.className = v;
      else if (k === 'on') for (const [ev, fn] of Object.entries(v)) e.addEventListener(ev, fn);
      else if (k === 'checked' || k === 'disabled' || k === 'hidden' || k === 'open') e[k] = true;
      else if (k === 'value') e.value = String(v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
  }

  function append(parent, children) {
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      if (Array.isArray(c)) append(parent, c);
      else if (c instanceof Node) parent.append(c);
      else parent.append(document.createTextNode(String(c)));
    }
  }

  function $(sel, root) {
    return (root || document).querySelector(sel);
  }

  // ---------- formatting ----------

  const nf = new Intl.NumberFormat('en-US');

  function num(n) {
    return n === null || n === undefined ? '–' : nf.format(n);
  }

  function bytes(n) {
    if (n === null || n === undefined) return 'unknown';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let v = Number(n);
    let u = 0;
    while (v >= 1024 && u < units.length - 1) {
      v /= 1024;
      u++;
    }
    return (u === 0 ? String(v) : v.toFixed(v < 10 ? 2 : 1)) + ' ' + units[u];
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return '–';
    let s = Math.max(0, Number(seconds));
    if (s < 10) return (Math.round(s * 10) / 10) + ' s';
    s = Math.round(s);
    if (s < 60) return s + ' s';
    const d = Math.floor(s / 86400);
    const h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60);
    if (d) return d + ' d ' + h + ' h';
    if (h) return h + ' h ' + m + ' min';
    return m + ' min ' + (s % 60) + ' s';
  }

  // "2026-11-27 04:21:19Z" (or with milliseconds) in a <time>.
  function time(iso, withMs) {
    if (!iso) return el('span', { class: 'muted', text: '–' });
    let text = String(iso).replace('T', ' ');
    if (!withMs) text = text.replace(/\.\d+Z$/, 'Z');
    return el('time', { datetime: iso, title: ago(iso), text: text });
  }

  function ago(iso) {
    const t = Date.parse(iso);
    if (Number.isNaN(t)) return '';
    const s = (Date.now() - t) / 1000;
    if (s < 0) return 'in ' + duration(-s);
    return duration(s) + ' ago';
  }

  function badge(text, kind) {
    return el('span', { class: 'badge badge-' + (kind || 'neutral'), text: text });
  }

  function stateBadge(s) {
    return badge(s, { done: 'ok', dead: 'bad', pending: 'warn' }[s] || 'neutral');
  }

  // ---------- API ----------

  class ApiError extends Error {
    constructor(status, message, body) {
      super(message);
      this.status = status;
      this.body = body;
    }
  }

  function toLogin(notice) {
    if (state.leaving) return;
    state.leaving = true;
    stopTimer();
    window.location.assign(BASE + '/login' + (notice ? '?notice=' + notice : ''));
  }

  function session(refresh) {
    if (!state.session || refresh) {
      state.session = api('GET', '/admin/session').then(
        (s) => {
          state.csrf = s.csrf;
          return s;
        },
        (err) => {
          state.session = null; // ask again next time
          throw err;
        });
    }
    return state.session;
  }

  async function api(method, path, body, retried) {
    const headers = { Accept: 'application/json' };
    const init = { method: method, headers: headers, credentials: 'same-origin', cache: 'no-store' };
    if (method !== 'GET') {
      if (!state.csrf) await session();
      headers['X-CSRF-Token'] = state.csrf || '';
      if (body !== undefined) {
        headers['Content-Type'] = 'application/json';
        init.body = JSON.stringify(body);
      }
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, 'The host does not answer: ' + e.message, null);
    }
    if (res.status === 401) {
      toLogin('expired');
      throw new ApiError(401, 'The session has ended.', null);
    }
    const text = await res.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (e) {
        data = null;
      }
    }
    if (res.status === 403 && method !== 'GET' && !retried) {
      // The CSRF token may have changed (a new session): fetch it once more.
      await session(true);
      return api(method, path, body, true);
    }
    if (!res.ok) {
      const msg = (data && (data.error || data.last_error)) || 'HTTP ' + res.status;
      throw new ApiError(res.status, msg, data);
    }
    return data;
  }

  function query(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== '') q.set(k, v);
    const s = q.toString();
    return s ? '?' + s : '';
  }

  // ---------- flash messages ----------

  function flash(text, kind) {
    const f = $('#flash');
    f.replaceChildren(
      el('span', { class: 'flash-text', text: text }),
      el('button', {
        type: 'button',
        class: 'button-quiet flash-close',
        'aria-label': 'Dismiss message',
        text: '×',
        on: { click: () => clearFlash() },
      })
    );
    f.className = 'flash flash-' + (kind || 'ok');
    f.dataset.kind = kind || 'ok';
    f.hidden = false;
  }

  function clearFlash() {
    const f = $('#flash');
    f.hidden = true;
    f.replaceChildren();
    delete f.dataset.kind;
  }

  function errorBox(err) {
    return el('p', { class: 'message message-error', role: 'alert', text: err.message || String(err) });
  }

  // ---------- header ----------

  function setGeneration(g) {
    if (g !== null && g !== undefined) $('#host-generation').textContent = 'generation ' + g;
  }

  // ---------- routing ----------

  const routes = [
    { re: /^\/console\/?$/, page: 'overview', nav: 'overview', title: 'Overview', render: renderOverview },
    { re: /^\/console\/events\/?$/, page: 'events', nav: 'events', title: 'Events', render: renderEvents },
    { re: /^\/console\/events\/([^/]+)\/?$/, page: 'event', nav: 'events', title: 'Event', render: renderEvent },
    { re: /^\/console\/dead\/?$/, page: 'dead', nav: 'dead', title: 'Dead letters', render: renderDead },
    { re: /^\/console\/plugins\/?$/, page: 'plugins', nav: 'plugins', title: 'Plugins', render: renderPlugins },
    { re: /^\/console\/config\/?$/, page: 'config', nav: 'config', title: 'Configuration', render: renderConfig },
  ];

  function stopTimer() {
    if (state.timer) clearTimeout(state.timer);
    state.timer = null;
  }

  function navigate(url, replace) {
    if (replace) history.replaceState(null, '', url);
    else history.pushState(null, '', url);
    render();
  }

  // Renders the page for location; keepFlash leaves the last message up
  // (a refresh after an action).
  async function render(keepFlash) {
    if (state.leaving) return;
    stopTimer();
    if (!keepFlash) clearFlash();
    const id = ++state.renderId;
    const view = $('#view');
    const path = window.location.pathname;
    let route = null;
    let match = null;
    for (const r of routes) {
      match = r.re.exec(path);
      if (match) {
        route = r;
        break;
      }
    }
    for (const a of document.querySelectorAll('#nav a')) {
      if (route && a.dataset.nav === route.nav) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    view.dataset.ready = 'false';
    if (!route) {
      view.dataset.page = 'not-found';
      document.title = 'Not found · clayhook console';
      view.replaceChildren(
        el('h1', { text: 'Not found' }),
        el('p', {}, 'There is no console page at ', el('code', { text: path }), '. ', el('a', { href: BASE + '/', text: 'Go to the overview' }), '.')
      );
      view.dataset.ready = 'true';
      return;
    }
    const samePage = view.dataset.page === route.page && view.firstChild;
    view.dataset.page = route.page;
    document.title = route.title + ' · clayhook console';
    const ctx = {
      id: id,
      alive: () => id === state.renderId && !state.leaving,
      refresh: () => {
        if (id === state.renderId) render(true);
      },
    };
    const content = el('div', { class: 'page page-' + route.page });
    // A refresh of the same page builds the new content aside, then swaps.
    if (!keepFlash || !samePage) view.replaceChildren(content);
    try {
      await route.render(content, match.slice(1).map(decodeURIComponent), ctx);
    } catch (err) {
      if (!ctx.alive()) return;
      content.append(errorBox(err));
    }
    if (!ctx.alive()) return;
    if (view.firstChild !== content) view.replaceChildren(content);
    view.dataset.ready = 'true';
  }

  document.addEventListener('click', (ev) => {
    if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
    const a = ev.target.closest && ev.target.closest('a[href]');
    if (!a || a.target || a.hasAttribute('download')) return;
    const url = new URL(a.href, window.location.href);
    if (url.origin !== window.location.origin) return;
    if (!url.pathname.startsWith(BASE + '/') && url.pathname !== BASE) return;
    if (url.pathname.startsWith(BASE + '/login') || url.pathname.startsWith(BASE + '/assets/')) return;
    if (url.pathname === window.location.pathname && url.hash && !url.search) return;
    ev.preventDefault();
    navigate(url.pathname + url.search);
    const view = $('#view');
    view.focus({ preventScroll: true });
    window.scrollTo(0, 0);
  });

  window.addEventListener('popstate', () => render());

  // ---------- shared pieces ----------

  function heading(text, ...extra) {
    return el('div', { class: 'page-head' }, el('h1', { text: text }), extra);
  }

  function section(title, id, ...children) {
    const h = el('h2', { text: title });
    if (id) h.id = id + '-title';
    return el('section', { class: 'panel', 'aria-labelledby': id ? id + '-title' : null }, h, children);
  }

  function table(cls, headers, rows, caption) {
    const thead = el('thead', {}, el('tr', {}, headers.map((h) => typeof h === 'string'
      ? el('th', { scope: 'col', text: h })
      : el('th', { scope: 'col', class: h.num ? 'num' : null }, h.hidden ? el('span', { class: 'visually-hidden', text: h.hidden }) : h.text))));
    return el('div', { class: 'table-wrap' }, el('table', { class: cls }, caption ? el('caption', { class: 'visually-hidden', text: caption }) : null, thead, el('tbody', {}, rows)));
  }

  function td(content, cls, col) {
    return el('td', { class: cls || null, 'data-col': col || null }, content);
  }

  function pluginState(p) {
    if (p.loaded === false) return badge('not loaded', 'neutral');
    if (p.paused) return badge('paused', 'warn');
    return badge('running', 'ok');
  }

  // Runs fn(button) with the button disabled; reports errors in the flash.
  async function busy(button, fn) {
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    try {
      await fn();
    } catch (err) {
      if (err.status !== 401) flash(err.message, 'error');
    } finally {
      button.disabled = false;
      button.removeAttribute('aria-busy');
    }
  }

  // ---------- overview ----------

  async function renderOverview(root, _params, ctx) {
    const updated = el('span', { id: 'overview-updated', class: 'muted small' });
    root.append(heading('Overview', updated));
    const body = el('div', { id: 'overview-body' });
    root.append(body);

    const load = async (first) => {
      let ov;
      try {
        ov = await api('GET', '/admin/overview');
      } catch (err) {
        if (first) throw err;
        if (!ctx.alive()) return;
        updated.textContent = 'Refresh failed: ' + err.message;
        updated.className = 'small text-bad';
        return;
      }
      if (!ctx.alive()) return;
      setGeneration(ov.generation);
      body.replaceChildren(overviewContent(ov));
      updated.className = 'muted small';
      updated.textContent = 'Live, every ' + POLL_MS / 1000 + ' s · updated ' + new Date().toLocaleTimeString();
    };
    const tick = async () => {
      if (!ctx.alive()) return;
      if (!document.hidden) await load(false);
      if (ctx.alive()) state.timer = setTimeout(tick, POLL_MS);
    };
    await load(true);
    state.timer = setTimeout(tick, POLL_MS);
  }

  function kv(label, value, id) {
    return [el('dt', { text: label }), el('dd', { id: id || null }, value)];
  }

  function overviewContent(ov) {
    const frag = document.createDocumentFragment();
    const plugins = ov.plugins || [];
    const down = ov.down || [];
    const intake = ov.intake || {};
    const store = ov.store || {};
    const reload = ov.reload || {};
    const sum = (k) => plugins.reduce((a, p) => a + (Number(p[k]) || 0), 0) + (k === 'pending' || k === 'dead' ? down.reduce((a, p) => a + (Number(p[k]) || 0), 0) : 0);

    const cards = el('div', { class: 'cards' });
    cards.append(
      el('section', { class: 'card', 'aria-labelledby': 'card-intake' },
        el('h2', { id: 'card-intake', text: 'Intake' }),
        el('p', { class: 'card-note', text: 'Webhooks since the host started' }),
        el('dl', { class: 'stats' },
          kv('Accepted', num(intake.accepted), 'intake-accepted'),
          kv('Duplicates', num(intake.duplicate), 'intake-duplicate'),
          kv('Rejected', el('span', { class: intake.rejected ? 'text-bad' : null, text: num(intake.rejected) }), 'intake-rejected'))),
      el('section', { class: 'card', 'aria-labelledby': 'card-deliveries' },
        el('h2', { id: 'card-deliveries', text: 'Deliveries' }),
        el('p', { class: 'card-note', text: 'All plugins, in the store' }),
        el('dl', { class: 'stats' },
          kv('Pending', num(sum('pending')), 'deliveries-pending'),
          kv('In flight', num(sum('in_flight')), 'deliveries-in-flight'),
          kv('Done', num(sum('done')), 'deliveries-done'),
          kv('Dead', sum('dead') ? el('a', { href: BASE + '/dead', class: 'text-bad', text: num(sum('dead')) }) : num(0), 'deliveries-dead'))),
      el('section', { class: 'card', 'aria-labelledby': 'card-store' },
        el('h2', { id: 'card-store', text: 'Store' }),
        el('p', { class: 'card-note mono', id: 'store-location', text: store.location || '' }),
        el('dl', { class: 'stats' },
          kv('Size', bytes(store.bytes), 'store-bytes'),
          kv('Free', store.free_bytes === null || store.free_bytes === undefined ? 'unknown' : bytes(store.free_bytes), 'store-free'),
          kv('Writable', store.writable ? badge('yes', 'ok') : badge('no', 'bad'), 'store-writable'),
          kv('Oldest pending', store.oldest_pending_age_seconds === null || store.oldest_pending_age_seconds === undefined || !sum('pending') ? 'none' : duration(store.oldest_pending_age_seconds), 'store-oldest-pending'))),
      el('section', { class: 'card', 'aria-labelledby': 'card-serving' },
        el('h2', { id: 'card-serving', text: 'Serving' }),
        el('p', { class: 'card-note', text: 'Config generation and the last reload' }),
        el('dl', { class: 'stats' },
          kv('Generation', num(ov.generation), 'serving-generation'),
          kv('Last reload', reload.last_result ? badge(reload.last_result, reload.last_result === 'ok' ? 'ok' : 'bad') : 'none yet', 'serving-last-reload'),
          reload.last_at ? kv('At', time(reload.last_at)) : null,
          kv('Reloads', num(reload.reloads_ok) + ' ok, ' + num(reload.reloads_failed) + ' refused')),
        reload.last_error ? el('p', { class: 'message message-error small', text: reload.last_error }) : null)
    );
    frag.append(cards);

    const hist = ov.history || [];
    const total = (vals) => vals.length ? num(vals.reduce((a, b) => a + b, 0)) + ' in all · peak ' + num(Math.max(...vals)) + ' per 10 s' : '';
    const charts = el('div', { class: 'charts', id: 'overview-charts' });
    const C = window.ClayCharts;
    charts.append(
      C.chart({ key: 'accepted', title: 'Accepted', points: hist, format: num, summary: total }),
      C.chart({ key: 'rejected', title: 'Rejected', points: hist, format: num, summary: total }),
      C.chart({ key: 'done', title: 'Done', points: hist, format: num, summary: total }),
      C.chart({ key: 'dead', title: 'Dead', points: hist, format: num, summary: total }),
      C.chart({ key: 'store_bytes', title: 'Store size', kind: 'line', points: hist, format: bytes, summary: (v) => v.length ? bytes(v[0]) + ' → ' + bytes(v[v.length - 1]) : '' })
    );
    frag.append(section(hist.length >= 360 ? 'The last hour, per 10 s' : 'Since the host started, per 10 s', 'charts', charts));

    const rows = plugins.map((p) => el('tr', { 'data-plugin': p.name, 'data-paused': String(!!p.paused), 'data-loaded': String(p.loaded !== false) },
      el('th', { scope: 'row' }, el('a', { href: BASE + '/plugins', text: p.name })),
      td(el('span', { class: 'muted', text: (p.kind || '') + ' ' + (p.version || '') }), null, 'kind'),
      td(pluginState(p), null, 'state'),
      td(num(p.pending), 'num', 'pending'),
      td(num(p.in_flight), 'num', 'in_flight'),
      td(num(p.done), 'num', 'done'),
      td(p.dead ? el('a', { href: BASE + '/dead', class: 'text-bad', text: num(p.dead) }) : num(p.dead), 'num', 'dead'),
      td(duration(p.queue_lag_seconds), 'num' + (p.queue_lag_seconds > 60 ? ' text-warn' : ''), 'queue_lag')
    ));
    for (const d of down) {
      rows.push(el('tr', { 'data-plugin': d.name, 'data-down': 'true', class: 'row-down' },
        el('th', { scope: 'row', text: d.name }),
        td(el('span', { class: 'reason', text: d.reason || '' }), null, 'kind'),
        td(badge('down', 'bad'), null, 'state'),
        td(num(d.pending), 'num', 'pending'),
        td('–', 'num', 'in_flight'),
        td('–', 'num', 'done'),
        td(num(d.dead), 'num', 'dead'),
        td('–', 'num', 'queue_lag')));
    }
    if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: 8, class: 'empty', text: 'No plugins are configured.' })));
    frag.append(section('Plugins', 'overview-plugins-section',
      table('data', ['Plugin', 'Kind', 'State', { text: 'Pending', num: true }, { text: 'In flight', num: true }, { text: 'Done', num: true }, { text: 'Dead', num: true }, { text: 'Queue lag', num: true }], rows, 'Plugins and their deliveries')));
    $('table', frag.lastChild).id = 'overview-plugins';
    return frag;
  }

  // ---------- events ----------

  const EVENT_TYPES = ['enrichment.completed', 'enrichment.failed', 'table.row.created', 'table.row.updated', 'table.export.completed', 'workflow.completed'];

  function pad(n) {
    return String(n).padStart(2, '0');
  }

  // ISO (UTC) -> the local "YYYY-MM-DDTHH:MM:SS" a datetime-local input takes.
  function isoToLocalInput(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return '';
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + 'T' + pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }

  function localInputToIso(v) {
    if (!v) return '';
    const d = new Date(v);
    return Number.isNaN(d.getTime()) ? '' : d.toISOString();
  }

  async function renderEvents(root, _params, ctx) {
    const q = new URLSearchParams(window.location.search);
    const f = {
      type: q.get('type') || '',
      status: q.get('status') || '',
      row_id: q.get('row_id') || '',
      since: q.get('since') || '',
      until: q.get('until') || '',
      before: q.get('before') || '',
    };
    root.append(heading('Events'));

    const field = (label, input, hint) => el('div', { class: 'field' }, el('label', { for: input.id, text: label }), input, hint ? el('span', { class: 'hint', text: hint }) : null);
    const types = el('datalist', { id: 'event-types' }, EVENT_TYPES.map((t) => el('option', { value: t })));
    const status = el('select', { id: 'filter-status', name: 'status' },
      [['', 'any'], ['pending', 'pending'], ['done', 'done'], ['dead', 'dead']].map(([v, t]) => el('option', { value: v, text: t })));
    status.value = f.status;
    const form = el('form', { id: 'events-filter', class: 'filters', role: 'search', 'aria-label': 'Filter events' },
      field('Type', el('input', { id: 'filter-type', name: 'type', list: 'event-types', value: f.type, placeholder: 'any', autocomplete: 'off', spellcheck: 'false' })),
      types,
      field('Status', status),
      field('Row id', el('input', { id: 'filter-row-id', name: 'row_id', value: f.row_id, placeholder: 'row_…', autocomplete: 'off', spellcheck: 'false' })),
      field('Since (local time)', el('input', { id: 'filter-since', name: 'since', type: 'datetime-local', step: '1', value: f.since ? isoToLocalInput(f.since) : '' })),
      field('Until (local time)', el('input', { id: 'filter-until', name: 'until', type: 'datetime-local', step: '1', value: f.until ? isoToLocalInput(f.until) : '' })),
      el('div', { class: 'field field-buttons' },
        el('button', { type: 'submit', class: 'button-primary', id: 'filter-apply', text: 'Apply' }),
        el('button', { type: 'button', id: 'filter-clear', text: 'Clear', on: { click: () => navigate(BASE + '/events') } })));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const fd = new FormData(form);
      navigate(BASE + '/events' + query({
        type: (fd.get('type') || '').trim(),
        status: fd.get('status'),
        row_id: (fd.get('row_id') || '').trim(),
        since: localInputToIso(fd.get('since')),
        until: localInputToIso(fd.get('until')),
      }));
    });
    root.append(form);

    const data = await api('GET', '/admin/events' + query({ type: f.type, status: f.status, row_id: f.row_id, since: f.since, until: f.until, before: f.before, limit: PAGE }));
    if (!ctx.alive()) return;
    const events = data.events || [];
    const rows = events.map((e) => {
      const d = e.deliveries || {};
      const counts = [];
      if (d.pending) counts.push(badge(d.pending + ' pending', 'warn'));
      if (d.done) counts.push(badge(d.done + ' done', 'ok'));
      if (d.dead) counts.push(badge(d.dead + ' dead', 'bad'));
      if (!counts.length) counts.push(el('span', { class: 'muted', text: 'none' }));
      return el('tr', { 'data-event-id': e.id },
        el('th', { scope: 'row' }, el('a', { class: 'event-link mono', href: BASE + '/events/' + encodeURIComponent(e.id), text: e.id })),
        td(e.type, null, 'type'),
        td(e.source, null, 'source'),
        td(time(e.received_at), null, 'received_at'),
        td(el('span', { class: 'badges' }, counts), null, 'deliveries'));
    });
    if (!rows.length) rows.push(el('tr', { class: 'row-empty' }, el('td', { colspan: 5, class: 'empty', text: f.before ? 'No older events.' : 'No events match these filters.' })));
    const tableWrap = table('data', ['Event', 'Type', 'Source', 'Received', 'Deliveries'], rows, 'Events, newest first');
    $('table', tableWrap).id = 'events-table';
    root.append(tableWrap);

    const here = { type: f.type, status: f.status, row_id: f.row_id, since: f.since, until: f.until };
    const pager = el('div', { class: 'pager' },
      el('span', { class: 'muted small', id: 'events-count', text: events.length + (events.length === 1 ? ' event' : ' events') + (f.before ? ' older than ' + f.before : ', newest first') }),
      f.before ? el('a', { class: 'button', id: 'events-newest', href: BASE + '/events' + query(here), text: 'Newest' }) : null,
      data.next_before ? el('a', { class: 'button', id: 'events-older', href: BASE + '/events' + query(Object.assign({}, here, { before: data.next_before })), text: 'Older' }) : null);
    root.append(pager);
  }

  // ---------- one event ----------

  async function renderEvent(root, params, ctx) {
    const id = params[0];
    let ev;
    try {
      ev = await api('GET', '/admin/events/' + encodeURIComponent(id));
    } catch (err) {
      root.append(el('nav', { class: 'breadcrumb', 'aria-label': 'Breadcrumb' }, el('a', { href: BASE + '/events', text: 'Events' })));
      throw err;
    }
    if (!ctx.alive()) return;
    root.append(el('nav', { class: 'breadcrumb', 'aria-label': 'Breadcrumb' }, el('a', { href: BASE + '/events', text: 'Events' }), ' › ', el('span', { class: 'mono', text: ev.id })));
    root.append(el('div', { class: 'page-head' }, el('h1', {}, 'Event ', el('code', { class: 'event-id', id: 'event-id', text: ev.id }))));
    root.append(el('dl', { class: 'meta', id: 'event-meta' },
      kv('Type', ev.type),
      kv('Source', ev.source),
      kv('Received', time(ev.received_at, true)),
      kv('Idempotency key', el('code', { class: 'wrap', text: ev.idempotency_key || '' }))));

    let pretty;
    if (typeof ev.body === 'string') {
      try {
        pretty = JSON.stringify(JSON.parse(ev.body), null, 2);
      } catch (e) {
        pretty = ev.body;
      }
    } else {
      pretty = JSON.stringify(ev.body, null, 2);
    }
    const pre = el('pre', { id: 'event-body', class: 'code code-wrap', tabindex: '0', 'aria-label': 'Event body' });
    pre.textContent = pretty;
    const copy = el('button', { type: 'button', class: 'button-quiet small', text: 'Copy', 'aria-label': 'Copy the body' });
    copy.addEventListener('click', async () => {
      try {
        await navigator.clipboard.writeText(pretty);
        copy.textContent = 'Copied';
      } catch (e) {
        copy.textContent = 'Copy failed';
      }
    });

    const deliveries = ev.deliveries || [];
    const list = el('div', { id: 'event-deliveries', class: 'deliveries' });
    if (!deliveries.length) list.append(el('p', { class: 'muted', text: 'No plugin subscribed to this event when it arrived: it has no deliveries.' }));
    for (const d of deliveries) list.append(deliveryCard(d, ctx));

    root.append(el('div', { class: 'split' },
      section('Deliveries (' + deliveries.length + ')', 'deliveries', list),
      el('section', { class: 'panel', 'aria-labelledby': 'body-title' },
        el('div', { class: 'panel-head' }, el('h2', { id: 'body-title', text: 'Body' }), copy),
        pre)));

    // While a delivery is pending (a replay running), look again shortly.
    if (deliveries.some((d) => d.state === 'pending')) {
      state.timer = setTimeout(() => ctx.refresh(), 1500);
    }
  }

  function deliveryCard(d, ctx) {
    const actions = el('div', { class: 'actions' });
    if (d.state === 'dead') {
      const b = el('button', { type: 'button', class: 'button-primary', 'data-action': 'replay', 'data-delivery-id': d.id, text: 'Replay', 'aria-label': 'Replay delivery ' + d.id + ' to ' + d.plugin });
      b.addEventListener('click', () => busy(b, async () => {
        const r = await api('POST', '/admin/deliveries/' + d.id + '/replay');
        flash('Delivery ' + d.id + ' to ' + d.plugin + ' handed over again (' + (r && r.replayed !== undefined ? r.replayed : 1) + ' replayed).', 'ok');
        ctx.refresh();
      }));
      actions.append(b);
    }
    const timeline = el('ol', { class: 'timeline', 'aria-label': 'Attempts of delivery ' + d.id });
    for (const a of d.attempts_history || []) {
      timeline.append(el('li', { class: 'tl tl-' + a.outcome, 'data-attempt': a.attempt },
        el('div', { class: 'tl-head' },
          el('strong', { text: 'Attempt ' + a.attempt }), ' ',
          badge(a.outcome, a.outcome === 'fail' ? 'bad' : 'warn'), ' ',
          time(a.started_at, true),
          el('span', { class: 'muted', text: ' · ' + num(a.duration_ms) + ' ms' })),
        el('div', { class: 'tl-reason', text: a.reason || '' })));
    }
    if (d.state === 'done') {
      timeline.append(el('li', { class: 'tl tl-done' }, el('div', { class: 'tl-head' }, el('strong', { text: 'Done' }), ' ', time(d.finished_at, true))));
    } else if (d.state === 'dead') {
      timeline.append(el('li', { class: 'tl tl-dead' }, el('div', { class: 'tl-head' }, el('strong', { text: 'Dead' }), ' ', time(d.finished_at, true)), el('div', { class: 'tl-reason', text: d.last_error || '' })));
    } else {
      timeline.append(el('li', { class: 'tl tl-pending' }, el('div', { class: 'tl-head' }, el('strong', { text: 'Pending' }), d.due_at ? [' · due ', time(d.due_at, true)] : null, d.lease_until ? el('span', { class: 'muted', text: ' · being handled' }) : null)));
    }
    return el('article', { class: 'delivery state-' + d.state, 'data-delivery-id': d.id, 'data-state': d.state, 'data-plugin': d.plugin, 'aria-label': 'Delivery ' + d.id + ' to ' + d.plugin },
      el('header', { class: 'delivery-head' },
        el('h3', {}, el('span', { text: d.plugin }), ' ', el('span', { class: 'muted small', text: '#' + d.id })),
        stateBadge(d.state),
        actions),
      el('dl', { class: 'meta meta-compact' },
        kv('Attempts', num(d.attempts)),
        d.claimed_by ? kv('Claimed by', el('span', { class: 'mono', text: d.claimed_by })) : null,
        d.ordering_key ? kv('Ordering key', el('span', { class: 'mono', text: d.ordering_key })) : null,
        d.last_error && d.state !== 'dead' ? kv('Last error', el('span', { class: 'text-bad', text: d.last_error })) : null),
      timeline);
  }

  // ---------- dead letters ----------

  async function deadIds(plugin, reason, onPage) {
    const ids = [];
    let before = null;
    for (;;) {
      const r = await api('GET', '/admin/deliveries' + query({ state: 'dead', plugin: plugin, error: reason === null ? null : reason, before: before, limit: 1000 }));
      for (const d of r.deliveries || []) if (reason !== null || d.last_error === null) ids.push(d.id);
      if (onPage) onPage(ids.length);
      if (!r.next_before) break;
      before = r.next_before;
    }
    return ids;
  }

  // POSTs ids in chunks; returns the sum of answer[field].
  async function inChunks(path, field, ids, onProgress) {
    let done = 0;
    for (let i = 0; i < ids.length; i += CHUNK) {
      const r = await api('POST', path, { ids: ids.slice(i, i + CHUNK) });
      done += Number(r && r[field]) || 0;
      if (onProgress) onProgress(Math.min(i + CHUNK, ids.length), ids.length);
    }
    return done;
  }

  async function renderDead(root, _params, ctx) {
    root.append(heading('Dead letters'));
    root.append(el('p', { class: 'lead', text: 'Deliveries that went dead, grouped by plugin and reason, largest first. Replay hands them to their plugin again; discard deletes them and their attempts for good.' }));
    const data = await api('GET', '/admin/dead-letters');
    if (!ctx.alive()) return;
    const groups = data.groups || [];
    const list = el('div', { id: 'dead-groups', class: 'groups' });
    if (!groups.length) {
      list.append(el('p', { class: 'empty-state', id: 'dead-empty', text: 'No dead deliveries.' }));
    }
    groups.forEach((g, i) => list.append(deadGroup(g, i, ctx)));
    root.append(list);
  }

  function deadGroup(g, index, ctx) {
    const gid = 'dead-group-' + index;
    const progress = el('p', { class: 'progress small', role: 'status', 'aria-live': 'polite' });
    const confirmBox = el('div', { class: 'confirm', hidden: true, role: 'alertdialog', 'aria-labelledby': gid + '-confirm-text' });
    const details = el('div', { class: 'group-deliveries', id: gid + '-deliveries', hidden: true });
    const sec = el('section', { class: 'dead-group panel', id: gid, 'data-plugin': g.plugin, 'data-reason': g.reason === null ? '' : g.reason, 'data-count': g.count, 'aria-labelledby': gid + '-title' });

    // Asks in the page before a discard; calls go() when confirmed.
    const askConfirm = (text, go) => {
      confirmBox.replaceChildren(
        el('p', { id: gid + '-confirm-text', text: text }),
        el('div', { class: 'actions' },
          el('button', { type: 'button', class: 'button-danger', 'data-action': 'confirm', text: 'Discard for good', on: { click: (ev) => { confirmBox.hidden = true; go(ev.currentTarget); } } }),
          el('button', { type: 'button', 'data-action': 'cancel', text: 'Cancel', on: { click: () => { confirmBox.hidden = true; } } })));
      confirmBox.hidden = false;
      $('button[data-action=cancel]', confirmBox).focus();
    };

    const replayAll = el('button', { type: 'button', class: 'button-primary', 'data-action': 'replay-group', text: 'Replay all ' + num(g.count), 'aria-label': 'Replay all ' + g.count + ' dead deliveries of ' + g.plugin + ' with this reason' });
    replayAll.addEventListener('click', () => busy(replayAll, async () => {
      progress.textContent = 'Finding the deliveries…';
      const ids = await deadIds(g.plugin, g.reason, (n) => { progress.textContent = 'Found ' + num(n) + '…'; });
      const n = await inChunks('/admin/replay', 'replayed', ids, (d, t) => { progress.textContent = 'Replaying: ' + num(d) + ' of ' + num(t) + '…'; });
      flash('Replayed ' + num(n) + ' of ' + num(ids.length) + ' dead deliveries of ' + g.plugin + '.', 'ok');
      ctx.refresh();
    }));

    const discardAll = el('button', { type: 'button', class: 'button-danger-quiet', 'data-action': 'discard-group', text: 'Discard all ' + num(g.count) + '…', 'aria-label': 'Discard all ' + g.count + ' dead deliveries of ' + g.plugin + ' with this reason' });
    discardAll.addEventListener('click', () => askConfirm(
      'Discard all ' + num(g.count) + ' dead deliveries of ' + g.plugin + ' with this reason? They and their attempts are deleted, and cannot be replayed afterwards.',
      () => busy(discardAll, async () => {
        progress.textContent = 'Finding the deliveries…';
        const ids = await deadIds(g.plugin, g.reason, (n) => { progress.textContent = 'Found ' + num(n) + '…'; });
        const n = await inChunks('/admin/discard', 'discarded', ids, (d, t) => { progress.textContent = 'Discarding: ' + num(d) + ' of ' + num(t) + '…'; });
        flash('Discarded ' + num(n) + ' dead deliveries of ' + g.plugin + '.', 'ok');
        ctx.refresh();
      })));

    const expand = el('button', { type: 'button', 'data-action': 'expand', 'aria-expanded': 'false', 'aria-controls': gid + '-deliveries', text: 'Show deliveries' });
    let loaded = false;
    expand.addEventListener('click', () => busy(expand, async () => {
      const open = expand.getAttribute('aria-expanded') === 'true';
      if (open) {
        details.hidden = true;
        expand.setAttribute('aria-expanded', 'false');
        expand.textContent = 'Show deliveries';
        return;
      }
      if (!loaded) {
        await fillGroupDeliveries(details, g, gid, ctx, askConfirm, progress);
        loaded = true;
      }
      details.hidden = false;
      expand.setAttribute('aria-expanded', 'true');
      expand.textContent = 'Hide deliveries';
    }));

    sec.append(
      el('header', { class: 'group-head' },
        el('h2', { id: gid + '-title' }, el('span', { text: g.plugin })),
        badge(num(g.count) + ' dead', 'bad'),
        el('span', { class: 'muted small' }, 'first ', time(g.first_at), ' · last ', time(g.last_at))),
      el('p', { class: 'reason', text: g.reason === null ? '(no reason recorded)' : g.reason }),
      el('div', { class: 'actions' }, expand, replayAll, discardAll),
      confirmBox,
      progress,
      details);
    return sec;
  }

  async function fillGroupDeliveries(box, g, gid, ctx, askConfirm, progress) {
    const tbody = el('tbody');
    const selected = () => Array.from(box.querySelectorAll('input[data-delivery-id]:checked')).map((c) => Number(c.dataset.deliveryId));
    const all = el('input', { type: 'checkbox', 'aria-label': 'Select all listed deliveries', 'data-action': 'select-all' });
    const replaySel = el('button', { type: 'button', class: 'button-primary', 'data-action': 'replay-selected', disabled: true, text: 'Replay selected' });
    const discardSel = el('button', { type: 'button', class: 'button-danger-quiet', 'data-action': 'discard-selected', disabled: true, text: 'Discard selected…' });
    const more = el('button', { type: 'button', 'data-action': 'more', hidden: true, text: 'Load more' });
    let before = null;

    const update = () => {
      const n = selected().length;
      replaySel.disabled = n === 0;
      discardSel.disabled = n === 0;
      replaySel.textContent = n ? 'Replay ' + n + ' selected' : 'Replay selected';
      discardSel.textContent = n ? 'Discard ' + n + ' selected…' : 'Discard selected…';
    };
    all.addEventListener('change', () => {
      for (const c of box.querySelectorAll('input[data-delivery-id]')) c.checked = all.checked;
      update();
    });

    const loadPage = async () => {
      const r = await api('GET', '/admin/deliveries' + query({ state: 'dead', plugin: g.plugin, error: g.reason, before: before, limit: 100 }));
      for (const d of r.deliveries || []) {
        if (g.reason === null && d.last_error !== null) continue;
        const cb = el('input', { type: 'checkbox', id: gid + '-d' + d.id, 'data-delivery-id': d.id, 'aria-label': 'Select delivery ' + d.id });
        cb.addEventListener('change', update);
        tbody.append(el('tr', { 'data-delivery-id': d.id, 'data-event-id': d.event_id },
          el('td', { class: 'check' }, cb),
          el('th', { scope: 'row', class: 'num' }, el('label', { for: cb.id, text: '#' + d.id })),
          td(el('a', { class: 'mono', href: BASE + '/events/' + encodeURIComponent(d.event_id), text: d.event_id }), null, 'event'),
          td(d.event_type, null, 'type'),
          td(num(d.attempts), 'num', 'attempts'),
          td(time(d.finished_at), null, 'finished_at')));
      }
      before = r.next_before;
      more.hidden = !before;
    };
    more.addEventListener('click', () => busy(more, loadPage));

    replaySel.addEventListener('click', () => busy(replaySel, async () => {
      const ids = selected();
      const n = await inChunks('/admin/replay', 'replayed', ids, (d, t) => { progress.textContent = 'Replaying: ' + num(d) + ' of ' + num(t) + '…'; });
      flash('Replayed ' + num(n) + ' of ' + num(ids.length) + ' selected deliveries.', 'ok');
      ctx.refresh();
    }));
    discardSel.addEventListener('click', () => {
      const ids = selected();
      askConfirm('Discard ' + num(ids.length) + ' selected dead deliveries? They and their attempts are deleted, and cannot be replayed afterwards.',
        () => busy(discardSel, async () => {
          const n = await inChunks('/admin/discard', 'discarded', ids, (d, t) => { progress.textContent = 'Discarding: ' + num(d) + ' of ' + num(t) + '…'; });
          flash('Discarded ' + num(n) + ' dead deliveries.', 'ok');
          ctx.refresh();
        }));
    });

    await loadPage();
    const t = el('table', { class: 'data compact' },
      el('caption', { class: 'visually-hidden', text: 'Dead deliveries of ' + g.plugin }),
      el('thead', {}, el('tr', {}, el('th', { class: 'check', scope: 'col' }, all), el('th', { scope: 'col', class: 'num', text: 'Delivery' }), el('th', { scope: 'col', text: 'Event' }), el('th', { scope: 'col', text: 'Type' }), el('th', { scope: 'col', class: 'num', text: 'Attempts' }), el('th', { scope: 'col', text: 'Went dead' }))),
      tbody);
    box.replaceChildren(el('div', { class: 'table-wrap' }, t), el('div', { class: 'actions' }, replaySel, discardSel, more));
  }

  // ---------- plugins ----------

  async function renderPlugins(root, _params, ctx) {
    const reloadBtn = el('button', { type: 'button', id: 'reload-now', class: 'button-primary', text: 'Reload now' });
    const result = el('div', { id: 'reload-result', 'aria-live': 'polite' });
    root.append(heading('Plugins', reloadBtn));

    const [pl, rl] = await Promise.all([api('GET', '/admin/plugins'), api('GET', '/admin/reload')]);
    if (!ctx.alive()) return;
    setGeneration(pl.generation);
    result.replaceChildren(reloadStatus(rl, false));

    reloadBtn.addEventListener('click', () => busy(reloadBtn, async () => {
      result.replaceChildren(el('p', { class: 'muted', text: 'Reloading the config and the plugins…' }));
      try {
        const r = await api('POST', '/admin/reload');
        setGeneration(r.generation);
        flash('Reloaded: generation ' + r.generation + ' serving.', 'ok');
        ctx.refresh();
      } catch (err) {
        if (err.status === 422 && err.body) {
          result.replaceChildren(reloadStatus(err.body, true));
          flash('The reload was refused; generation ' + err.body.generation + ' keeps serving.', 'error');
        } else {
          throw err;
        }
      }
    }));

    const rows = (pl.plugins || []).map((p) => {
      const paused = !!p.paused;
      const b = el('button', { type: 'button', class: paused ? 'button-primary' : null, 'data-action': paused ? 'resume' : 'pause', 'data-plugin': p.name, text: paused ? 'Resume' : 'Pause', 'aria-label': (paused ? 'Resume ' : 'Pause ') + p.name });
      b.addEventListener('click', () => busy(b, async () => {
        const r = await api('POST', '/admin/plugins/' + encodeURIComponent(p.name) + '/' + (paused ? 'resume' : 'pause'));
        flash(p.name + (r && r.paused ? ' is paused: it gets no new calls until resumed.' : ' is running again.'), 'ok');
        ctx.refresh();
      }));
      return el('tr', { 'data-plugin': p.name, 'data-paused': String(paused), 'data-loaded': String(p.loaded !== false) },
        el('th', { scope: 'row', text: p.name }),
        td([el('span', { text: p.kind || '' }), ' ', el('span', { class: 'muted', text: p.version || '' })], null, 'kind'),
        td(p.isolation || '', null, 'isolation'),
        td(pluginState(p), null, 'state'),
        td(num(p.concurrency), 'num', 'concurrency'),
        td(num(p.max_batch), 'num', 'max_batch'),
        td(num(p.pending), 'num', 'pending'),
        td(num(p.in_flight), 'num', 'in_flight'),
        td(num(p.done), 'num', 'done'),
        td(p.dead ? el('a', { href: BASE + '/dead', class: 'text-bad', text: num(p.dead) }) : num(p.dead), 'num', 'dead'),
        td(duration(p.queue_lag_seconds), 'num', 'queue_lag'),
        td(b, 'cell-action', 'action'));
    });
    if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: 12, class: 'empty', text: 'No plugin is loaded.' })));
    const t = table('data', ['Plugin', 'Kind', 'Isolation', 'State', { text: 'Workers', num: true }, { text: 'Batch', num: true }, { text: 'Pending', num: true }, { text: 'In flight', num: true }, { text: 'Done', num: true }, { text: 'Dead', num: true }, { text: 'Queue lag', num: true }, { hidden: 'Actions' }], rows, 'Loaded plugins');
    $('table', t).id = 'plugins-table';
    root.append(section('Loaded', 'plugins-loaded', t, el('p', { class: 'muted small', text: 'A paused plugin gets no new calls; its deliveries wait in the store, and the flag survives restarts.' })));

    const down = pl.down || [];
    if (down.length) {
      const drows = down.map((d) => el('tr', { 'data-plugin': d.name, 'data-down': 'true' },
        el('th', { scope: 'row', text: d.name }),
        td(el('span', { class: 'reason', text: d.reason || '' }), null, 'reason'),
        td(num(d.pending), 'num', 'pending'),
        td(num(d.dead), 'num', 'dead')));
      const dt = table('data', ['Plugin', 'Why it is down', { text: 'Pending', num: true }, { text: 'Dead', num: true }], drows, 'Plugins that did not load');
      $('table', dt).id = 'plugins-down';
      root.append(section('Down', 'plugins-down-section', el('p', { class: 'muted small', text: 'Enabled in the config but refused at start. Their deliveries wait until a reload loads them.' }), dt));
    }
    const notLoaded = pl.not_loaded || [];
    if (notLoaded.length) {
      const nrows = notLoaded.map((d) => el('tr', { 'data-plugin': d.name }, el('th', { scope: 'row', text: d.name }), td(num(d.pending), 'num', 'pending'), td(num(d.dead), 'num', 'dead')));
      const nt = table('data', ['Plugin', { text: 'Pending', num: true }, { text: 'Dead', num: true }], nrows, 'Names with deliveries but no plugin');
      $('table', nt).id = 'plugins-not-loaded';
      root.append(section('Not in the config', 'plugins-not-loaded-section', el('p', { class: 'muted small', text: 'Names with deliveries in the store that no entry of the config in force loads.' }), nt));
    }
    root.append(section('Reload', 'plugins-reload', el('p', { class: 'muted small', text: 'Reload reads the config file and the plugins again, as SIGHUP does; a refused reload leaves the running generation serving.' }), result));
  }

  function reloadStatus(r, refused) {
    const box = el('div', { class: 'reload-status' + (refused ? ' refused' : ''), 'data-result': r.last_result || 'none' });
    box.append(el('dl', { class: 'meta meta-compact' },
      kv('Serving', 'generation ' + num(r.generation), 'reload-generation'),
      kv('Last reload', r.last_result ? [badge(r.last_result, r.last_result === 'ok' ? 'ok' : 'bad'), ' ', r.last_trigger ? el('span', { class: 'muted', text: 'by ' + r.last_trigger }) : null] : 'none since the host started'),
      r.last_at ? kv('At', [time(r.last_at), el('span', { class: 'muted', text: ' · took ' + (Math.round((r.last_duration_ms || 0) * 10) / 10) + ' ms' })]) : null,
      kv('Since start', num(r.reloads_ok) + ' ok, ' + num(r.reloads_failed) + ' refused')));
    if (r.last_error) box.append(el('p', { class: 'message message-error', id: 'reload-error', text: r.last_error }));
    if (r.last_warnings && r.last_warnings.length) box.append(el('ul', { class: 'warnings' }, r.last_warnings.map((w) => el('li', { text: w }))));
    return box;
  }

  // ---------- configuration ----------

  async function renderConfig(root, _params, ctx) {
    const c = await api('GET', '/admin/config');
    if (!ctx.alive()) return;
    setGeneration(c.generation);
    root.append(heading('Configuration'));
    root.append(el('dl', { class: 'meta' },
      kv('File', el('code', { text: c.file || '' }), 'config-file'),
      kv('Generation in force', num(c.generation), 'config-generation')));
    const warnings = c.warnings || [];
    root.append(section('Warnings', 'config-warnings-section', warnings.length
      ? el('ul', { id: 'config-warnings', class: 'warnings' }, warnings.map((w) => el('li', { text: w })))
      : el('p', { id: 'config-warnings', class: 'muted', text: 'None.' })));

    const tree = el('div', { id: 'config-tree', class: 'tree' });
    const cfg = c.config || {};
    for (const [k, v] of Object.entries(cfg)) tree.append(treeNode(k, v, 0));
    const raw = el('pre', { id: 'config-json', class: 'code', hidden: true, tabindex: '0' });
    raw.textContent = JSON.stringify(cfg, null, 2);
    const toggle = el('button', { type: 'button', class: 'button-quiet small', id: 'config-toggle', 'aria-pressed': 'false', text: 'Show as JSON' });
    toggle.addEventListener('click', () => {
      const asJson = raw.hidden;
      raw.hidden = !asJson;
      tree.hidden = asJson;
      toggle.setAttribute('aria-pressed', String(asJson));
      toggle.textContent = asJson ? 'Show as a tree' : 'Show as JSON';
    });
    root.append(el('section', { class: 'panel', 'aria-labelledby': 'config-title' },
      el('div', { class: 'panel-head' }, el('h2', { id: 'config-title', text: 'In force' }), toggle),
      el('p', { class: 'muted small', text: 'Secrets appear only as references (a variable name or a file), never as values.' }),
      tree, raw));
  }

  function scalar(v) {
    if (v === null) return el('span', { class: 'v-null', text: 'null' });
    if (typeof v === 'boolean') return el('span', { class: 'v-bool', text: String(v) });
    if (typeof v === 'number') return el('span', { class: 'v-num', text: String(v) });
    if (typeof v === 'string') return el('span', { class: 'v-str', text: v === '' ? '""' : v });
    return el('span', { text: JSON.stringify(v) });
  }

  // A key and its value: an open <details> for objects and arrays.
  function treeNode(key, v, depth) {
    const isObj = v !== null && typeof v === 'object';
    const entries = isObj ? (Array.isArray(v) ? v.map((x, i) => [String(i), x]) : Object.entries(v)) : [];
    if (!isObj || !entries.length) {
      return el('div', { class: 'tree-leaf' }, el('span', { class: 'tree-key', text: key }), el('span', { class: 'tree-sep', text: ': ' }),
        isObj ? el('span', { class: 'v-null', text: Array.isArray(v) ? '[]' : '{}' }) : scalar(v));
    }
    // Label array items by their name (plugins, sources) when they have one.
    const label = (k, x) => (Array.isArray(v) && x && typeof x === 'object' && !Array.isArray(x) && (x.name || x.event || x.ref)) ? (x.name || x.event || x.ref) : k;
    const d = el('details', { class: 'tree-node depth-' + depth, open: depth < 4 });
    d.append(el('summary', {}, el('span', { class: 'tree-key', text: key }), el('span', { class: 'tree-count muted', text: Array.isArray(v) ? ' [' + entries.length + ']' : '' })));
    const kids = el('div', { class: 'tree-children' });
    for (const [k, x] of entries) kids.append(treeNode(label(k, x), x, depth + 1));
    d.append(kids);
    return d;
  }

  // ---------- start ----------

  async function signOut(button) {
    await busy(button, async () => {
      await session();
      const post = () => fetch(BASE + '/logout', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'X-CSRF-Token': state.csrf || '', Accept: 'application/json' },
      });
      let res = await post();
      if (res.status === 403) {
        // A stale CSRF token, or no session any more (then this goes to login).
        await session(true);
        res = await post();
      }
      if (!res.ok) throw new Error('Signing out failed: HTTP ' + res.status);
      toLogin('signed-out');
    });
  }

  function start() {
    $('#host-location').textContent = window.location.host;
    $('#sign-out').addEventListener('click', (ev) => signOut(ev.currentTarget));
    session().catch(() => {});
    // The header's generation on every page (the overview keeps it fresh).
    api('GET', '/admin/reload').then((r) => setGeneration(r.generation), () => {});
    render();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
