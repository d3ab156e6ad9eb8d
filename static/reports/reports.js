/* Charts of the report pages, drawn with the vendored Chart.js from data the page embeds as JSON. */
(function () {
  "use strict";
  var COLORS = { clicks: "#417690", conversions: "#c27c0e", revenue: "#2e7d32", cost: "#c62828", muted: "#79aec8" };

  function data(id) {
    var element = document.getElementById(id);
    return element ? JSON.parse(element.textContent) : null;
  }

  function draw(id, config) {
    var canvas = document.getElementById(id);
    if (!canvas || typeof Chart === "undefined") return;
    config.options = Object.assign({ animation: false, responsive: true, maintainAspectRatio: true }, config.options || {});
    canvas.chart = new Chart(canvas, config);
    canvas.setAttribute("data-rendered", "1");
  }

  function reportChart() {
    var chart = data("report-chart-data");
    if (!chart) return;
    draw("report-chart", {
      type: "bar",
      data: {
        labels: chart.labels,
        datasets: [
          { label: "Profit", data: chart.profit, yAxisID: "money",
            backgroundColor: chart.profit.map(function (v) { return v < 0 ? COLORS.cost : COLORS.revenue; }) },
          { label: "Clicks", data: chart.clicks, type: "line", yAxisID: "clicks", borderColor: COLORS.clicks,
            backgroundColor: COLORS.clicks }
        ]
      },
      options: { scales: { money: { position: "left", title: { display: true, text: "Profit" } },
                           clicks: { position: "right", grid: { drawOnChartArea: false }, beginAtZero: true,
                                     title: { display: true, text: "Clicks" } } } }
    });
  }

  function dashboard() {
    var charts = data("dashboard-data");
    if (!charts) return;
    var series = charts.series;
    draw("chart-series", {
      type: "bar",
      data: {
        labels: series.labels,
        datasets: [
          { label: "Clicks", data: series.clicks, yAxisID: "count", backgroundColor: COLORS.muted },
          { label: "Conversions", data: series.conversions, yAxisID: "count", backgroundColor: COLORS.conversions },
          { label: "Revenue", data: series.revenue, type: "line", yAxisID: "money", borderColor: COLORS.revenue,
            backgroundColor: COLORS.revenue },
          { label: "Cost", data: series.cost, type: "line", yAxisID: "money", borderColor: COLORS.cost,
            backgroundColor: COLORS.cost }
        ]
      },
      options: { scales: { count: { position: "left", beginAtZero: true },
                           money: { position: "right", beginAtZero: true, grid: { drawOnChartArea: false } } } }
    });
    draw("chart-funnel", {
      type: "bar",
      data: {
        labels: charts.funnel.map(function (s) {
          return s.label + (s.drop_off_pct === null ? "" : " (−" + s.drop_off_pct + " %)");
        }),
        datasets: [{ label: "Visitors", data: charts.funnel.map(function (s) { return s.count; }),
                     backgroundColor: [COLORS.clicks, COLORS.muted, "#2e7d32", COLORS.conversions] }]
      },
      options: { indexAxis: "y", plugins: { legend: { display: false } }, scales: { x: { beginAtZero: true } } }
    });
    draw("chart-ttc", {
      type: "bar",
      data: { labels: charts.ttc.map(function (b) { return b.label; }),
              datasets: [{ label: "Approved conversions", data: charts.ttc.map(function (b) { return b.count; }),
                           backgroundColor: COLORS.conversions }] },
      options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true } } }
    });
    draw("chart-creatives", {
      type: "bar",
      data: { labels: charts.creatives.map(function (c) { return c.creative; }),
              datasets: [{ label: "Revenue", data: charts.creatives.map(function (c) { return c.revenue; }),
                           backgroundColor: COLORS.revenue },
                         { label: "Profit", data: charts.creatives.map(function (c) { return c.profit; }),
                           backgroundColor: COLORS.clicks }] },
      options: { indexAxis: "y", scales: { x: { beginAtZero: true } } }
    });
  }

  function start() { reportChart(); dashboard(); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
})();
