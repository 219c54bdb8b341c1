// Appended to a copy of a rolling_deploy report by the role tests
// (conftest.render_report): after Chromium laid the page out, write down
// what a reader sees - every lane, bar, marker, failure line and counter
// cell with its box on the screen, its computed colour and its visible text
// (innerText: only what is rendered) - as JSON in a pre element, id report-probe,
// which --dump-dom hands back.  The report itself has no script.
(function () {
  function all(selector, root) {
    return Array.prototype.slice.call((root || document).querySelectorAll(selector));
  }
  function seen(element) {
    var box = element.getBoundingClientRect();
    var style = getComputedStyle(element);
    return {
      data: Object.assign({}, element.dataset),
      classes: Array.prototype.slice.call(element.classList),
      left: box.left, right: box.right, top: box.top, bottom: box.bottom,
      visible: box.width > 0 && box.height > 0 && style.visibility !== "hidden" && style.display !== "none",
      background: style.backgroundColor,
      text: element.innerText
    };
  }
  var probe = {
    title: document.title,
    text: document.body.innerText,
    lanes: all(".lane").map(function (lane) {
      var found = seen(lane);
      found.track = seen(lane.querySelector(".track"));
      found.bars = all(".bar", lane).map(seen);
      found.markers = all(".marker", lane).map(seen);
      found.failures = all(".failure", lane).map(seen);
      var cell = lane.querySelector(".counters");
      found.counters = seen(cell);
      found.counters.values = {};
      all("dd", cell).forEach(function (dd) { found.counters.values[dd.dataset.counter] = dd.innerText; });
      return found;
    })
  };
  var out = document.createElement("pre");
  out.id = "report-probe";
  out.textContent = JSON.stringify(probe);
  document.body.appendChild(out);
})();
