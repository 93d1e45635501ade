/* Our own glue, loaded between require.js and the Jupyter widgets HTML manager
 * (see nb_ipywidgets_js in _config.yml). Not third-party code. */
(function () {
  "use strict";
  // 1. The manager's webpack bundle finds its fonts next to the AMD module
  //    "@jupyter-widgets/html-manager/dist/libembed-amd"; point that at our copy.
  var root = document.documentElement.dataset.content_root || "";
  var here = new URL(root + "_static/lmbook/html-manager", document.baseURI).href;
  window.requirejs.config({ paths: { "@jupyter-widgets/html-manager/dist": here } });

  // 2. The manager typesets widget labels with the MathJax 2 call
  //    MathJax.Hub.Queue(["Typeset", MathJax.Hub, element]); the book runs MathJax 3.
  function hub() {
    return {
      Queue: function (job) {
        var mj = window.MathJax, el = job && job[2];
        if (!mj || !mj.typesetPromise || !mj.startup) return;
        mj.startup.promise
          .then(function () { return mj.typesetPromise(el ? [el] : undefined); })
          .catch(function (err) { console.warn("MathJax typeset of a widget failed", err); });
      }
    };
  }
  function install() {
    if (window.MathJax && !window.MathJax.Hub) window.MathJax.Hub = hub();
  }
  install();  // MathJax 3 replaces window.MathJax when it loads (deferred) ...
  document.addEventListener("DOMContentLoaded", install);  // ... so once more after that.

  // 3. A slider's handle (role="slider") has no accessible name: the widget's description is a
  //    label beside it that names nothing. Give the handle that description as its name.
  function nameSliders() {
    document.querySelectorAll(".widget-slider, .widget-hslider, .widget-vslider").forEach(function (w) {
      var label = w.querySelector(".widget-label");
      var name = label && label.textContent.trim();
      w.querySelectorAll(".noUi-handle[role='slider']").forEach(function (handle) {
        if (name && !handle.hasAttribute("aria-label")) handle.setAttribute("aria-label", name);
      });
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    nameSliders();
    new MutationObserver(nameSliders).observe(document.body, { childList: true, subtree: true });
  });
})();
