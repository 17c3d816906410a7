// The fixture instance's embed.js, as Mastodon's does it (4.3 and later): each blockquote.mastodon-embed with a
// data-embed-url on this instance becomes an iframe of that /embed page, and iframes of the older markup
// (iframe.mastodon-embed) are sized to their content when the embed page reports its height.
(function () {
  'use strict';
  var origin = new URL(document.currentScript ? document.currentScript.src : location.href).origin;
  function frame(url) {
    var iframe = document.createElement('iframe');
    iframe.src = url;
    iframe.className = 'mastodon-embed';
    iframe.style.border = '0';
    iframe.style.maxWidth = '100%';
    iframe.width = '400';
    iframe.height = '420';
    iframe.setAttribute('allowfullscreen', 'allowfullscreen');
    return iframe;
  }
  function start() {
    document.querySelectorAll('blockquote.mastodon-embed[data-embed-url]').forEach(function (quote) {
      var url = quote.getAttribute('data-embed-url');
      try {
        if (new URL(url).origin !== origin) return;  // only this instance's statuses
      } catch (e) { return; }
      quote.replaceWith(frame(url));
    });
    window.addEventListener('message', function (e) {
      var data = e.data || {};
      if (e.origin !== origin || data.type !== 'setHeight') return;
      document.querySelectorAll('iframe.mastodon-embed').forEach(function (iframe) {
        if (iframe.contentWindow === e.source) iframe.height = String(data.height);
      });
    });
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start); else start();
})();
