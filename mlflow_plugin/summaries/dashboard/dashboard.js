// The run dashboard: hand-written SVG and canvas, no library, no network. It runs inside
// MLflow's artifact viewer (a sandboxed iframe from a blob: URL, no same-origin access),
// so it keeps no state outside the page: no storage, no parent, no fetch.
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("dashboard-data").textContent);
  var tip = document.getElementById("tip");
  var COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

  function esc(text) {
    return String(text).replace(/[&<>"]/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c];
    });
  }
  function fmt(v) {
    if (v === null || v === undefined) return "-";
    if (Number.isInteger(v)) return v.toLocaleString("en-US");
    var a = Math.abs(v);
    return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(3) : String(Number(v.toPrecision(4)));
  }
  function el(tag, attrs, html) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (html !== undefined) node.innerHTML = html;
    return node;
  }
  function showTip(event, text, data) {
    tip.textContent = text;
    tip.hidden = false;
    Object.keys(data || {}).forEach(function (k) { tip.dataset[k] = data[k]; });
    tip.style.left = Math.min(event.clientX + 14, window.innerWidth - 260) + "px";
    tip.style.top = event.clientY + 14 + "px";
  }
  function hideTip() { tip.hidden = true; }
  function scale(d0, d1, r0, r1) {
    var span = d1 - d0 || 1;
    return function (v) { return r0 + ((v - d0) / span) * (r1 - r0); };
  }
  function card(panel, title, note) {
    var c = el("div", { "class": "card" });
    c.appendChild(el("h2", {}, esc(title) + (note ? ' <span class="muted">' + esc(note) + "</span>" : "")));
    panel.appendChild(c);
    return c;
  }
  function slider(parent, count, label, onChange) {
    var box = el("div", { "class": "controls" });
    var input = el("input", { type: "range", min: 0, max: Math.max(0, count - 1), value: Math.max(0, count - 1), step: 1, "aria-label": "step" });
    var text = el("span", { "class": "step-label" });
    box.appendChild(input);
    box.appendChild(text);
    parent.appendChild(box);
    function update() { text.textContent = label(Number(input.value)); onChange(Number(input.value)); }
    input.addEventListener("input", update);
    return { input: input, update: update, box: box };
  }
  function sampled(series, unit) {
    return series.total_steps > series.steps.length
      ? series.steps.length + " of " + series.total_steps + " " + unit + " shown (first, last and an even sample)"
      : series.steps.length + " " + unit;
  }

  // -- tabs -----------------------------------------------------------------------------
  var tabs = [];
  function tab(id, label, has, build) {
    if (has) tabs.push({ id: id, label: label, build: build });
  }
  var H = D.histograms || [];
  tab("histograms", "Histograms", H.length, buildHistograms);
  tab("distributions", "Distributions", H.length, buildDistributions);
  tab("graph", "Graph", D.graph && D.graph.nodes.length, buildGraph);
  tab("pr_curves", "PR curves", (D.pr_curves || []).length, buildPrCurves);
  tab("embeddings", "Projector", (D.embeddings || []).length, buildEmbeddings);
  tab("text", "Text", (D.text || []).length, buildText);
  tab("images", "Images", (D.images || []).length, buildImages);

  document.getElementById("title").textContent = "Run " + (D.run.name || D.run.id) + " · dashboard";
  var nav = document.getElementById("tabs");
  var panels = document.getElementById("panels");
  tabs.forEach(function (t, i) {
    var button = el("button", { role: "tab", id: "tab-" + t.id, "aria-selected": String(i === 0) }, esc(t.label));
    var panel = el("section", { role: "tabpanel", id: "panel-" + t.id });
    panel.hidden = i !== 0;
    button.addEventListener("click", function () { select(t.id); });
    nav.appendChild(button);
    panels.appendChild(panel);
  });
  if (!tabs.length) panels.appendChild(el("p", { "class": "muted" }, "This run has no histograms, graph, PR curves, embeddings, text or step images yet."));
  var built = {};
  function select(id) {
    tabs.forEach(function (t) {
      document.getElementById("tab-" + t.id).setAttribute("aria-selected", String(t.id === id));
      document.getElementById("panel-" + t.id).hidden = t.id !== id;
    });
    if (!built[id]) {
      built[id] = true;
      tabs.filter(function (t) { return t.id === id; })[0].build(document.getElementById("panel-" + id));
    }
  }
  if (tabs.length) select(tabs[0].id);

  // -- histograms -----------------------------------------------------------------------
  function edgesOf(rec) {
    if (rec.edges) return rec.edges;
    var n = rec.counts.length, lo = rec.range[0], hi = rec.range[1], out = [];
    for (var i = 0; i <= n; i++) out.push(lo + ((hi - lo) * i) / n);
    return out;
  }
  function buildHistograms(panel) {
    H.forEach(function (h) {
      var c = card(panel, h.key, sampled(h, "steps"));
      c.dataset.histogram = h.key;
      var steps = h.steps.map(function (rec) { return { rec: rec, edges: edgesOf(rec) }; });
      var lo = Infinity, hi = -Infinity, peak = 0;
      steps.forEach(function (s) {
        lo = Math.min(lo, s.edges[0]);
        hi = Math.max(hi, s.edges[s.edges.length - 1]);
        s.rec.counts.forEach(function (v) { peak = Math.max(peak, v); });
      });
      peak = peak || 1;
      var mode = el("select", { "aria-label": "view" }, '<option value="offset">offset</option><option value="overlay">overlay</option>');
      var chart = el("div", { "class": "chart" });
      var control = slider(c, steps.length, function (i) { return "step " + steps[i].rec.step; }, draw);
      control.box.insertBefore(mode, control.box.firstChild);
      c.appendChild(chart);
      mode.addEventListener("change", function () { draw(Number(control.input.value)); });
      var W = 720, M = { l: 56, r: 16, t: 10, b: 28 };
      function draw(sel) {
        var offset = mode.value === "offset";
        var rowGap = offset ? Math.max(4, Math.min(18, 320 / Math.max(1, steps.length))) : 0;
        var plotH = 160, Hgt = M.t + plotH + rowGap * (steps.length - 1) + M.b;
        var x = scale(lo, hi, M.l, W - M.r);
        var out = ['<svg width="' + W + '" height="' + Hgt + '" role="img">'];
        steps.forEach(function (s, r) {
          var base = M.t + plotH + rowGap * r, pts = [];
          s.rec.counts.forEach(function (v, i) {
            var xm = x((s.edges[i] + s.edges[i + 1]) / 2);
            pts.push(xm.toFixed(1) + "," + (base - (v / peak) * plotH * (offset ? 0.6 : 1)).toFixed(1));
          });
          var shade = steps.length > 1 ? r / (steps.length - 1) : 1;
          var color = r === sel ? "#d84315" : "rgba(" + Math.round(255 - 150 * shade) + "," + Math.round(140 - 80 * shade) + ",60," + (offset ? 0.9 : 0.35) + ")";
          out.push('<polyline class="ridge" data-step="' + s.rec.step + '" fill="none" stroke="' + color + '" stroke-width="' + (r === sel ? 2.2 : 1) + '" points="' + pts.join(" ") + '"/>');
          if (offset && (r % Math.ceil(steps.length / 8) === 0 || r === steps.length - 1)) {
            out.push('<text x="' + (W - M.r + 2) + '" y="' + base + '" text-anchor="end" dy="-2">' + s.rec.step + "</text>");
          }
        });
        // Hover columns: one per bin of the selected step, the full height of the chart.
        var s = steps[sel];
        s.rec.counts.forEach(function (v, i) {
          var x0 = x(s.edges[i]), x1 = x(s.edges[i + 1]);
          out.push('<rect class="bin" data-bin="' + i + '" x="' + x0.toFixed(2) + '" y="' + M.t + '" width="' + Math.max(1, x1 - x0).toFixed(2) + '" height="' + (Hgt - M.t - M.b) + '" fill="transparent"/>');
        });
        var axisY = Hgt - M.b;
        out.push('<line x1="' + M.l + '" x2="' + (W - M.r) + '" y1="' + axisY + '" y2="' + axisY + '" stroke="#999"/>');
        [lo, (lo + hi) / 2, hi].forEach(function (v, k) {
          out.push('<text x="' + x(v) + '" y="' + (axisY + 16) + '" text-anchor="' + ["start", "middle", "end"][k] + '">' + fmt(v) + "</text>");
        });
        out.push("</svg>");
        chart.innerHTML = out.join("");
        chart.querySelectorAll("rect.bin").forEach(function (rect) {
          rect.addEventListener("mousemove", function (event) {
            var i = Number(rect.dataset.bin);
            var a = s.edges[i], b = s.edges[i + 1], n = s.rec.counts[i];
            showTip(event, "step " + s.rec.step + "\nbin [" + fmt(a) + ", " + fmt(b) + (i === s.rec.counts.length - 1 ? "]" : ")") + "\ncount " + fmt(n),
              { step: s.rec.step, bin: i, lo: a, hi: b, count: n });
          });
          rect.addEventListener("mouseleave", hideTip);
        });
      }
      control.update();
    });
  }

  // -- distributions --------------------------------------------------------------------
  var BANDS = [["p0", "p100", 0.12], ["p7", "p93", 0.18], ["p16", "p84", 0.25], ["p31", "p69", 0.32]];
  var NAMES = ["p0", "p7", "p16", "p31", "p50", "p69", "p84", "p93", "p100"];
  function buildDistributions(panel) {
    H.forEach(function (h) {
      var c = card(panel, h.key, sampled(h, "steps"));
      c.dataset.distribution = h.key;
      var b = h.bands, n = b.steps.length;
      if (!n) { c.appendChild(el("p", { "class": "muted" }, "no finite values")); return; }
      var W = 720, Hgt = 240, M = { l: 56, r: 16, t: 10, b: 28 };
      var lo = Math.min.apply(null, b.p0), hi = Math.max.apply(null, b.p100);
      var x = scale(b.steps[0], b.steps[n - 1], M.l, W - M.r), y = scale(lo, hi, Hgt - M.b, M.t);
      var out = ['<svg width="' + W + '" height="' + Hgt + '">'];
      BANDS.forEach(function (band) {
        var top = b[band[1]].map(function (v, i) { return x(b.steps[i]).toFixed(1) + "," + y(v).toFixed(1); });
        var bottom = b[band[0]].map(function (v, i) { return x(b.steps[i]).toFixed(1) + "," + y(v).toFixed(1); }).reverse();
        out.push('<polygon class="band" data-band="' + band[0] + "-" + band[1] + '" fill="rgba(216,67,21,' + band[2] + ')" points="' + top.concat(bottom).join(" ") + '"/>');
      });
      out.push('<polyline class="median" fill="none" stroke="#bf360c" stroke-width="1.5" points="' + b.p50.map(function (v, i) { return x(b.steps[i]).toFixed(1) + "," + y(v).toFixed(1); }).join(" ") + '"/>');
      out.push('<text x="4" y="' + (M.t + 10) + '">' + fmt(hi) + '</text><text x="4" y="' + (Hgt - M.b) + '">' + fmt(lo) + "</text>");
      out.push('<text x="' + M.l + '" y="' + (Hgt - 8) + '">step ' + b.steps[0] + '</text><text x="' + (W - M.r) + '" y="' + (Hgt - 8) + '" text-anchor="end">step ' + b.steps[n - 1] + "</text>");
      out.push('<line class="cursor" y1="' + M.t + '" y2="' + (Hgt - M.b) + '" stroke="#555" visibility="hidden"/>');
      out.push('<rect class="hover" x="' + M.l + '" y="' + M.t + '" width="' + (W - M.l - M.r) + '" height="' + (Hgt - M.t - M.b) + '" fill="transparent"/></svg>');
      var chart = el("div", {}, out.join(""));
      c.appendChild(chart);
      var cursor = chart.querySelector(".cursor");
      chart.querySelector(".hover").addEventListener("mousemove", function (event) {
        var box = event.target.getBoundingClientRect(), px = event.clientX - box.left + M.l, best = 0;
        for (var i = 1; i < n; i++) if (Math.abs(x(b.steps[i]) - px) < Math.abs(x(b.steps[best]) - px)) best = i;
        cursor.setAttribute("x1", x(b.steps[best])); cursor.setAttribute("x2", x(b.steps[best]));
        cursor.setAttribute("visibility", "visible");
        showTip(event, "step " + b.steps[best] + "\n" + NAMES.map(function (k) { return k + "  " + fmt(b[k][best]); }).join("\n"), { step: b.steps[best] });
      });
      chart.querySelector(".hover").addEventListener("mouseleave", function () { cursor.setAttribute("visibility", "hidden"); hideTip(); });
    });
  }

  // -- graph ----------------------------------------------------------------------------
  function buildGraph(panel) {
    var G = D.graph, nodes = G.nodes, byIndex = {};
    nodes.forEach(function (n) { byIndex[n.index] = n; });
    var c = card(panel, G.title || "model graph", G.note);
    var bar = el("div", { "class": "controls" });
    var search = el("input", { type: "search", placeholder: "search layers by name", "aria-label": "search" });
    var expandAll = el("button", {}, "expand all"), collapseAll = el("button", {}, "collapse all");
    var chips = el("span", { "class": "chips" });
    [search, expandAll, collapseAll, chips].forEach(function (x) { bar.appendChild(x); });
    c.appendChild(bar);
    var wrap = el("div", { "class": "graph-wrap" });
    c.appendChild(wrap);
    // Keyed by module path: no prototype, so a module named "constructor" is a path too.
    var groups = Object.create(null);
    nodes.forEach(function (n) {
      var parts = n.group ? n.group.split(".") : [];
      for (var k = 1; k <= parts.length; k++) groups[parts.slice(0, k).join(".")] = true;
    });
    var expanded = Object.create(null), matches = {};
    function unitOf(n) {
      var parts = n.group ? n.group.split(".") : [];
      for (var k = 1; k <= parts.length; k++) {
        var p = parts.slice(0, k).join(".");
        if (!expanded[p]) return "g:" + p;
      }
      return "n:" + n.index;
    }
    search.addEventListener("input", function () {
      var q = search.value.trim().toLowerCase();
      matches = {};
      if (q) nodes.forEach(function (n) {
        if (n.name.toLowerCase().indexOf(q) >= 0 || n.op.toLowerCase().indexOf(q) >= 0) {
          matches[n.index] = true;
          var parts = n.group ? n.group.split(".") : [];
          for (var k = 1; k <= parts.length; k++) expanded[parts.slice(0, k).join(".")] = true;
        }
      });
      draw();
    });
    expandAll.addEventListener("click", function () { Object.keys(groups).forEach(function (g) { expanded[g] = true; }); draw(); });
    collapseAll.addEventListener("click", function () { expanded = Object.create(null); draw(); });
    function draw() {
      var units = {}, order = [];
      nodes.forEach(function (n) {
        var id = unitOf(n), u = units[id];
        if (!u) { u = units[id] = { id: id, nodes: [], preds: {}, first: n.index }; order.push(u); }
        u.nodes.push(n);
      });
      var rank = {};
      order.forEach(function (u, i) { rank[u.id] = i; });
      var edges = [];
      nodes.forEach(function (n) {
        var to = unitOf(n);
        n.inputs.forEach(function (i) {
          var from = unitOf(byIndex[i]);
          if (from !== to && rank[from] < rank[to] && !units[to].preds[from]) { units[to].preds[from] = true; edges.push([from, to]); }
        });
      });
      var layer = {}, rows = [];
      order.forEach(function (u) {
        var l = 0;
        Object.keys(u.preds).forEach(function (p) { l = Math.max(l, layer[p] + 1); });
        layer[u.id] = l;
        (rows[l] = rows[l] || []).push(u);
      });
      var BH = 40, GY = 26, GX = 20, pos = {}, width = {};
      function label(u) {
        var n = u.nodes[0];
        if (u.id.charAt(0) === "g") {
          var params = u.nodes.reduce(function (s, m) { return s + (m.params || 0); }, 0);
          return [u.id.slice(2) + " ▸", u.nodes.length + " nodes · " + fmt(params) + " params", params];
        }
        return [n.kind === "module" ? n.name + ": " + n.op : n.op, n.shape + (n.params ? "  (" + fmt(n.params) + " params)" : ""), n.params];
      }
      order.forEach(function (u) { var t = label(u); u.label = t; width[u.id] = Math.max(90, 7 * Math.max(t[0].length, t[1].length) + 16); });
      var canvasW = 0;
      rows.forEach(function (row) {
        row.sort(function (a, b) {
          function bary(u) { var ps = Object.keys(u.preds); return ps.length ? ps.reduce(function (s, p) { return s + pos[p].rank; }, 0) / ps.length : u.first; }
          return bary(a) - bary(b);
        });
        row.forEach(function (u, r) { pos[u.id] = { rank: r }; });
        canvasW = Math.max(canvasW, row.reduce(function (s, u) { return s + width[u.id] + GX; }, 0));
      });
      canvasW += 40;
      rows.forEach(function (row, l) {
        var total = row.reduce(function (s, u) { return s + width[u.id] + GX; }, -GX), x0 = (canvasW - total) / 2;
        row.forEach(function (u) { pos[u.id].x = x0; pos[u.id].y = 16 + l * (BH + GY); x0 += width[u.id] + GX; });
      });
      var canvasH = 32 + rows.length * (BH + GY);
      var out = ['<svg width="' + canvasW + '" height="' + canvasH + '"><defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>'];
      edges.forEach(function (e) {
        var a = pos[e[0]], b = pos[e[1]];
        var sx = a.x + width[e[0]] / 2, sy = a.y + BH, ex = b.x + width[e[1]] / 2, ey = b.y, my = (sy + ey) / 2;
        out.push('<path d="M' + sx + "," + sy + " C" + sx + "," + my + " " + ex + "," + my + " " + ex + "," + ey + '" fill="none" stroke="#777" marker-end="url(#arrow)"/>');
      });
      order.forEach(function (u) {
        var p = pos[u.id], group = u.id.charAt(0) === "g", n = u.nodes[0];
        var hit = u.nodes.some(function (m) { return matches[m.index]; });
        var cls = "node " + (group ? "group" : n.kind) + (hit ? " match" : "");
        var data = group ? ' data-group="' + esc(u.id.slice(2)) + '"' : ' data-node="' + esc(n.name) + '"';
        out.push('<g class="' + cls + '"' + data + ' data-unit="' + esc(u.id) + '"><rect x="' + p.x + '" y="' + p.y + '" width="' + width[u.id] + '" height="' + BH + '"/>' +
          '<text x="' + (p.x + 8) + '" y="' + (p.y + 16) + '" font-weight="bold">' + esc(u.label[0]) + "</text>" +
          '<text x="' + (p.x + 8) + '" y="' + (p.y + 31) + '">' + esc(u.label[1]) + "</text></g>");
      });
      out.push("</svg>");
      wrap.innerHTML = out.join("");
      wrap.querySelectorAll("g.node").forEach(function (g) {
        var u = units[g.dataset.unit];
        g.addEventListener("mousemove", function (event) {
          var last = u.nodes[u.nodes.length - 1];
          var params = u.nodes.reduce(function (s, m) { return s + (m.params || 0); }, 0);
          var head = g.dataset.group ? g.dataset.group + " (" + u.nodes.length + " nodes, click to expand)" : last.name + " (" + last.op + ")";
          showTip(event, head + "\noutput shape " + last.shape + "\nparams " + fmt(params), { name: g.dataset.group || last.name, shape: last.shape, params: params });
        });
        g.addEventListener("mouseleave", hideTip);
        if (g.dataset.group) g.addEventListener("click", function () { hideTip(); expanded[g.dataset.group] = true; draw(); });
      });
      chips.innerHTML = "";
      Object.keys(expanded).sort().forEach(function (p) {
        if (!expanded[p]) return;
        var chip = el("button", { "class": "chip", "data-collapse": p, title: "collapse " + p }, esc(p) + " ▾");
        chip.addEventListener("click", function () {
          Object.keys(expanded).forEach(function (q) { if (q === p || q.indexOf(p + ".") === 0) delete expanded[q]; });
          draw();
        });
        chips.appendChild(chip);
      });
    }
    draw();
  }

  // -- PR curves ------------------------------------------------------------------------
  function buildPrCurves(panel) {
    D.pr_curves.forEach(function (pr) {
      var c = card(panel, pr.tag, sampled(pr, "steps"));
      c.dataset.prCurve = pr.tag;
      var chart = el("div");
      var W = 420, Hgt = 380, M = { l: 44, r: 14, t: 10, b: 36 };
      var x = scale(0, 1, M.l, W - M.r), y = scale(0, 1, Hgt - M.b, M.t);
      function draw(i) {
        var s = pr.steps[i];
        var pts = s.recall.map(function (r, k) { return x(r).toFixed(1) + "," + y(s.precision[k]).toFixed(1); });
        var out = ['<svg width="' + W + '" height="' + Hgt + '">', '<rect x="' + M.l + '" y="' + M.t + '" width="' + (W - M.l - M.r) + '" height="' + (Hgt - M.t - M.b) + '" fill="none" stroke="#ccc"/>'];
        out.push('<polyline class="pr" data-step="' + s.step + '" fill="none" stroke="#ef6c00" stroke-width="2" points="' + pts.join(" ") + '"/>');
        s.recall.forEach(function (r, k) {
          out.push('<circle class="pt" data-k="' + k + '" cx="' + x(r).toFixed(1) + '" cy="' + y(s.precision[k]).toFixed(1) + '" r="3" fill="transparent"/>');
        });
        out.push('<text x="' + (W / 2) + '" y="' + (Hgt - 6) + '" text-anchor="middle">recall</text><text x="4" y="' + (M.t + 10) + '">precision</text>');
        out.push('<text x="' + M.l + '" y="' + (Hgt - M.b + 14) + '">0</text><text x="' + (W - M.r) + '" y="' + (Hgt - M.b + 14) + '" text-anchor="end">1</text></svg>');
        chart.innerHTML = out.join("");
        chart.querySelectorAll("circle.pt").forEach(function (dot) {
          dot.addEventListener("mousemove", function (event) {
            var k = Number(dot.dataset.k);
            showTip(event, "threshold " + fmt(s.thresholds[k]) + "\nprecision " + fmt(s.precision[k]) + "\nrecall " + fmt(s.recall[k]), { step: s.step });
          });
          dot.addEventListener("mouseleave", hideTip);
        });
      }
      var control = slider(c, pr.steps.length, function (i) { return "step " + pr.steps[i].step; }, draw);
      c.appendChild(chart);
      control.update();
    });
  }

  // -- projector ------------------------------------------------------------------------
  function buildEmbeddings(panel) {
    D.embeddings.forEach(function (em) {
      var note = em.points.length + " of " + em.total_points + " points, " + em.dimensions + " dimensions, PCA";
      var c = card(panel, em.tag + " (step " + em.step + ")", note);
      c.dataset.embedding = em.tag;
      var bar = el("div", { "class": "controls" });
      var dims = el("select", { "aria-label": "dimensions" }, '<option value="3">3-D</option><option value="2">2-D</option>');
      bar.appendChild(dims);
      bar.appendChild(el("span", { "class": "muted" }, "drag to rotate (3-D), hover for labels"));
      c.appendChild(bar);
      var size = 480, canvas = el("canvas", { width: size, height: size });
      c.appendChild(canvas);
      var ctx = canvas.getContext("2d"), yaw = 0.6, pitch = 0.4, drag = null, screen = [];
      var labels = em.labels.map(function (row) { return row.join(" · "); });
      var classes = Object.create(null);  // keyed by label: "constructor" is one too
      em.labels.forEach(function (row) { if (!(row[0] in classes)) classes[row[0]] = Object.keys(classes).length; });
      var sprite = null, cols = Math.min(em.total_points, 8), rowsN = Math.ceil(em.total_points / cols);
      if (em.sprite) { sprite = new Image(); sprite.onload = draw; sprite.src = em.sprite; }
      function project(p) {
        var three = dims.value === "3";
        var px = p[0], py = p[1], pz = three ? p[2] : 0;
        if (three) {
          var cx = Math.cos(yaw) * px + Math.sin(yaw) * pz, cz = -Math.sin(yaw) * px + Math.cos(yaw) * pz;
          var cy = Math.cos(pitch) * py - Math.sin(pitch) * cz; cz = Math.sin(pitch) * py + Math.cos(pitch) * cz;
          px = cx; py = cy; pz = cz;
        }
        return [size / 2 + px * size * 0.42, size / 2 - py * size * 0.42, pz];
      }
      function draw() {
        ctx.clearRect(0, 0, size, size);
        screen = em.points.map(function (p, i) { var s = project(p); return { x: s[0], y: s[1], z: s[2], i: i }; });
        screen.slice().sort(function (a, b) { return a.z - b.z; }).forEach(function (s) {
          if (sprite && sprite.complete && sprite.naturalWidth) {
            var tw = sprite.naturalWidth / cols, th = sprite.naturalHeight / rowsN, k = em.index[s.i];
            ctx.drawImage(sprite, (k % cols) * tw, Math.floor(k / cols) * th, tw, th, s.x - 8, s.y - 8, 16, 16);
          } else {
            var cls = em.labels.length ? classes[em.labels[s.i][0]] : 0;
            ctx.fillStyle = COLORS[cls % COLORS.length];
            ctx.beginPath(); ctx.arc(s.x, s.y, 3, 0, 2 * Math.PI); ctx.fill();
          }
        });
        canvas.dataset.drawn = String(screen.length);
      }
      canvas.addEventListener("mousedown", function (e) { drag = [e.clientX, e.clientY]; });
      window.addEventListener("mouseup", function () { drag = null; });
      canvas.addEventListener("mousemove", function (e) {
        if (drag && dims.value === "3") {
          yaw += (e.clientX - drag[0]) * 0.01; pitch += (e.clientY - drag[1]) * 0.01; drag = [e.clientX, e.clientY]; draw(); return;
        }
        var box = canvas.getBoundingClientRect(), mx = e.clientX - box.left, my = e.clientY - box.top, best = null, dist = 64;
        screen.forEach(function (s) { var d = (s.x - mx) * (s.x - mx) + (s.y - my) * (s.y - my); if (d < dist) { dist = d; best = s; } });
        if (best) showTip(e, "point " + em.index[best.i] + (labels.length ? "\n" + labels[best.i] : ""), { point: em.index[best.i] }); else hideTip();
      });
      canvas.addEventListener("mouseleave", hideTip);
      dims.addEventListener("change", draw);
      draw();
    });
  }

  // -- text and step pictures -------------------------------------------------------------
  function buildText(panel) {
    D.text.forEach(function (t) {
      var c = card(panel, t.tag, sampled(t, "steps"));
      t.steps.forEach(function (s) { c.appendChild(el("div", { "class": "muted" }, "step " + s.step)); c.appendChild(el("pre", {}, esc(s.text))); });
    });
  }
  function buildImages(panel) {
    panel.appendChild(el("p", { "class": "muted" }, "Step pictures, by artifact path: open them in the run's Artifacts tab, or step through them in the Model metrics tab."));
    D.images.forEach(function (im) {
      var c = card(panel, im.key, sampled(im, "steps"));
      var rows = im.steps.map(function (s) { return "<tr><td>" + s.step + "</td><td><code>" + esc(s.path) + "</code></td></tr>"; });
      c.appendChild(el("table", {}, "<tr><th>step</th><th>artifact</th></tr>" + rows.join("")));
    });
  }
})();
