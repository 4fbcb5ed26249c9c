// Small charts drawn as inline SVG: bars for counts per interval, a line for
// a level (the store's size). No library: createElementNS and a stylesheet.
'use strict';
(function () {
  const NS = 'http://www.w3.org/2000/svg';
  const SLOTS = 360; // one hour of 10 s intervals
  const H = 100;

  function svg(tag, attrs) {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    return e;
  }

  function html(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function clock(iso) {
    // "04:21:10Z" from "2026-11-27T04:21:10.000Z"
    const m = /T(\d\d:\d\d:\d\d)/.exec(iso || '');
    return m ? m[1] + ' UTC' : String(iso || '');
  }

  // opts: {key, title, points: [{t, ...}], kind: 'bars'|'line', format(v),
  //        unit: 'per 10 s' label, summary(values) -> text}
  function chart(opts) {
    const points = (opts.points || []).slice(-SLOTS);
    // A level the host could not read (null) repeats the one before it.
    let prev = 0;
    const values = points.map((p) => {
      const v = p[opts.key];
      if (v === null || v === undefined) return opts.kind === 'line' ? prev : 0;
      prev = Number(v) || 0;
      return prev;
    });
    // A host up for less than an hour: the chart spans what there is (at
    // least 5 minutes), so a young history is not a sliver at the right.
    const slots = Math.min(SLOTS, Math.max(30, points.length));
    const offset = slots - points.length;
    const minutes = Math.round((slots * 10) / 60);
    const fmt = opts.format || String;

    const fig = html('figure', 'chart chart-' + (opts.kind || 'bars'));
    fig.dataset.series = opts.key;
    const cap = html('figcaption', 'chart-caption');
    cap.append(html('span', 'chart-title', opts.title));
    const summary = opts.summary ? opts.summary(values) : '';
    cap.append(html('span', 'chart-summary', summary));
    fig.append(cap);

    const plot = html('div', 'chart-plot');
    const root = svg('svg', {
      viewBox: '0 0 ' + slots + ' ' + H,
      preserveAspectRatio: 'none',
      role: 'img',
      class: 'chart-svg series-' + opts.key,
      'aria-label': opts.title + ', last ' + minutes + ' min: ' + (summary || 'no data'),
    });
    const title = svg('title');
    title.textContent = opts.title + ', last ' + minutes + ' min: ' + (summary || 'no data');
    root.append(title);

    let lo = 0;
    let hi = 0;
    if (values.length) {
      hi = Math.max(...values);
      lo = opts.kind === 'line' ? Math.min(...values) : 0;
    }
    if (opts.kind === 'line' && hi === lo) {
      hi = hi + Math.max(1, hi * 0.05);
      lo = Math.max(0, lo - Math.max(1, lo * 0.05));
    }
    const span = hi - lo || 1;
    const y = (v) => H - 4 - ((v - lo) / span) * (H - 8);

    root.append(svg('line', { x1: 0, x2: slots, y1: 4, y2: 4, class: 'chart-grid', 'vector-effect': 'non-scaling-stroke' }));
    root.append(svg('line', { x1: 0, x2: slots, y1: H, y2: H, class: 'chart-base', 'vector-effect': 'non-scaling-stroke' }));

    if (opts.kind === 'line') {
      if (values.length) {
        let line = '';
        values.forEach((v, i) => {
          line += (i ? 'L' : 'M') + (offset + i + 0.5) + ' ' + y(v).toFixed(2);
        });
        if (values.length === 1) line += 'L' + (offset + 1.5) + ' ' + y(values[0]).toFixed(2);
        const last = values.length === 1 ? offset + 1.5 : offset + values.length - 0.5;
        const area = line + 'L' + last + ' ' + H + 'L' + (offset + 0.5) + ' ' + H + 'Z';
        root.append(svg('path', { d: area, class: 'chart-area' }));
        root.append(svg('path', { d: line, class: 'chart-line', 'vector-effect': 'non-scaling-stroke' }));
      }
    } else {
      let d = '';
      // Wide bars (a short history) get a gap between them.
      const gap = slots <= 120 ? 0.2 : 0;
      const bar = 1 - gap;
      values.forEach((v, i) => {
        if (v <= 0) return;
        const h = Math.max(2, (v / span) * (H - 8));
        d += 'M' + (offset + i + gap / 2) + ' ' + H + 'h' + bar + 'v-' + h.toFixed(2) + 'h-' + bar + 'z';
      });
      if (d) root.append(svg('path', { d: d, class: 'chart-bars' }));
    }
    const cursor = svg('rect', { x: 0, y: 0, width: 1, height: H, class: 'chart-cursor', visibility: 'hidden' });
    root.append(cursor);
    plot.append(root);

    fig.append(plot);

    const axis = html('div', 'chart-axis');
    axis.append(html('span', '', minutes + ' min ago'));
    const hover = html('span', 'chart-hover', '');
    hover.setAttribute('aria-hidden', 'true');
    axis.append(hover);
    axis.append(html('span', '', 'now'));
    fig.append(axis);

    if (!values.length) {
      const empty = html('span', 'chart-empty', 'no data yet');
      plot.append(empty);
    }

    root.addEventListener('mousemove', (ev) => {
      const r = root.getBoundingClientRect();
      if (!r.width) return;
      const slot = Math.floor(((ev.clientX - r.left) / r.width) * slots);
      const i = slot - offset;
      if (i < 0 || i >= values.length) {
        cursor.setAttribute('visibility', 'hidden');
        hover.textContent = '';
        return;
      }
      cursor.setAttribute('x', String(slot));
      cursor.setAttribute('visibility', 'visible');
      hover.textContent = clock(points[i].t) + ': ' + fmt(values[i]);
    });
    root.addEventListener('mouseleave', () => {
      cursor.setAttribute('visibility', 'hidden');
      hover.textContent = '';
    });
    return fig;
  }

  window.ClayCharts = { chart: chart, SLOTS: SLOTS };
})();
