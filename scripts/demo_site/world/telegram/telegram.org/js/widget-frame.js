/* The fixture world's widget-frame.js: the post frame tells its parent how tall it is. */
var TWidgetPost = {
  init: function () {
    function report() {
      var height = document.body.scrollHeight;
      if (window.parent !== window) window.parent.postMessage(JSON.stringify({event: 'resize', height: height}), '*');
    }
    report();
    window.addEventListener('load', report);
  }
};
