// A Live panel's chart: dygraphs on a canvas, in the page (a Streamlit v2 component, no iframe).
//
// dygraphs (dashboard/static, served by Streamlit's static serving) is loaded once per page and shared
// by every chart. A chart is created on its first render and only given new data afterwards, so a
// redraw keeps the user's hover and costs one canvas paint. A drag across the chart reports its time
// range to Python (trigger "zoom", [first, last] in ms); a double click asks to unzoom (trigger
// "unzoom"). The data: {x: [ms], series: [{name, color, low, mid, high}], range: [ms, ms] | null,
// height}; mid is null where a series has no point at that x, low and high where there is no band.

const LIBRARY = "app/static/dygraph.min.js";
const STYLES = "app/static/dygraph.min.css";

function loadDygraph() {
  if (!window.pulseboardDygraph) {
    window.pulseboardDygraph = new Promise((resolve, reject) => {
      const styles = document.createElement("link");
      styles.rel = "stylesheet";
      styles.href = new URL(STYLES, window.location.href).href;
      document.head.appendChild(styles);
      const script = document.createElement("script");
      script.src = new URL(LIBRARY, window.location.href).href;
      script.onload = () => resolve(window.Dygraph);
      script.onerror = () => {
        window.pulseboardDygraph = null;
        reject(new Error(`could not load ${LIBRARY}`));
      };
      document.head.appendChild(script);
    });
  }
  return window.pulseboardDygraph;
}

function rows(data) {
  // dygraphs' "custom bars" rows: [Date, [low, mid, high] or null per series].
  const table = new Array(data.x.length);
  for (let i = 0; i < data.x.length; i++) {
    const row = [new Date(data.x[i])];
    for (const series of data.series) {
      const mid = series.mid[i];
      row.push(mid === null ? null : [series.low[i] ?? mid, mid, series.high[i] ?? mid]);
    }
    table[i] = row;
  }
  return table;
}

// The legend as HTML: dygraphs gives each label already escaped (labelHTML), so a series name shows as
// typed. Names sit in spans of their own (.pulse-legend-name), apart from the coloured wrappers.
function legend(data) {
  const items = data.series
    .filter((series) => series.isVisible)
    .map((series) => {
      const value = data.x === undefined ? "" : `: ${series.yHTML ?? ""}`;
      return `<span class="pulse-legend-item" style="color: ${series.color}">${series.dashHTML} ` +
        `<span class="pulse-legend-name">${series.labelHTML}</span>${value}</span>`;
    });
  return (data.x === undefined ? "" : `${data.xHTML} `) + items.join(" ");
}

// The x column's label: dygraphs wants labels unique, and a series may be called "time".
const TIME_LABEL = "\u2060time";

function options(data, trigger) {
  return {
    labels: [TIME_LABEL, ...data.series.map((series) => series.name)],
    legendFormatter: legend,
    colors: data.series.map((series) => series.color),
    customBars: true,
    fillAlpha: 0.25,
    connectSeparatedPoints: true,
    labelsUTC: true,
    legend: "always",
    labelsSeparateLines: false,
    strokeWidth: 1.5,
    dateWindow: data.range,
    height: data.height,
    animatedZooms: false,
    zoomCallback: (first, last) => {
      if (first !== null && last !== null && last > first) trigger("zoom", [first, last]);
    },
    interactionModel: {
      ...window.Dygraph.defaultInteractionModel,
      dblclick: () => trigger("unzoom", true),
    },
  };
}

export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  const root = parentElement.querySelector(".pulse-chart");
  if (!root || !data) return;
  loadDygraph().then(() => {
    const table = rows(data);
    if (root.graph) {
      root.graph.updateOptions({ file: table, ...options(data, setTriggerValue) });
    } else {
      root.graph = new window.Dygraph(root.querySelector(".pulse-plot"), table, options(data, setTriggerValue));
    }
    root.dataset.points = String(data.x.length);
  });
}
