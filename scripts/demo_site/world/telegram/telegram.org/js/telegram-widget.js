/* The fixture world's telegram-widget.js: what the real script does for a post embed, in a few lines of our own.
   Each <script data-telegram-post="<channel>/<id>"> is replaced by an iframe of https://t.me/<channel>/<id>?embed=1
   (data-width, data-userpic, data-dark as the real script reads them); the frame reports its height with a
   postMessage {"event": "resize", "height": h} and the iframe takes it. */
(function () {
  function frameFor(script) {
    var post = script.getAttribute('data-telegram-post');
    if (!post || !/^[A-Za-z0-9_]+\/\d+$/.test(post)) return;
    var query = 'embed=1';
    if (script.getAttribute('data-userpic') === 'false') query += '&userpic=false';
    if (script.getAttribute('data-dark') === '1') query += '&dark=1';
    var iframe = document.createElement('iframe');
    iframe.id = 'telegram-post-' + post.replace(/[^a-z0-9_]/ig, '-');
    iframe.src = 'https://t.me/' + post + '?' + query;
    iframe.width = script.getAttribute('data-width') || '100%';
    iframe.height = '320';
    iframe.setAttribute('frameborder', '0');
    iframe.setAttribute('scrolling', 'no');
    iframe.style.cssText = 'overflow: hidden; color-scheme: light dark; border: none; min-width: 320px;';
    script.parentNode.insertBefore(iframe, script);
  }
  var scripts = document.querySelectorAll('script[data-telegram-post]');
  for (var i = 0; i < scripts.length; i++) frameFor(scripts[i]);
  window.addEventListener('message', function (event) {
    var data;
    try { data = JSON.parse(event.data); } catch (e) { return; }
    if (!data || data.event !== 'resize') return;
    var frames = document.querySelectorAll('iframe[id^="telegram-post-"]');
    for (var j = 0; j < frames.length; j++) {
      if (frames[j].contentWindow === event.source) frames[j].style.height = data.height + 'px';
    }
  });
})();
