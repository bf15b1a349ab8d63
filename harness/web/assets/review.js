// The review's only script: sort and filter the table, and add what a running night writes, as text (never markup).
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";

  function sortable(table) {
    table.querySelectorAll("thead th").forEach(function (th, col) {
      th.addEventListener("click", function () {
        var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
        var num = th.dataset.type === "num", up = th.dataset.dir !== "up";
        table.querySelectorAll("thead th").forEach(function (h) { delete h.dataset.dir; });
        th.dataset.dir = up ? "up" : "down";
        rows.sort(function (a, b) {
          var x = a.cells[col], y = b.cells[col];
          x = num ? x.dataset.v : x.textContent; y = num ? y.dataset.v : y.textContent;
          if (num) {
            x = x === "" ? Infinity : Number(x); y = y === "" ? Infinity : Number(y);
            return up ? x - y : y - x;
          }
          return up ? x.localeCompare(y) : y.localeCompare(x);
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  }

  function filtering(table) {
    var text = document.getElementById("filter"), status = document.getElementById("status-filter");
    if (!text || !status) return;
    function apply() {
      var words = text.value.toLowerCase(), want = status.value;
      Array.prototype.forEach.call(table.tBodies[0].rows, function (r) {
        r.hidden = (want && r.className !== want) || (words && r.textContent.toLowerCase().indexOf(words) < 0);
      });
    }
    text.addEventListener("input", apply);
    status.addEventListener("change", apply);
    return apply;
  }

  function cell(tr, text, value) {
    var td = document.createElement("td");
    td.textContent = text;
    if (value !== undefined) td.dataset.v = value === null ? "" : String(value);
    tr.appendChild(td);
    return td;
  }

  function addRow(table, row, link) {
    var tr = document.createElement("tr"), c = row.cells;
    tr.className = row.status;
    tr.dataset.id = String(row.id);
    var first = cell(tr, "", row.id), a = document.createElement("a");
    a.href = link + row.id; a.textContent = String(row.id); first.appendChild(a);
    cell(tr, row.status);
    cell(tr, c.metric, row.metric); cell(tr, c.delta, row.delta); cell(tr, c.vs_baseline, row.vs_baseline);
    cell(tr, row.description).className = "desc";
    cell(tr, row.agent); cell(tr, row.worker || "-");
    cell(tr, c.seconds, row.seconds); cell(tr, c.cost, row.cost_usd);
    var old = table.querySelector('tbody tr[data-id="' + row.id + '"]');
    if (old) old.replaceWith(tr); else table.tBodies[0].appendChild(tr);
  }

  function addPoint(svg, row) {
    var d = svg.dataset, w = +d.width, h = +d.height, L = 78, R = 16, T = 22, B = 34;
    var x = L + (row.id - d.x0) / (d.x1 - d.x0) * (w - L - R);
    x = Math.min(x, w - R);
    var y = T - 8;
    if (row.metric !== null) {
      var v = Math.min(Math.max(row.metric, +d.y0), +d.y1);
      y = T + (d.y1 - v) / (d.y1 - d.y0) * (h - T - B);
    }
    var pt = document.createElementNS(SVG, "circle");
    pt.setAttribute("class", "pt live " + row.status);
    pt.setAttribute("cx", x.toFixed(1)); pt.setAttribute("cy", y.toFixed(1));
    pt.setAttribute("r", row.status === "keep" ? "4.5" : "3");
    pt.dataset.id = String(row.id);
    var title = document.createElementNS(SVG, "title");
    title.textContent = row.id + " " + row.status + " " + row.cells.metric + ": " + row.description;
    pt.appendChild(title);
    svg.querySelector(".points").appendChild(pt);
    var best = svg.querySelector("path.curve.best");
    if (best && row.best !== null) {
      var b = Math.min(Math.max(row.best, +d.y0), +d.y1);
      best.setAttribute("d", best.getAttribute("d") + " H" + x.toFixed(1) + " V" +
        (T + (d.y1 - b) / (d.y1 - d.y0) * (h - T - B)).toFixed(1));
    }
  }

  function live(url, table, refilter) {
    var source = new EventSource(url), svg = document.getElementById("plot");
    var link = document.body.dataset.link;
    source.addEventListener("row", function (e) {
      var row = JSON.parse(e.data);
      addRow(table, row, link);
      if (svg) addPoint(svg, row);
      var count = document.getElementById("count");
      if (count) count.textContent = String(table.tBodies[0].rows.length);
      if (row.best_text) document.getElementById("best").textContent = row.best_text;
      if (refilter) refilter();
    });
    source.addEventListener("tail", function (e) {
      var tail = JSON.parse(e.data);
      var doing = document.getElementById("doing"), pre = document.getElementById("tail");
      if (doing) doing.textContent = tail.doing;
      if (pre) pre.textContent = tail.text;
      var log = document.getElementById("tail-log"), section = document.getElementById("live");
      if (section) section.hidden = false;
      if (log) log.textContent = tail.log;
    });
    source.addEventListener("state", function (e) {
      var state = JSON.parse(e.data), el = document.getElementById("state");
      if (el) { el.textContent = state.state; el.className = "state " + state.state; }
    });
  }

  var table = document.getElementById("experiments");
  var refilter;
  if (table) { sortable(table); refilter = filtering(table); }
  if (table && document.body.dataset.events) live(document.body.dataset.events, table, refilter);
})();
