/* xlt: widgets of @jupyter-widgets/html-manager 1.x typeset their labels with the MathJax 2 API
   (MathJax.Hub.Queue) when no typesetter is configured; Sphinx loads MathJax 3, which has no Hub,
   so on a page with math every label would throw "Cannot read properties of undefined (reading
   'Queue')". Before the widgets render (embed.js also waits for "load"; this listener is added
   first), give MathJax 3 a minimal Hub that forwards to MathJax.typesetPromise. */
window.addEventListener("load", function () {
  var mj = window.MathJax;
  if (mj && !mj.Hub) {
    mj.Hub = {
      Queue: function (job) {
        var element = job && job[2];
        if (element && typeof mj.typesetPromise === "function") {
          mj.typesetPromise([element]).catch(function () {});
        }
      },
    };
  }
});
