// wxgate status page: keeps the server-rendered page live.
// Every second: countdowns and relative times, on the server's clock.
// Every 5 s: /admin/status.json, rendered with the same markup as page.rs
// (keep the two in step). Values go into the DOM as text, never as HTML.
'use strict';

(() => {
  const REFRESH_MS = 5000;
  // Server clock minus this browser's, seconds: countdowns agree with the gateway.
  let skew = Number(document.body.dataset.now) - Date.now() / 1000;
  let updates = 0;
  const serverNow = () => Math.floor(Date.now() / 1000 + skew);

  // h('div', {class: 'x', 'data-a': 1}, child, 'text', [children]) → Element.
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined && value !== false) el.setAttribute(name, String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : String(child));
    }
    return el;
  }

  const duration = (secs) => {
    const hrs = Math.floor(secs / 3600), min = Math.floor((secs % 3600) / 60), sec = secs % 60;
    if (hrs > 0) return `${hrs}h ${min}m ${sec}s`;
    if (min > 0) return `${min}m ${sec}s`;
    return `${sec}s`;
  };
  const span = (d) => (d < 3600 ? duration(d) : `${Math.floor(d / 3600)}h ${Math.floor((d % 3600) / 60)}m`);
  const relative = (at, now) => (at === now ? 'now' : at > now ? `in ${span(at - now)}` : `${span(now - at)} ago`);
  const utc = (at) => new Date(at * 1000).toISOString().slice(0, 19).replace('T', ' ') + ' UTC';
  const muted = (text) => h('span', { class: 'muted' }, text);
  const time = (at, now) => (at == null ? muted('—') : h('time', { 'data-at': at, title: utc(at) }, relative(at, now)));
  const badge = (good, yes, no) => h('span', { class: `badge ${good ? 'ok' : 'bad'}` }, good ? yes : no);
  const brand = () => h('span', { class: 'brand' }, h('span', { class: 'logo' }, 'wx'), 'gate');

  function header(s) {
    return h('header', { class: 'top' },
      h('h1', {}, brand(), ' ', muted('status')),
      h('div', { class: 'summary' },
        h('span', { class: 'fact' }, h('span', { class: 'label' }, 'instance'), ' ', h('code', {}, s.instance)),
        h('span', { class: 'fact' }, h('span', { class: 'label' }, 'store'), ' ', s.store.backend, ' ',
          badge(s.store.reachable, 'reachable', 'unreachable')),
        h('span', { class: 'fact', id: 'ready' }, badge(s.ready, 'ready', 'not ready')),
        h('span', { class: 'live', id: 'live', title: utc(s.now) }, 'snapshot')));
  }

  function countdown(c, now) {
    if (c.expires_at == null) return h('span', { class: 'countdown none' }, 'no value');
    const left = Math.max(0, c.expires_at - now);
    return h('span', {
      class: 'countdown', 'data-countdown': c.expires_at, 'data-remaining': left, title: `expires ${utc(c.expires_at)}`,
    }, left === 0 ? 'expired' : duration(left));
  }

  function failure(f) {
    return h('div', { class: 'failure' },
      h('p', {}, h('strong', {}, f.errcode == null ? '' : `errcode ${f.errcode}`), ' ', f.message),
      f.hint ? h('p', { class: 'hint' }, f.hint) : null);
  }

  function credential(c, now) {
    const resultClass = { ok: 'ok', failing: 'bad', rejected: 'bad' }[c.last_result] || 'idle';
    const quota = c.daily_quota == null ? String(c.fetches_today) : [
      `${c.fetches_today} / ${c.daily_quota} `,
      h('meter', {
        min: 0, max: c.daily_quota, low: Math.floor(c.daily_quota / 2), high: Math.floor((c.daily_quota * 9) / 10),
        optimum: 0, value: c.fetches_today,
      })];
    const fact = (label, value) => h('div', {}, h('dt', {}, label), h('dd', {}, value));
    return h('section', { class: 'cred', 'data-kind': c.kind },
      h('div', { class: 'cred-head' }, h('h3', {}, c.kind), h('span', { class: `badge ${resultClass}` }, c.last_result)),
      h('div', { class: 'cred-main' }, countdown(c, now), c.masked == null ? null : h('code', { class: 'masked' }, c.masked)),
      h('dl', { class: 'facts' },
        fact('next refresh', time(c.next_refresh_at, now)),
        fact('fetched', time(c.fetched_at, now)),
        fact('fetches today', quota),
        fact('lease holder', c.lease_holder == null ? muted('—') : h('code', {}, c.lease_holder))),
      c.last_failure ? failure(c.last_failure) : null);
  }

  function pushes(p) {
    const counts = [['rule', p.rule], ['webhook', p.webhook], ['late', p.late], ['no reply', p.no_reply],
      ['webhook failed', p.webhook_failed, true], ['duplicate', p.duplicate], ['rejected', p.rejected, true]];
    return h('section', { class: 'pushes' }, h('h3', {}, 'Pushes'),
      h('dl', { class: 'counts' }, counts.map(([label, n, alarming]) =>
        h('div', { class: alarming && n > 0 ? 'alarm' : null }, h('dt', {}, label), h('dd', {}, n)))));
  }

  function webhook(w, now) {
    if (!w) return h('section', { class: 'webhook' }, h('h3', {}, 'Webhook'), h('p', { class: 'muted' }, 'Not configured.'));
    return h('section', { class: 'webhook' },
      h('h3', {}, 'Webhook ', badge(!(w.last_failure_at != null && (w.last_ok_at == null || w.last_failure_at >= w.last_ok_at)), 'healthy', 'failing')),
      h('p', {}, h('code', {}, w.target)),
      h('p', { class: 'muted' }, `${w.ok} answered · ${w.failed} failed`),
      w.last_error == null ? null : h('div', { class: 'failure' },
        h('p', {}, h('strong', {}, 'last failure'), ' ', w.last_error),
        h('p', { class: 'muted' }, time(w.last_failure_at, now))));
  }

  function app(a, now) {
    return h('article', { class: 'card', 'data-appid': a.appid },
      h('header', { class: 'card-head' }, h('h2', {}, h('code', {}, a.appid)),
        h('span', { class: 'chip' }, a.app_type), h('span', { class: 'chip' }, `${a.token_api} token API`), h('span', { class: 'chip' }, `push: ${a.push_mode}`)),
      h('div', { class: 'creds' }, a.credentials.length === 0
        ? h('p', { class: 'muted' }, 'No credential yet.')
        : a.credentials.map((c) => credential(c, now))),
      h('div', { class: 'sub' }, pushes(a.pushes), webhook(a.webhook, now)));
  }

  function recentErrors(errors, now) {
    const title = h('h2', {}, 'Recent upstream errors');
    if (errors.length === 0) return h('section', { class: 'panel errors' }, title, h('p', { class: 'muted' }, 'None recorded.'));
    const head = ['when', 'app', 'credential', 'errcode', 'message', 'hint'].map((t) => h('th', {}, t));
    const rows = errors.map((f) => h('tr', {},
      h('td', {}, time(f.at, now)), h('td', {}, h('code', {}, f.appid)), h('td', {}, f.kind),
      h('td', {}, f.errcode == null ? '' : f.errcode), h('td', {}, f.message), h('td', {}, f.hint || '')));
    return h('section', { class: 'panel errors' }, title,
      h('table', {}, h('thead', {}, h('tr', {}, head)), h('tbody', {}, rows)));
  }

  function render(s) {
    return [header(s), h('main', {}, h('section', { class: 'apps' }, s.apps.map((a) => app(a, s.now))),
      recentErrors(s.recent_errors, s.now))];
  }

  function tick() {
    const now = serverNow();
    for (const el of document.querySelectorAll('[data-countdown]')) {
      const left = Math.max(0, Number(el.dataset.countdown) - now);
      el.dataset.remaining = String(left);
      el.textContent = left === 0 ? 'expired' : duration(left);
      el.classList.toggle('expired', left === 0);
    }
    for (const el of document.querySelectorAll('time[data-at]')) {
      el.textContent = relative(Number(el.dataset.at), now);
    }
  }

  function setLive(ok, detail) {
    const live = document.getElementById('live');
    if (!live) return;
    live.textContent = ok ? 'live' : 'offline, retrying';
    live.classList.toggle('ok', ok);
    live.classList.toggle('bad', !ok);
    if (detail) live.title = detail;
  }

  async function refresh() {
    try {
      const response = await fetch('/admin/status.json', { cache: 'no-store', headers: { accept: 'application/json' } });
      // The session no longer opens the page (key changed, page closed): show what /admin shows.
      if (response.status === 401 || response.status === 404) return window.location.reload();
      if (!response.ok) throw new Error(`status.json answered ${response.status}`);
      const snapshot = await response.json();
      skew = snapshot.now - Date.now() / 1000;
      document.getElementById('root').replaceChildren(...render(snapshot));
      updates += 1;
      document.body.dataset.updates = String(updates);
      tick();
      setLive(true, `updated ${utc(snapshot.now)}`);
    } catch (error) {
      setLive(false, String(error));
    }
  }

  // The 24 h timelines (outside the live part) are images: fetched again every minute.
  function reloadTimelines() {
    for (const img of document.querySelectorAll('img[data-timeline]')) {
      img.src = `${img.dataset.timeline}?at=${serverNow()}`;
    }
  }

  tick();
  setLive(true);
  setInterval(tick, 1000);
  setInterval(refresh, REFRESH_MS);
  setInterval(reloadTimelines, 60000);
})();
