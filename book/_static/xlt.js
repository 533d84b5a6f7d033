/* xlt: every table of a page scrolls inside its own box (.xlt-table-scroll), which shows a cue
   (xlt.css) while the table is wider than the box. Jupyter Book adds every *.js under book/_static
   to every page. */
(function () {
  "use strict";
  const SCROLLERS = ".xlt-table-scroll, .pst-scrollable-table-container";

  function update(box) {
    const overflows = box.scrollWidth > box.clientWidth + 1;
    box.classList.add("xlt-table-scroll");
    box.classList.toggle("xlt-overflows", overflows);
    box.classList.toggle("xlt-scrolled-to-end",
                         overflows && box.scrollLeft + box.clientWidth >= box.scrollWidth - 1);
    if (overflows) {
      box.setAttribute("tabindex", "0");  // reachable and scrollable from the keyboard
    }
  }

  function wrapTables() {
    const boxes = [];
    for (const table of document.querySelectorAll("article table")) {
      let box = table.parentElement.closest(SCROLLERS);
      if (!box) {
        box = document.createElement("div");
        box.className = "xlt-table-scroll";
        table.parentNode.insertBefore(box, table);
        box.appendChild(table);
      }
      if (!boxes.includes(box)) {
        boxes.push(box);
        box.addEventListener("scroll", () => update(box), {passive: true});
      }
    }
    const all = () => boxes.forEach(update);
    all();
    window.addEventListener("resize", all);
    if (document.fonts && document.fonts.ready) {
      document.fonts.ready.then(all);  // web fonts change the tables' widths
    }
    document.documentElement.dataset.xltTables = "ready";
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", wrapTables);
  } else {
    wrapTables();
  }
})();
