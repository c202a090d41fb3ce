// A Live panel's chart: dygraphs on a canvas, in the page (a Streamlit v2 component, no iframe).
//
// dygraphs (dashboard/static, served by Streamlit's static serving) is loaded once per page and shared
// by every chart. A chart is created on its first render and only given new data afterwards, so a
// redraw keeps the user's hover and costs one canvas paint. A drag across the chart reports its time
// range to Python (trigger "zoom", [first, last] in ms); a double click asks to unzoom (trigger
// "unzoom"). The data: {x: [ms], series: [{name, color, low, mid, high}], range: [ms, ms] | null,
// height, version?, base?, keep_from?, markers?}; mid is null where a series has no point at that x,
// low and high where there is no band.
//
// "style" (the dashboard file's): a unit written after legend values, decimals, and threshold bands
// painted behind the lines. The unit is escaped here: the legend is HTML.
//
// A message with "base" is an append: its rows go after the rows of version "base", which this chart
// must hold; otherwise it asks Python for a full drawing (trigger "resync") and shows what it has. A
// message with the version the chart holds already brings nothing new.
// Rows before keep_from (a sliding window's start) are dropped. Markers (notifications) are dygraphs
// annotations: their label is a text node and their text the element's title, so both stay inert.

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

function escaped(text) {
  const element = document.createElement("span");
  element.textContent = text;
  return element.innerHTML;
}

function valueFormatter(style) {
  const unit = style && style.unit ? `\u00a0${escaped(style.unit)}` : "";
  const decimals = style && Number.isInteger(style.decimals) ? style.decimals : null;
  return (value) => {
    const number = Number(value);
    const text = decimals === null ? Number(number.toPrecision(4)).toLocaleString() : number.toFixed(decimals);
    return text + unit;
  };
}

// Threshold bands: a translucent rectangle per band across the plot, behind the lines.
function underlay(style) {
  const bands = (style && style.bands) || [];
  return (canvas, area, graph) => {
    for (const band of bands) {
      const [bottom, top] = graph.yAxisRange();
      const low = band.low === null ? bottom : Math.max(band.low, bottom);
      const high = band.high === null ? top : Math.min(band.high, top);
      if (high <= low) continue;
      const y1 = graph.toDomYCoord(high);
      const y2 = graph.toDomYCoord(low);
      canvas.save();
      canvas.globalAlpha = 0.12;
      canvas.fillStyle = band.color;
      canvas.fillRect(area.x, y1, area.w, y2 - y1);
      canvas.restore();
    }
  };
}

function options(data, trigger) {
  return {
    underlayCallback: underlay(data.style),
    axes: { y: { valueFormatter: valueFormatter(data.style) } },
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

function appended(table, added) {
  if (!added.length) return table;
  if (!table.length || added[0][0] >= table[table.length - 1][0]) return table.concat(added);
  // A series' new point older than another's newest: merge, keeping the time order dygraphs needs.
  return table.concat(added).sort((a, b) => a[0] - b[0]);
}

function trimmed(table, keepFrom) {
  if (keepFrom === null || keepFrom === undefined) return table;
  let first = 0;
  while (first < table.length && table[first][0] < keepFrom) first++;
  return first ? table.slice(first) : table;
}

// Each marker on the row nearest its time (dygraphs puts an annotation on a point of a series).
function annotations(data, table) {
  const markers = data.markers || [];
  if (!markers.length || !table.length || !data.series.length) return [];
  const series = data.series[0].name;
  const withPoint = table.filter((row) => row[1] !== null);
  if (!withPoint.length) return [];
  return markers.map((marker) => {
    let nearest = withPoint[0][0];
    for (const row of withPoint) {
      if (Math.abs(row[0] - marker.x) < Math.abs(nearest - marker.x)) nearest = row[0];
    }
    return {
      series, x: nearest.getTime ? nearest.getTime() : nearest, shortText: marker.label, text: marker.text,
      cssClass: `pulse-marker pulse-marker-${marker.level}`, tickColor: marker.color, tickHeight: 40,
    };
  });
}

// Marker colours by level (info, warning, error: the protocol's fixed set, safe in a class name).
const MARKER_STYLES = `
.pulse-marker { font-weight: 700; border-radius: 3px; cursor: help; }
.pulse-marker-info { background: #1c83e1 !important; color: #fff !important; }
.pulse-marker-warning { background: #ffa421 !important; color: #000 !important; }
.pulse-marker-error { background: #ff2b2b !important; color: #fff !important; }`;

function addMarkerStyles() {
  if (document.getElementById("pulse-marker-styles")) return;
  const style = document.createElement("style");
  style.id = "pulse-marker-styles";
  style.textContent = MARKER_STYLES;
  document.head.appendChild(style);
}

// Draw what the chart holds now: its rows, options and markers.
function paint(root) {
  const { table, chosen, marked } = root.pending;
  root.pending = null;
  if (root.graph) {
    root.graph.setAnnotations(marked, true); // drawn by the update below: one paint
    root.graph.updateOptions({ file: table, ...chosen });
  } else {
    addMarkerStyles();
    root.graph = new window.Dygraph(root.querySelector(".pulse-plot"), table, chosen);
    if (marked.length) root.graph.setAnnotations(marked);
  }
  root.dataset.painted = String(Number(root.dataset.painted || 0) + 1);
}

// A chart out of view keeps taking its rows but is painted only when it scrolls into view: on a page of
// many charts, most of a redraw's cost (dygraphs reprocesses and repaints every row) was for charts
// nobody could see.
function watchVisibility(root) {
  if (root.visibility) return;
  root.visible = true;
  root.visibility = new IntersectionObserver((entries) => {
    root.visible = entries[entries.length - 1].isIntersecting;
    if (root.visible && root.pending) paint(root);
  });
  root.visibility.observe(root);
}

export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  const root = parentElement.querySelector(".pulse-chart");
  if (!root || !data) return;
  loadDygraph().then(() => {
    let table;
    if (root.graph && data.version !== undefined && data.version === root.version) {
      return; // a redraw with nothing new: this chart has that version
    } else if (data.base === undefined) {
      table = rows(data);
    } else if (root.table && root.version === data.base) {
      table = appended(root.table, rows(data));
    } else {
      setTriggerValue("resync", data.version);
      return;
    }
    table = trimmed(table, data.keep_from);
    root.table = table;
    root.version = data.version;
    root.pending = { table, chosen: options(data, setTriggerValue), marked: annotations(data, table) };
    watchVisibility(root);
    if (!root.graph || root.visible) paint(root);
    root.dataset.points = String(table.length);
    root.dataset.updates = String(Number(root.dataset.updates || 0) + 1);
  });
}
