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

  // The plot's layout, as the server draws it (harness/web/svg.py): margins, and data to pixels.
  var L = 78, R = 16, T = 22, B = 34;

  function scale(svg) {
    var d = svg.dataset, w = +d.width, h = +d.height, x0 = +d.x0, x1 = +d.x1, y0 = +d.y0, y1 = +d.y1;
    return {
      x: function (v) { return L + (v - x0) / (x1 - x0) * (w - L - R); },
      y: function (v) { v = Math.min(Math.max(v, y0), y1); return T + (y1 - v) / (y1 - y0) * (h - T - B); },
      x0: x0, x1: x1, y0: y0, y1: y1, w: w, h: h
    };
  }

  function shape(el, s) {
    var v = el.dataset.v, x = s.x(+el.dataset.id), y = v === "" ? T - 8 : s.y(+v), f = function (n) { return n.toFixed(1); };
    var kind = el.dataset.shape;
    if (kind === "dot") { el.setAttribute("cx", f(x)); el.setAttribute("cy", f(y)); return; }
    var d = kind === "cross" ? "M" + f(x - 3) + "," + f(y - 3) + " l6,6 m0,-6 l-6,6"
      : kind === "diamond" ? "M" + f(x) + "," + f(y - 5) + " l5,5 l-5,5 l-5,-5 z"
      : "M" + f(x) + "," + f(y - 3.5) + " l3.5,6 h-7 z";
    el.setAttribute("d", d);
  }

  function nice(x) {
    if (!(x > 0)) return 1;
    var p = Math.pow(10, Math.floor(Math.log10(x)));
    return [1, 2, 5, 10].map(function (m) { return m * p; }).filter(function (v) { return v >= x; })[0];
  }

  function svgText(cls, x, y, text) {
    var t = document.createElementNS(SVG, "text");
    t.setAttribute("class", cls); t.setAttribute("x", x.toFixed(1)); t.setAttribute("y", y.toFixed(1));
    t.textContent = text;
    return t;
  }

  // Lay every point, the running best and the ticks out again on a new scale (a live row fell outside the old one).
  function relayout(svg) {
    var s = scale(svg), grid = svg.querySelector(".grid"), pts = svg.querySelectorAll(".pt[data-id]");
    pts.forEach(function (el) { shape(el, s); });
    var steps = Array.prototype.filter.call(pts, function (el) { return el.dataset.b !== undefined && el.dataset.b !== ""; })
      .map(function (el) { return [+el.dataset.id, +el.dataset.b]; }).sort(function (a, b) { return a[0] - b[0]; });
    var best = svg.querySelector("path.curve.best");
    if (best && steps.length) {
      var d = "M" + s.x(steps[0][0]).toFixed(1) + "," + s.y(steps[0][1]).toFixed(1);
      steps.slice(1).forEach(function (p) { d += " H" + s.x(p[0]).toFixed(1) + " V" + s.y(p[1]).toFixed(1); });
      best.setAttribute("d", d);
    }
    var band = svg.querySelector("path.band"), noisy = Array.prototype.filter.call(pts, function (el) {
      return el.dataset.b && el.dataset.n;
    }).map(function (el) { return [+el.dataset.id, +el.dataset.b, +el.dataset.n]; })
      .sort(function (a, b) { return a[0] - b[0]; });
    if (band && noisy.length) {
      var f = function (n) { return n.toFixed(1); }, up = "", low = "";
      noisy.forEach(function (p, k) {
        up += k ? " H" + f(s.x(p[0])) + " V" + f(s.y(p[1] + p[2])) : "M" + f(s.x(p[0])) + "," + f(s.y(p[1] + p[2]));
      });
      noisy.reverse().forEach(function (p, k) {
        low += k ? " V" + f(s.y(p[1] - p[2])) + " H" + f(s.x(p[0])) : " L" + f(s.x(p[0])) + "," + f(s.y(p[1] - p[2]));
      });
      band.setAttribute("d", up + low + " Z");
    }
    while (grid.firstChild) grid.removeChild(grid.firstChild);
    var step = nice((s.y1 - s.y0) / 5);
    for (var v = Math.ceil(s.y0 / step) * step; v <= s.y1; v += step) {
      var line = document.createElementNS(SVG, "line"), y = s.y(v);
      line.setAttribute("x1", s.x(s.x0).toFixed(1)); line.setAttribute("x2", (s.w - R).toFixed(1));
      line.setAttribute("y1", y.toFixed(1)); line.setAttribute("y2", y.toFixed(1));
      grid.appendChild(line);
      grid.appendChild(svgText("ytick", s.x(s.x0) - 6, y + 4, String(+v.toPrecision(6))));
    }
    var xstep = Math.max(1, nice(s.x1 / 8));
    for (var i = 0; i <= s.x1; i += xstep) grid.appendChild(svgText("xtick", s.x(i), s.h - B + 16, String(i)));
  }

  function addPoint(svg, row) {
    var d = svg.dataset, rescale = false;
    if (row.id > +d.x1 - 0.5) { d.x1 = String(row.id * 1.25 + 5); rescale = true; }
    [row.best, row.status === "keep" ? row.metric : null].forEach(function (v) {
      if (v === null || v === undefined) return;
      var pad = (Math.max(+d.y1, v) - Math.min(+d.y0, v)) * 0.06;
      if (v < +d.y0) { d.y0 = String(v - pad); rescale = true; }
      if (v > +d.y1) { d.y1 = String(v + pad); rescale = true; }
    });
    var pt = document.createElementNS(SVG, "circle");
    pt.setAttribute("class", "pt live " + row.status);
    pt.setAttribute("r", row.status === "keep" ? "4.5" : "3");
    pt.dataset.id = String(row.id); pt.dataset.shape = "dot";
    pt.dataset.v = row.metric === null ? "" : String(row.metric);
    pt.dataset.b = row.best === null ? "" : String(row.best);
    pt.dataset.n = row.noise === null || row.noise === undefined ? "" : String(row.noise);
    var title = document.createElementNS(SVG, "title");
    title.textContent = row.id + " " + row.status + " " + row.cells.metric + ": " + row.description;
    pt.appendChild(title);
    var old = svg.querySelector('.pt[data-id="' + row.id + '"]:not(.test)');
    if (old) old.remove();
    svg.querySelector(".points").appendChild(pt);
    if (rescale) { relayout(svg); return; }
    var s = scale(svg);
    shape(pt, s);
    var best = svg.querySelector("path.curve.best");
    if (best && row.best !== null) {
      var x = s.x(row.id).toFixed(1), y = s.y(row.best).toFixed(1), line = best.getAttribute("d");
      best.setAttribute("d", line ? line + " H" + x + " V" + y : "M" + x + "," + y);
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
      var doing = document.getElementById("doing");
      if (doing && state.state !== "running") doing.textContent = "Not running now; the end of the last run's log:";
    });
  }

  var table = document.getElementById("experiments");
  var refilter;
  if (table) { sortable(table); refilter = filtering(table); }
  if (table && document.body.dataset.events) live(document.body.dataset.events, table, refilter);
})();
