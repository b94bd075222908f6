// Plain SVG charts for the reports page (no library): stacked bars and horizontal bars.
const NS = 'http://www.w3.org/2000/svg';

const PALETTE = ['#1a7f37', '#cf222e', '#bc4c00', '#8250df', '#6e7781', '#9a6700', '#0969da', '#bf3989', '#1b7c83', '#57606a', '#953800', '#116329'];

/** A stable colour per series name. */
export function colorOf(name, known) {
  const i = known.indexOf(name);
  if (i >= 0) return PALETTE[i % PALETTE.length];
  let h = 0;
  for (const c of name) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return PALETTE[h % PALETTE.length];
}

function el(name, attrs, parent) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (parent) parent.appendChild(e);
  return e;
}

function niceMax(v) {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/**
 * Stacked bar chart. categories: labels; series: [{ name, color, values[] }]; format: value -> text.
 * Each bar has data-category and data-total attributes (the browser test reads them).
 */
export function stackedBars(container, categories, series, format = String) {
  container.replaceChildren();
  const W = 900;
  const H = 220;
  const left = 50;
  const bottom = 40;
  const top = 10;
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img' }, container);
  const totals = categories.map((_, i) => series.reduce((a, s) => a + (s.values[i] || 0), 0));
  const max = niceMax(Math.max(0, ...totals));
  const plotH = H - bottom - top;
  const step = (W - left - 10) / Math.max(1, categories.length);
  const bw = Math.max(2, step * 0.7);
  el('line', { x1: left, y1: H - bottom, x2: W - 10, y2: H - bottom, class: 'axis' }, svg);
  for (const f of [0, 0.5, 1]) {
    const y = H - bottom - f * plotH;
    el('line', { x1: left - 4, y1: y, x2: W - 10, y2: y, class: 'axis', 'stroke-dasharray': f === 0 ? '' : '2 3' }, svg);
    el('text', { x: left - 6, y: y + 3, 'text-anchor': 'end' }, svg).textContent = format(max * f);
  }
  const labelEvery = Math.ceil(categories.length / 16);
  categories.forEach((c, i) => {
    const x = left + i * step + (step - bw) / 2;
    const g = el('g', { 'data-category': c, 'data-total': totals[i] }, svg);
    let y = H - bottom;
    for (const s of series) {
      const v = s.values[i] || 0;
      if (v <= 0) continue;
      const h = (v / max) * plotH;
      y -= h;
      const r = el('rect', { x, y, width: bw, height: h, fill: s.color }, g);
      el('title', {}, r).textContent = `${c} ${s.name}: ${format(v)}`;
    }
    if (i % labelEvery === 0) el('text', { x: x + bw / 2, y: H - bottom + 14, 'text-anchor': 'middle' }, svg).textContent = c;
  });
  const legend = document.createElement('div');
  legend.className = 'legend';
  for (const s of series) {
    const span = document.createElement('span');
    const i = document.createElement('i');
    i.style.background = s.color;
    span.append(i, s.name);
    legend.appendChild(span);
  }
  container.appendChild(legend);
}

/** Horizontal bars: rows [{ label, value }]. */
export function horizontalBars(container, rows, format = String) {
  container.replaceChildren();
  const W = 900;
  const rowH = 22;
  const left = 170;
  const H = Math.max(rowH, rows.length * rowH) + 6;
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img' }, container);
  const max = niceMax(Math.max(0, ...rows.map((r) => r.value)));
  rows.forEach((r, i) => {
    const y = 3 + i * rowH;
    const g = el('g', { 'data-label': r.label, 'data-value': r.value }, svg);
    el('text', { x: left - 8, y: y + 14, 'text-anchor': 'end' }, g).textContent = r.label;
    el('rect', { x: left, y: y + 3, width: Math.max(r.value > 0 ? 1 : 0, ((W - left - 60) * r.value) / max), height: rowH - 8, fill: r.color || '#0969da' }, g);
    el('text', { x: left + ((W - left - 60) * r.value) / max + 6, y: y + 14 }, g).textContent = format(r.value);
  });
}
