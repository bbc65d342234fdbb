// wxgate status page: keeps the server-rendered page live.
// Every second: countdowns and relative times, on the server's clock.
// Every 5 s: /admin/live.html, the page's live part (#root) as the server
// renders it (page.rs is the only renderer), swapped in for the one shown.
'use strict';

(() => {
  const REFRESH_MS = 5000;
  // Server clock minus this browser's, seconds: countdowns agree with the gateway.
  let skew = Number(document.body.dataset.now) - Date.now() / 1000;
  let updates = 0;
  const serverNow = () => Math.floor(Date.now() / 1000 + skew);

  // The formats of page.rs's duration() and relative(), for the ticking between fetches.
  const duration = (secs) => {
    const hrs = Math.floor(secs / 3600), min = Math.floor((secs % 3600) / 60), sec = secs % 60;
    if (hrs > 0) return `${hrs}h ${min}m ${sec}s`;
    if (min > 0) return `${min}m ${sec}s`;
    return `${sec}s`;
  };
  const span = (d) => (d < 3600 ? duration(d) : `${Math.floor(d / 3600)}h ${Math.floor((d % 3600) / 60)}m`);
  const relative = (at, now) => (at === now ? 'now' : at > now ? `in ${span(at - now)}` : `${span(now - at)} ago`);
  const utc = (at) => new Date(at * 1000).toISOString().slice(0, 19).replace('T', ' ') + ' UTC';

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
      const response = await fetch('/admin/live.html', { cache: 'no-store', headers: { accept: 'text/html' } });
      // The session no longer opens the page (key changed, page closed): show what /admin shows.
      if (response.status === 401 || response.status === 404) return window.location.reload();
      if (!response.ok) throw new Error(`live.html answered ${response.status}`);
      // Parsed as an inert document (its markup escaped by the server; no script runs).
      const fresh = new DOMParser().parseFromString(await response.text(), 'text/html').getElementById('root');
      if (!fresh) throw new Error('live.html holds no #root');
      const now = Number(fresh.dataset.now);
      skew = now - Date.now() / 1000;
      document.getElementById('root').replaceWith(document.adoptNode(fresh));
      updates += 1;
      document.body.dataset.updates = String(updates);
      tick();
      setLive(true, `updated ${utc(now)}`);
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
