// Agent Assist panel: shows one capture's masked progress live and sends the agent's commands.
// The capture token comes in the URL fragment (never sent to a server) and is then only ever
// sent in an Authorization header. The server never sends a card digit: counts, brand, flags,
// last 4 of a valid card number and the result.
(function () {
  'use strict';

  var FIELDS = ['pan', 'expiry', 'securityCode'];
  var PROBLEMS = {
    'too-short': 'too short',
    invalid: 'not a valid card number',
    'unknown-brand': 'card not recognised',
    'brand-not-accepted': 'brand not accepted',
    'bad-month': 'month not valid',
    expired: 'card expired',
    'wrong-length': 'wrong length',
    'too-many-keys': 'too many keys: clear the field',
  };
  var OUTCOMES = {
    approved: 'Payment approved',
    declined: 'Payment declined',
    'psp-error': 'Payment not processed (card not charged)',
    unconfirmed: 'Payment outcome unconfirmed: do not charge again',
    cancelled: 'Capture cancelled',
    hangup: 'Caller hung up',
    error: 'Capture failed',
  };
  var MAX_DOTS = 24;

  var token = readToken();
  var captureId = token ? token.split('.')[1] : undefined;
  var ended = false;
  var busy = false;
  var last;

  function $(id) {
    return document.getElementById(id);
  }

  function readToken() {
    var m = /(?:^#|&)token=([A-Za-z0-9._-]+)/.exec(window.location.hash);
    // The fragment goes: it should not linger in the address or the history.
    if (window.location.hash) window.history.replaceState(null, '', window.location.pathname);
    return m ? m[1] : undefined;
  }

  function problem(text) {
    var p = $('problem');
    p.textContent = text || '';
    p.hidden = !text;
  }

  function setStream(state) {
    var s = $('stream-state');
    s.dataset.state = state;
    s.textContent = state;
  }

  function api(path, method) {
    return fetch('/v1/assist/captures/' + encodeURIComponent(captureId) + path, {
      method: method || 'GET',
      headers: { authorization: 'Bearer ' + token },
      cache: 'no-store',
      credentials: 'omit',
      referrerPolicy: 'no-referrer',
    });
  }

  function dots(n) {
    var k = Math.min(n, MAX_DOTS);
    return new Array(k + 1).join('\u2022') + (n > MAX_DOTS ? '+' : '');
  }

  function statusText(f) {
    if (f.status === 'invalid') return 'invalid: ' + (PROBLEMS[f.problem] || f.problem || '');
    if (f.status === 'typing') return f.digits + ' typed';
    return f.status;
  }

  function render(c) {
    last = c;
    var v = c.view;
    $('panel').dataset.phase = c.status === 'ended' ? 'ended' : v.phase;
    $('amount').textContent = c.amountText + ' ' + c.currency;
    $('reference').textContent = c.reference;
    FIELDS.forEach(function (k) {
      var f = v[k];
      var row = $('field-' + k);
      row.dataset.status = f.status;
      row.dataset.current = String(v.phase === 'collecting' && v.field === k);
      var d = $(k + '-dots');
      d.dataset.count = String(f.digits);
      d.textContent = dots(f.digits);
      $(k + '-status').textContent = statusText(f);
    });
    $('pan-brand').textContent = v.pan.brand || '';
    $('pan-last4').textContent = v.pan.last4 ? '\u2022\u2022\u2022\u2022 ' + v.pan.last4 : '';
    ['expiry', 'securityCode'].forEach(function (k) {
      var e = $(k + '-entered');
      e.dataset.entered = String(v[k].entered);
      e.textContent = v[k].entered ? 'entered' : k === 'securityCode' && !v[k].required ? 'not needed' : 'not entered';
    });
    var running = c.status === 'running';
    $('clear').disabled = busy || !running || (v.phase !== 'collecting' && v.phase !== 'ready');
    $('charge').disabled = busy || !running || v.phase !== 'ready';
    $('cancel').disabled = busy || !running || (v.phase !== 'collecting' && v.phase !== 'ready');
    if (c.result) {
      var r = c.result;
      $('result').hidden = false;
      var o = $('result-outcome');
      o.dataset.outcome = r.outcome;
      o.textContent = OUTCOMES[r.outcome] || r.outcome;
      $('result-brand').textContent = r.brand || '';
      $('result-last4').textContent = r.last4 ? '\u2022\u2022\u2022\u2022 ' + r.last4 : '';
      $('result-psp').textContent = r.pspReference || '–';
      var hasDecline = Boolean(r.declineClass);
      $('result-decline-label').hidden = !hasDecline;
      $('result-decline').hidden = !hasDecline;
      $('result-decline').textContent = r.declineClass || '';
    }
  }

  function command(path) {
    if (busy) return;
    busy = true;
    if (last) render(last);
    problem('');
    api(path, 'POST')
      .then(function (r) {
        return r.json().then(function (body) {
          if (!r.ok) problem(body.error || 'HTTP ' + r.status);
          else render(body);
        });
      })
      .catch(function () {
        problem('The server did not answer.');
      })
      .then(function () {
        busy = false;
        if (last) render(last);
      });
  }

  // Server-sent events over fetch (EventSource cannot send an Authorization header).
  function stream() {
    if (ended) return;
    setStream('connecting');
    api('/events')
      .then(function (r) {
        if (r.status === 401 || r.status === 403) {
          ended = true;
          setStream('closed');
          problem('This capture link has expired or is not valid.');
          return undefined;
        }
        if (!r.ok || !r.body) throw new Error('HTTP ' + r.status);
        setStream('live');
        var reader = r.body.getReader();
        var decoder = new TextDecoder();
        var buf = '';
        function pump() {
          return reader.read().then(function (chunk) {
            if (chunk.done) return undefined;
            buf += decoder.decode(chunk.value, { stream: true });
            var i;
            while ((i = buf.indexOf('\n\n')) >= 0) {
              handle(buf.slice(0, i));
              buf = buf.slice(i + 2);
            }
            return pump();
          });
        }
        return pump();
      })
      .catch(function () {
        setStream('error');
      })
      .then(function () {
        if (!ended) {
          setStream('reconnecting');
          setTimeout(stream, 3000);
        } else setStream('closed');
      });
  }

  function handle(block) {
    var type = 'message';
    var data = '';
    block.split('\n').forEach(function (line) {
      if (line.indexOf('event: ') === 0) type = line.slice(7);
      else if (line.indexOf('data: ') === 0) data += line.slice(6);
    });
    if (!data) return;
    var c = JSON.parse(data);
    if (type === 'ended') ended = true;
    render(c);
  }

  document.addEventListener('DOMContentLoaded', function () {
    if (!token || !captureId) {
      problem('No capture token: open this page from the capture link.');
      setStream('closed');
      return;
    }
    $('clear').addEventListener('click', function () {
      command('/clear-field');
    });
    $('charge').addEventListener('click', function () {
      command('/charge');
    });
    $('cancel').addEventListener('click', function () {
      command('/cancel');
    });
    stream();
  });
})();
