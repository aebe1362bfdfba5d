// Live pages without inline script (the CSP allows scripts from this origin only). Everything written into
// the page goes through textContent, never innerHTML.
(function () {
  'use strict';
  document.addEventListener('click', function (e) {
    var t = e.target;
    if (t && t.getAttribute && t.getAttribute('data-action') === 'print') window.print();
  });

  // The private result page: poll the request's state; reload when it changes (received, done).
  var live = document.getElementById('live');
  var final = { done: true, not_diagnosed: true };
  if (live && live.getAttribute('data-status-url') && !final[live.getAttribute('data-state')]) {
    var url = live.getAttribute('data-status-url');
    var state = live.getAttribute('data-state');
    var polls = 0;
    var tick = function () {
      if (++polls > 3600) return; // about two hours at most
      fetch(url, { headers: { accept: 'application/json' }, credentials: 'same-origin', cache: 'no-store' })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (s) {
          if (s && s.state && s.state !== state) { window.location.reload(); return; }
          setTimeout(tick, 2000);
        })
        .catch(function () { setTimeout(tick, 5000); });
    };
    setTimeout(tick, 1500);
  }

  // A run's page: update the progress figures in place; reload when the run is no longer running.
  var run = document.getElementById('run-progress');
  if (run && run.getAttribute('data-progress-url') && run.getAttribute('data-state') === 'running') {
    var purl = run.getAttribute('data-progress-url');
    var n = 0;
    var set = function (name, value) {
      var el = run.querySelector('[data-field="' + name + '"]');
      if (el) el.textContent = String(value);
    };
    var poll = function () {
      if (++n > 20000) return;
      fetch(purl, { headers: { accept: 'application/json' }, credentials: 'same-origin', cache: 'no-store' })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (p) {
          if (!p) { setTimeout(poll, 5000); return; }
          set('done', p.done); set('total', p.total); set('percent', p.percent); set('rate', p.rate);
          set('eta', p.eta); set('unknowns', p.unknowns); set('state', p.state);
          var bar = run.querySelector('progress');
          if (bar) { bar.max = p.total || 1; bar.value = p.done; }
          if (p.state !== 'running') { window.location.reload(); return; }
          setTimeout(poll, 1000);
        })
        .catch(function () { setTimeout(poll, 5000); });
    };
    setTimeout(poll, 1000);
  }
})();
