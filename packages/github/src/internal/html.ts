/**
 * HTML helpers for the App's pages: escaping (every user-supplied string goes through `esc`),
 * ANSI colours to HTML, the page frame, its stylesheet and the live-log script.
 *
 * @internal
 */
import Convert from "ansi-to-html"

/** Escapes `& < > " '` for text and attribute values. */
export const esc = (s: unknown): string =>
  String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;" })[c]!)

/** The 16 ANSI colours as CSS variables with buildomat's defaults, so the stylesheet can retheme them. */
const ANSI_COLOURS: Record<number, string> = {
  0: "var(--ansi-black,#000)",
  1: "var(--ansi-red,#a00)",
  2: "var(--ansi-green,#0a0)",
  3: "var(--ansi-yellow,#a50)",
  4: "var(--ansi-blue,#00a)",
  5: "var(--ansi-magenta,#a0a)",
  6: "var(--ansi-cyan,#0aa)",
  7: "var(--ansi-white,#aaa)",
  8: "var(--ansi-bright-black,#555)",
  9: "var(--ansi-bright-red,#f55)",
  10: "var(--ansi-bright-green,#5f5)",
  11: "var(--ansi-bright-yellow,#ff5)",
  12: "var(--ansi-bright-blue,#55f)",
  13: "var(--ansi-bright-magenta,#f5f)",
  14: "var(--ansi-bright-cyan,#5ff)",
  15: "var(--ansi-bright-white,#fff)"
}

/**
 * One log line as HTML: escaped, with ANSI colours, bold, italic and underline as spans that are
 * always closed; on any failure of the converter, escaped only.
 */
export const ansiLine = (line: string): string => {
  try {
    return new Convert({ escapeXML: true, colors: ANSI_COLOURS, fg: "inherit", bg: "inherit" }).toHtml(line)
  } catch {
    return esc(line)
  }
}

/** The stylesheet, inline in every page. */
export const STYLE = `
:root { --ansi-yellow:#a60; --ansi-bright-yellow:#b80; --ansi-white:#777; --ansi-bright-white:#333; }
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.5em; }
code, pre, td.num, td.field, td.payload { font-family: ui-monospace, monospace; font-size: 0.9em; }
table { border-collapse: collapse; }
table.list td, table.list th { padding: 0.2em 0.8em; text-align: left; border-bottom: 1px solid #ddd; }
table.log td { padding: 0 0.5em; vertical-align: top; }
td.payload { white-space: pre-wrap; word-break: break-all; }
td.num a { color: #888; text-decoration: none; }
tr.s_stderr td.payload { color: #a33; }
tr.s_task td.payload, tr.s_control td.payload { color: #06c; font-weight: bold; }
tr.s_worker td.payload, tr.s_console td.payload { color: #777; }
tr.s_panic td.payload { color: #fff; background: #a00; }
tr.sep td { height: 0.8em; }
.ok { background: #97f294; } .fail { background: #f29494; } .cancel { background: #dabea6; }
.private { color: #777; font-style: italic; }
#more-button { position: fixed; bottom: 1em; right: 1em; display: none; padding: 0.5em 1em; cursor: pointer; }
`

/** The live-log client: appends rows from the SSE stream, and closes it on "end". */
export const LIVE_JS = `
function basic_live(url) {
  var table = document.getElementById("table_output");
  var more = document.getElementById("more-button");
  var lastTask = table.getAttribute("data-last-task");
  var atBottom = function() {
    var last = table.rows[table.rows.length - 1];
    if (!last) return true;
    var r = last.getBoundingClientRect();
    return r.bottom <= window.innerHeight + 1.5 * r.height;
  };
  window.addEventListener("scroll", function() { if (atBottom()) more.style.display = "none"; });
  more.addEventListener("click", function() {
    var last = table.rows[table.rows.length - 1];
    if (last) last.scrollIntoView();
    more.style.display = "none";
  });
  var es = new EventSource(url);
  es.addEventListener("row", function(ev) {
    var row = JSON.parse(ev.data);
    var follow = atBottom();
    if (lastTask !== null && String(row.task) !== lastTask) {
      var sep = document.createElement("tr");
      sep.className = "sep";
      var td = document.createElement("td");
      td.colSpan = 3;
      sep.appendChild(td);
      table.appendChild(sep);
    }
    lastTask = String(row.task);
    var tr = document.createElement("tr");
    tr.className = row.css_class;
    tr.id = "S" + row.seq;
    tr.innerHTML = row.html;
    table.appendChild(tr);
    if (follow) tr.scrollIntoView(); else more.style.display = "block";
  });
  es.addEventListener("end", function() {
    es.close();
    var note = document.getElementById("live-note");
    if (note) note.textContent = "The job has finished; reload for its outputs.";
  });
}
`

/** A whole page. `title` and `body` must already be safe HTML. */
export const page = (title: string, body: string, script?: string): string =>
  `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${title}</title>
<style>${STYLE}</style>
</head>
<body>
${body}
${script !== undefined ? `<script>${script}</script>` : ""}
</body>
</html>
`
