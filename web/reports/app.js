// The reports page: signs in with the API token (cookie session), then shows live calls (server-
// sent events), today's figures, history charts, the funnel and declines by class. Every number
// comes from the /v1 report API; nothing is computed here but display formatting.
import { colorOf, horizontalBars, stackedBars } from './charts.js';

const $ = (id) => document.getElementById(id);
const OUTCOME_ORDER = ['approved', 'declined', 'max-declines', 'max-attempts', 'cancelled', 'hangup', 'not-identified', 'amount-refused', 'psp-error', 'unconfirmed', 'error'];

let tz = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
let stream;
let liveTimer;

async function api(path) {
  const r = await fetch(path, { credentials: 'same-origin', headers: { accept: 'application/json' } });
  if (r.status === 401) {
    showSignIn();
    throw new Error('signed out');
  }
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}

function qs(params) {
  return new URLSearchParams({ tz, ...params }).toString();
}

// ---- formatting -------------------------------------------------------------------------------

function fractionDigits(currency) {
  try {
    return new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits;
  } catch {
    return 2;
  }
}

/** Minor units -> "1,234.50 EUR". */
export function formatAmount(minor, currency) {
  const d = fractionDigits(currency);
  return `${(minor / 10 ** d).toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d })} ${currency}`;
}

function formatAmounts(map) {
  const keys = Object.keys(map).sort();
  return keys.length === 0 ? '0' : keys.map((c) => formatAmount(map[c], c)).join(' · ');
}

const pct = (r) => (r === null ? '–' : `${(r * 100).toFixed(1)} %`);
const secs = (ms) => (ms === null ? '–' : `${(ms / 1000).toFixed(1)} s`);
const msText = (ms) => (ms === null ? '–' : `${Math.round(ms)} ms`);

function localTime(iso) {
  return new Date(iso).toLocaleTimeString('en-GB', { timeZone: tz, hour12: false });
}

function cell(tr, text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

// ---- sign-in ----------------------------------------------------------------------------------

function showSignIn() {
  $('signin').hidden = false;
  $('reports').hidden = true;
  $('controls').hidden = true;
  if (stream) stream.close();
  stream = undefined;
}

async function signIn(ev) {
  ev.preventDefault();
  $('signin-error').textContent = '';
  const token = $('token').value;
  const r = await fetch('/session', { method: 'POST', credentials: 'same-origin', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token }) });
  $('token').value = '';
  if (r.status === 204) return start();
  $('signin-error').textContent = r.status === 401 ? 'Wrong token.' : `Sign-in failed (HTTP ${r.status}).`;
}

async function signOut() {
  await fetch('/session/logout', { method: 'POST', credentials: 'same-origin' });
  showSignIn();
}

// ---- live -------------------------------------------------------------------------------------

async function refreshLive() {
  const { calls } = await api('/v1/calls');
  $('live-count').textContent = String(calls.length);
  const body = $('live-calls');
  body.replaceChildren();
  if (calls.length === 0) {
    const tr = document.createElement('tr');
    tr.className = 'empty';
    const td = cell(tr, 'No call in progress');
    td.colSpan = 6;
    body.appendChild(tr);
    return;
  }
  for (const c of calls) {
    const tr = document.createElement('tr');
    tr.dataset.call = c.id;
    cell(tr, c.id);
    cell(tr, c.profile);
    cell(tr, localTime(c.startedAt));
    cell(tr, c.step || '–').dataset.step = c.step || '';
    cell(tr, c.state);
    cell(tr, c.node || '');
    body.appendChild(tr);
  }
}

function addEvent(e) {
  const li = document.createElement('li');
  const what = e.type === 'step' ? `step ${e.step}` : e.type === 'ended' ? `ended: ${e.outcome}${e.amount !== undefined ? ` ${formatAmount(e.amount, e.currency)}` : ''}` : `started (${e.profile})`;
  li.textContent = `${localTime(e.at)} ${e.id} ${what}`;
  li.dataset.event = e.type;
  const list = $('events');
  list.prepend(li);
  while (list.children.length > 300) list.lastChild.remove();
}

function openStream() {
  if (stream) stream.close();
  stream = new EventSource('/v1/calls/stream');
  stream.onopen = () => {
    $('stream-state').textContent = 'live';
    $('stream-state').className = 'stream on';
  };
  stream.onerror = () => {
    $('stream-state').textContent = 'reconnecting';
    $('stream-state').className = 'stream';
  };
  let ended = false;
  const onEvent = (m) => {
    const e = JSON.parse(m.data);
    addEvent(e);
    if (e.type === 'ended') ended = true;
    // Several events come together: one refresh for the burst.
    clearTimeout(liveTimer);
    liveTimer = setTimeout(() => {
      void refreshLive().catch(() => undefined);
      if (ended) void refreshReports().catch(() => undefined);
      ended = false;
    }, 150);
  };
  for (const t of ['started', 'step', 'ended']) stream.addEventListener(t, onEvent);
}

// ---- today ------------------------------------------------------------------------------------

async function refreshToday() {
  const s = await api(`/v1/reports/summary?${qs({})}`);
  const t = s.total;
  const set = (k, v) => ($(`today`).querySelector(`[data-today="${k}"]`).textContent = v);
  set('count', String(t.count));
  set('approved', String(t.approved));
  set('amount', formatAmounts(t.amount));
  set('approvalRate', pct(t.approvalRate));
  set('declines', String(Object.values(t.declines).reduce((a, b) => a + b, 0)));
  set('hangup', String(t.outcomes.hangup ?? 0));
  set('avgDuration', secs(t.avgDurationMs));
  set('p95Duration', secs(t.p95DurationMs));
  set('pspP95', msText(t.pspMs.p95));
  $('today-range').textContent = `since ${new Date(s.range.from).toLocaleString('en-GB', { timeZone: tz })} (${tz})`;
  const body = $('today-outcomes');
  body.replaceChildren();
  for (const [o, n] of Object.entries(t.outcomes)) {
    if (n === 0) continue;
    const tr = document.createElement('tr');
    tr.dataset.outcome = o;
    cell(tr, o);
    cell(tr, String(n), 'num');
    body.appendChild(tr);
  }
}

// ---- history, funnel, declines ----------------------------------------------------------------

function periodRange() {
  const p = $('period').value;
  // Local dates: the API reads YYYY-MM-DD as midnight in tz.
  const day = (ms) => new Date(ms).toLocaleDateString('en-CA', { timeZone: tz });
  const now = Date.now();
  if (p === 'today') return { groupBy: 'hour', from: day(now), to: day(now + 86_400_000) };
  const days = p === '30d' ? 30 : 7;
  return { groupBy: 'day', from: day(now - (days - 1) * 86_400_000), to: day(now + 86_400_000) };
}

async function refreshHistory() {
  const r = periodRange();
  const range = { from: r.from, to: r.to };
  const [s, f] = await Promise.all([api(`/v1/reports/summary?${qs({ ...range, groupBy: r.groupBy })}`), api(`/v1/reports/funnel?${qs(range)}`)]);
  const cats = s.groups.map((g) => (r.groupBy === 'hour' ? `${g.key.slice(11)}h` : g.key.slice(5)));
  const outcomes = [...new Set([...OUTCOME_ORDER.filter((o) => o in s.total.outcomes), ...Object.keys(s.total.outcomes)])].filter((o) => s.total.outcomes[o] > 0);
  stackedBars($('chart-count'), cats, outcomes.map((o) => ({ name: o, color: colorOf(o, OUTCOME_ORDER), values: s.groups.map((g) => g.outcomes[o] || 0) })), (v) => String(Math.round(v)));
  const currencies = Object.keys(s.total.amount).sort();
  stackedBars(
    $('chart-amount'),
    cats,
    currencies.map((c, i) => ({ name: c, color: ['#1a7f37', '#0969da', '#8250df'][i % 3], values: s.groups.map((g) => (g.amount[c] || 0) / 10 ** fractionDigits(c)) })),
    (v) => v.toLocaleString('en-US', { maximumFractionDigits: 0 }),
  );
  const hbody = $('history-table').querySelector('tbody');
  hbody.replaceChildren();
  for (const g of s.groups) {
    if (g.count === 0) continue;
    const tr = document.createElement('tr');
    tr.dataset.period = g.key;
    cell(tr, g.key);
    cell(tr, String(g.count), 'num');
    cell(tr, String(g.approved), 'num');
    cell(tr, formatAmounts(g.amount), 'num');
    cell(tr, pct(g.approvalRate), 'num');
    hbody.appendChild(tr);
  }
  const fbody = $('funnel-table').querySelector('tbody');
  fbody.replaceChildren();
  const top = Math.max(1, ...f.steps.map((x) => x.reached));
  for (const row of f.steps) {
    if (row.reached === 0) continue;
    const tr = document.createElement('tr');
    tr.dataset.step = row.step;
    cell(tr, row.step);
    cell(tr, String(row.reached), 'num').dataset.col = 'reached';
    const bar = document.createElement('div');
    bar.className = 'bar';
    bar.style.width = `${(160 * row.reached) / top}px`;
    cell(tr, '').appendChild(bar);
    cell(tr, String(row.completed), 'num').dataset.col = 'completed';
    cell(tr, String(row.ended), 'num').dataset.col = 'ended';
    cell(tr, String(row.abandoned), 'num').dataset.col = 'abandoned';
    cell(tr, String(row.invalidEntries), 'num').dataset.col = 'invalidEntries';
    cell(tr, String(row.timeouts), 'num').dataset.col = 'timeouts';
    fbody.appendChild(tr);
  }
  horizontalBars($('chart-declines'), Object.entries(s.total.declines).map(([label, value]) => ({ label, value, color: '#cf222e' })));
  $('export-csv').href = `/v1/reports/export.csv?${qs(range)}`;
  $('export-ndjson').href = `/v1/reports/export.ndjson?${qs(range)}`;
  document.body.dataset.loaded = String(Date.now());
}

async function refreshReports() {
  await Promise.all([refreshToday(), refreshHistory(), refreshWriteBack()]);
}

// ---- Genesys write-back (genesys.platform): the queue and its dead letters --------------------

async function writeBackAction(callRef, how) {
  const path = `/v1/genesys/dead-letters/${encodeURIComponent(callRef)}${how === 'retry' ? '/retry' : ''}`;
  await fetch(path, { method: how === 'retry' ? 'POST' : 'DELETE', credentials: 'same-origin' });
  await refreshWriteBack();
}

async function refreshWriteBack() {
  const r = await fetch('/v1/genesys/dead-letters', { credentials: 'same-origin', headers: { accept: 'application/json' } });
  // 404: the write-back is off on this node (genesys.platform.enabled false).
  if (!r.ok) return;
  const { queue, deadLetters } = await r.json();
  $('writeback').hidden = false;
  $('wb-queue').textContent = `${queue.queued} queued, oldest ${queue.oldestAgeSeconds} s, ${queue.deadLetters} dead letters${queue.state === 'backing-off' ? ', Genesys not answering: retrying' : ''}`;
  const body = $('wb-dead').tBodies[0];
  body.replaceChildren();
  if (deadLetters.length === 0) {
    const tr = document.createElement('tr');
    tr.className = 'empty';
    cell(tr, 'No dead letter').colSpan = 7;
    body.appendChild(tr);
    return;
  }
  for (const d of deadLetters) {
    const tr = document.createElement('tr');
    tr.dataset.deadLetter = d.callRef;
    cell(tr, d.conversationId);
    cell(tr, d.callRef);
    cell(tr, d.outcome);
    cell(tr, `${d.reason}: ${d.lastError ?? ''}`);
    cell(tr, String(d.tries), 'num');
    cell(tr, localTime(d.deadAt));
    const td = cell(tr, '');
    for (const how of ['retry', 'dismiss']) {
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = how === 'retry' ? 'Retry' : 'Dismiss';
      b.onclick = () => void writeBackAction(d.callRef, how);
      td.appendChild(b);
    }
    body.appendChild(tr);
  }
}

// ---- start ------------------------------------------------------------------------------------

function fillZones() {
  const sel = $('tz');
  const zones = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : [];
  for (const z of new Set(['UTC', tz, ...zones])) {
    const o = document.createElement('option');
    o.value = z;
    o.textContent = z;
    sel.appendChild(o);
  }
  sel.value = tz;
  sel.onchange = () => {
    tz = sel.value;
    void refreshReports();
    void refreshLive();
  };
}

async function start() {
  $('signin').hidden = true;
  $('reports').hidden = false;
  $('controls').hidden = false;
  openStream();
  await Promise.all([refreshLive(), refreshReports()]);
}

async function boot() {
  fillZones();
  $('signin-form').addEventListener('submit', (e) => void signIn(e));
  $('logout').addEventListener('click', () => void signOut());
  $('period').addEventListener('change', () => void refreshHistory());
  const s = await (await fetch('/session', { credentials: 'same-origin' })).json();
  if (s.signedIn) await start();
  else showSignIn();
}

void boot();
