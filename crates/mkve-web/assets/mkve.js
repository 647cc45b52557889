// mkve-web's own script: htmx settings, the upload's progress, and the
// console (xterm.js over a WebSocket). No inline scripts: the pages' CSP
// allows scripts from this site only.
(function () {
  'use strict';
  // Swap error answers too: they carry the message to show.
  htmx.config.responseHandling = [
    { code: '204', swap: false },
    { code: '[23]..', swap: true },
    { code: '[45]..', swap: true, error: true },
  ];

  // A backup or a bundle just made (views/backups.rs, views/pack.rs) is
  // downloaded at once: the section that says so names the file to fetch.
  document.addEventListener('htmx:afterSwap', function (e) {
    ['backups', 'pack'].forEach(function (name) {
      var el = document.getElementById(name);
      var href = el && el.dataset.download;
      if (href && el.isConnected) {
        delete el.dataset.download;
        window.location.assign(href);
      }
    });
  });

  document.addEventListener('htmx:xhr:progress', function (e) {
    var bar = document.getElementById('upload-progress');
    if (bar && e.detail.lengthComputable && e.detail.total > 0) {
      bar.hidden = false;
      bar.value = Math.round((e.detail.loaded / e.detail.total) * 100);
    }
  });

  // The terminal's text, line by line: for people who copy it, and for
  // the browser test, which reads what the console said.
  window.mkveScreen = function () {
    var t = window.mkveTerm;
    if (!t) return '';
    var b = t.buffer.active, out = [];
    for (var i = 0; i < b.length; i++) {
      var l = b.getLine(i);
      if (l) out.push(l.translateToString(true));
    }
    return out.join('\n');
  };

  function startConsole() {
    var el = document.getElementById('terminal');
    if (!el) return;
    var state = document.getElementById('console-state');
    var term = new Terminal({ cursorBlink: true, scrollback: 2000 });
    term.open(el);
    window.mkveTerm = term;
    var scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
    var ws = new WebSocket(scheme + location.host + el.dataset.ws);
    ws.binaryType = 'arraybuffer';
    var enc = new TextEncoder();
    ws.onopen = function () {
      state.textContent = 'connected';
      term.focus();
      // A getty that printed its prompt before we came prints another.
      ws.send(enc.encode('\r'));
    };
    ws.onmessage = function (e) {
      term.write(typeof e.data === 'string' ? e.data : new Uint8Array(e.data));
    };
    ws.onclose = function () { state.textContent = 'closed'; };
    ws.onerror = function () { state.textContent = 'failed: is the machine running?'; };
    term.onData(function (d) {
      if (ws.readyState === WebSocket.OPEN) ws.send(enc.encode(d));
    });
    window.mkveConsole = ws;
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', startConsole);
  } else {
    startConsole();
  }
})();
