// The scorecard page: fetches scorecard.json, fills the tables, draws the charts, and again
// every `?refresh=` seconds (10 by default, 0 to stop). No build step, no dependency but
// Chart.js, shipped beside this file. Tables are built with textContent only: campaign and rule
// names come from outside and never become markup.
"use strict";

(() => {
  const CHANNELS = ["email", "sms", "phone", "chat", "linkedin"];
  const COLORS = {
    email: "#4e79a7",
    sms: "#f28e2b",
    phone: "#59a14f",
    chat: "#b07aa1",
    linkedin: "#17becf",
    deferred: "#edc948",
    blocked: "#e15759",
  };
  const params = new URLSearchParams(window.location.search);
  const refreshParam = Number(params.get("refresh") ?? "10");
  const refreshS = Number.isFinite(refreshParam) && refreshParam >= 0 ? refreshParam : 10;
  const charts = {};
  const HELD_BARS = 10;

  const count = (n) => Number(n).toLocaleString("en-US");
  const rate = (x) => (x === null || x === undefined ? "—" : `${(x * 100).toFixed(1)}%`);
  const decimal = (x) => (x === null || x === undefined ? "—" : Number(x).toFixed(2));

  function el(tag, text, attrs) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = text;
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    return node;
  }

  // A value cell: the shown text plus `data-cell`, the value's path in scorecard.json.
  function cell(path, text) {
    return el("span", text, { "data-cell": path });
  }

  function fillTable(id, header, rows, emptyText) {
    const table = document.getElementById(id);
    const head = el("thead");
    const tr = el("tr");
    for (const name of header) tr.appendChild(el("th", name));
    head.appendChild(tr);
    const body = el("tbody");
    for (const row of rows) body.appendChild(row);
    if (rows.length === 0) {
      const empty = el("tr");
      empty.appendChild(el("td", emptyText, { colspan: String(header.length), class: "none" }));
      body.appendChild(empty);
    }
    table.replaceChildren(head, body);
  }

  function row(label, cells, className) {
    const tr = el("tr", undefined, className ? { class: className } : {});
    tr.appendChild(el("td", label));
    for (const parts of cells) {
      const td = el("td");
      for (const part of parts) td.appendChild(part);
      tr.appendChild(td);
    }
    return tr;
  }

  function channelRows(card) {
    const entries = CHANNELS.filter((c) => c in card.channels).map((c) => [c, "channels." + c]);
    entries.push(["overall", "overall"]);
    return entries.map(([name, base]) => {
      const r = base === "overall" ? card.overall : card.channels[name];
      const pair = (k, rk) => {
        const small = el("small");
        small.appendChild(cell(`${base}.${rk}`, rate(r[rk])));
        return [cell(`${base}.${k}`, count(r[k])), small];
      };
      return row(
        name,
        [
          [cell(`${base}.touches`, count(r.touches))],
          pair("delivered", "delivery_rate"),
          pair("opened", "open_rate"),
          pair("answered", "answer_rate"),
          pair("replies", "reply_rate"),
          pair("opt_outs", "opt_out_rate"),
          pair("conversions", "conversion_rate"),
          [cell(`${base}.conversion_share`, rate(r.conversion_share))],
        ],
        base === "overall" ? "total" : undefined,
      );
    });
  }

  function overallRows(o) {
    const items = [
      ["touched", "prospects_touched", count],
      ["replied", "prospects_replied", count],
      ["touches before the first reply (mean)", "avg_touches_to_reply", decimal],
      ["complaints per 1,000 touches", "complaints_per_1000_touches", decimal],
      ["reply rate, touched on 2+ channels", "multichannel_reply_rate", rate],
      ["reply rate, touched on 1 channel", "single_channel_reply_rate", rate],
    ];
    return items.map(([label, key, fmt]) => row(label, [[cell(`overall.${key}`, fmt(o[key]))]]));
  }

  function keyedRows(table, entries, keys) {
    return entries.map(([name, r]) =>
      row(
        name,
        keys.map((k) => [
          cell(`${table}.${name}.${k}`, k.endsWith("rate") ? rate(r[k]) : count(r[k])),
        ]),
      ),
    );
  }

  function render(card) {
    fillTable(
      "channels",
      ["channel", "touches", "delivered", "opened", "answered", "replies", "opt-outs",
        "conversions", "share"],
      channelRows(card),
      "",
    );
    fillTable("overall", ["prospects", ""], overallRows(card.overall), "");
    const seqKeys = ["enrolled", "completed", "exited_by_reply", "reply_rate"];
    fillTable(
      "sequences",
      ["sequence", "enrolled", "completed", "exited by reply", "reply rate"],
      keyedRows("sequences", Object.entries(card.sequences), seqKeys),
      "(none)",
    );
    fillTable(
      "campaigns",
      ["campaign", "requested", "sent", "deferred", "blocked"],
      keyedRows("campaigns", Object.entries(card.campaigns), ["requested", "sent", "deferred", "blocked"]),
      "(none)",
    );
    fillTable(
      "held_back",
      ["rule", "deferred", "blocked"],
      keyedRows("held_back", heldBackByTotal(card), ["deferred", "blocked"]),
      "(none)",
    );
    drawCharts(card);
  }

  function heldBackByTotal(card) {
    return Object.entries(card.held_back).sort(
      ([a, x], [b, y]) => y.deferred + y.blocked - (x.deferred + x.blocked) || (a < b ? -1 : 1),
    );
  }

  function draw(id, config) {
    const existing = charts[id];
    if (existing) {
      existing.data.labels = config.data.labels;
      existing.data.datasets = config.data.datasets;
      existing.update("none");
      return;
    }
    charts[id] = new window.Chart(document.getElementById(id), config);
  }

  function options(stacked, horizontal) {
    return {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      indexAxis: horizontal ? "y" : "x",
      scales: {
        x: { stacked, beginAtZero: true, ticks: { precision: 0 } },
        y: { stacked, beginAtZero: true, ticks: { precision: 0 } },
      },
      plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
    };
  }

  function perDay(daily, kind) {
    const days = Object.keys(daily || {}).sort();
    const datasets = CHANNELS.map((c) => ({
      label: c,
      backgroundColor: COLORS[c],
      data: days.map((d) => (daily[d][kind] || {})[c] || 0),
    }));
    return { labels: days, datasets };
  }

  function drawCharts(card) {
    draw("chart-touches", { type: "bar", data: perDay(card.daily, "touches"), options: options(true) });
    draw("chart-replies", { type: "bar", data: perDay(card.daily, "replies"), options: options(true) });
    const conversions = {
      labels: CHANNELS,
      datasets: [{
        label: "conversions",
        backgroundColor: CHANNELS.map((c) => COLORS[c]),
        data: CHANNELS.map((c) => (card.channels[c] ? card.channels[c].conversions : 0)),
      }],
    };
    const conversionOptions = options(false);
    conversionOptions.plugins.legend = { display: false };
    draw("chart-conversions", { type: "bar", data: conversions, options: conversionOptions });
    const held = heldBackByTotal(card);
    if (held.length > HELD_BARS) {
      // The chart shows the rules that hold back most; the table below lists every rule.
      const rest = held.splice(HELD_BARS - 1);
      const other = { deferred: 0, blocked: 0 };
      for (const [, r] of rest) {
        other.deferred += r.deferred;
        other.blocked += r.blocked;
      }
      held.push([`other (${rest.length} rules)`, other]);
    }
    const heldData = {
      labels: held.map(([rule]) => rule),
      datasets: ["deferred", "blocked"].map((v) => ({
        label: v,
        backgroundColor: COLORS[v],
        data: held.map(([, r]) => r[v]),
      })),
    };
    draw("chart-held", { type: "bar", data: heldData, options: options(true, true) });
  }

  async function load() {
    const status = document.getElementById("status");
    try {
      const reply = await fetch("scorecard.json", { cache: "no-store", credentials: "same-origin" });
      const body = await reply.json();
      if (!reply.ok) throw new Error(body.error || `HTTP ${reply.status}`);
      render(body);
      document.body.dataset.state = "ready";
      document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes) + 1);
      const parts = body.as_of ? [`as of ${body.as_of}`] : [];
      parts.push(`refreshed ${new Date().toLocaleTimeString()}`);
      status.textContent = parts.join(" · ");
    } catch (err) {
      document.body.dataset.state = "error";
      status.textContent = String(err.message || err);
    }
    if (refreshS > 0) window.setTimeout(load, refreshS * 1000);
  }

  load();
})();
