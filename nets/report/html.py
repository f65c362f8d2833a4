"""``report.html``: one self-contained page, no server, no run cap.

Click-to-sort tables of every config and every run; each row's curves as inline SVG:
loss, accuracy (or MAE) and, when the schedule adapts the rate, the learning rate
(log scale), as in ``report.png``. Validation is drawn dashed over a solid training
line, so where the two agree both stay visible; a click on a thumbnail opens it
three times larger (Escape or a second click closes it), hovering a panel gives its
range.
"""

from __future__ import annotations

import html
import math
import time
from typing import Iterable, Sequence

import numpy as np

from nets.report.model import (Report, RunRow, band, diagnosis_summary, fmt, fmt_pm,
                               reference_lines, second_metric, status_summary)
from nets.report.plots import LR_COLOR, TRAIN_COLOR, VAL_COLOR
from nets.report.text import header_lines

# tab:blue / tab:orange / tab:green as SVG colours (the PNG's matplotlib names)
SVG_COLORS = {TRAIN_COLOR: "#1f77b4", VAL_COLOR: "#ff7f0e", LR_COLOR: "#2ca02c"}
SVG_W, SVG_W_LR, SVG_H, SVG_GAP = 170, 110, 64, 10   # px of one thumbnail panel
ZOOM = 3                                             # a clicked thumbnail, this many times
LABEL_H = 9                                          # px above a panel for its name


def _envelope(x: np.ndarray, y: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """At most two points (min and max) per pixel column when a curve has more than
    ``2 * width * ZOOM`` points: spikes survive, nothing is averaged away."""
    width *= ZOOM
    if len(x) <= 2 * width:
        return x, y
    span = float(x[-1] - x[0]) or 1.0
    b = np.minimum(((x - x[0]) / span * width).astype(np.int64), width - 1)
    starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
    ends = np.r_[starts[1:], len(b)]
    keep = []
    for s, e in zip(starts, ends):
        seg = y[s:e]
        keep.extend(sorted({s + int(np.argmin(seg)), s + int(np.argmax(seg))}))
    return x[keep], y[keep]


class _Frame:
    """Pixel mapping of one panel: epochs 0..xmax across, lo..hi (or their logs) up."""

    def __init__(self, x0: float, width: float, xmax: float, lo: float, hi: float, log: bool):
        self.x0, self.width, self.xmax, self.log = x0, width, xmax or 1.0, log
        self.lo, self.hi = (math.log10(lo), math.log10(hi)) if log else (lo, hi)

    def points(self, x: np.ndarray, y: np.ndarray) -> str:
        if self.log:
            y = np.log10(y)
        span = (self.hi - self.lo) or 1.0
        px = self.x0 + (x / self.xmax) * self.width
        py = LABEL_H + 2 + (SVG_H - LABEL_H - 4) * (1 - (y - self.lo) / span)
        return " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px.tolist(), py.tolist()))


def _range(clean: list, fixed: tuple | None, log: bool) -> tuple[float, float]:
    vals = [v for _, _, v, _, _ in clean if v.size]
    curve = np.concatenate(vals)
    if fixed:
        return fixed
    if log:   # bands never decide a log scale; the lower edge is the lowest point
        ups = [v + sd for _, _, v, sd, _ in clean if sd is not None and v.size]
        lo, hi = float(curve.min()), float(np.nanmax(np.concatenate([curve] + ups)))
    else:
        allv = np.concatenate(vals + [v + sd for _, _, v, sd, _ in clean if sd is not None]
                              + [v - sd for _, _, v, sd, _ in clean if sd is not None])
        allv = allv[np.isfinite(allv)]
        lo, hi = float(allv.min()), float(allv.max())
    if hi == lo:
        lo, hi = (lo / 2, hi * 2) if log else (lo - 0.5, hi + 0.5)
    return lo, hi


def _svg_panel(series: list, x0: float, width: float, title: str, fixed: tuple | None = None,
               ref: Sequence = (), log: bool | None = None, decade: bool = False) -> str:
    """One panel. ``series``: ``[(color, steps, values, std or None, dashed)]`` (a band
    where std is given). ``log``: None = when the values span more than 100x;
    ``decade``: a log range at least a decade high, so a flat rate reads as a level."""
    parts = [f'<text x="{x0 + 1}" y="{LABEL_H - 1}">{html.escape(title)}</text>',
             f'<rect x="{x0}" y="{LABEL_H}" width="{width}" height="{SVG_H - LABEL_H}" '
             'class="f"/>']
    clean = []
    for color, s, v, sd, dashed in series:
        s, v = np.asarray(s, float), np.asarray(v, float)
        ok = np.isfinite(v) & ((v > 0) if log else True)
        clean.append((color, s[ok], v[ok], None if sd is None else np.asarray(sd, float)[ok],
                      dashed))
    if not any(v.size for _, _, v, _, _ in clean):
        return "".join(parts) + f"<title>{html.escape(title)}: no points</title>"
    xmax = max(float(s.max()) for _, s, v, _, _ in clean if v.size)
    allv = np.concatenate([v for _, _, v, _, _ in clean if v.size])
    if log is None:
        log = not fixed and allv.min() > 0 and allv.max() / allv.min() > 100
    lo, hi = _range(clean, fixed, log)
    shown = (lo, hi) if fixed else (float(allv.min()), float(allv.max()))
    if log and decade:
        pad = max(1.0, math.sqrt(10 * lo / hi)) * 1.3
        lo, hi = lo / pad, hi * pad
    frame = _Frame(x0, width, xmax, lo, hi, log)
    for color, s, v, sd, dashed in clean:
        if not v.size:
            continue
        if sd is not None:
            okb = np.isfinite(sd)
            if okb.sum() > 1:
                up, down = v[okb] + sd[okb], v[okb] - sd[okb]
                if log:
                    down = np.maximum(down, lo)
                up, down = np.clip(up, lo, hi), np.clip(down, lo, hi)
                poly = (frame.points(s[okb], up) + " "
                        + frame.points(s[okb][::-1], down[::-1]))
                parts.append(f'<polygon points="{poly}" fill="{color}" fill-opacity="0.22"/>')
        xs, ys = _envelope(s, v, int(width))
        parts.append(f'<polyline points="{frame.points(xs, ys)}" stroke="{color}"'
                     + (' class="v"' if dashed else "") + "/>")
    for value, dash in ref:
        if value is not None and lo <= value <= hi:
            y = frame.points(np.array([0.0]), np.array([value])).split(",")[1]
            parts.append(f'<line x1="{x0}" x2="{x0 + width}" y1="{y}" y2="{y}" class="{dash}"/>')
    parts.append(f'<text x="{x0 + width - 1}" y="{LABEL_H - 1}" class="r">{fmt(shown[0], 2)} … '
                 f'{fmt(shown[1], 2)}</text>')
    scale = " (log scale)" if log else ""
    parts.append(f"<title>{html.escape(title)}{scale}: {fmt(lo)} … {fmt(hi)}, "
                 f"epochs 0 … {fmt(xmax)}</title>")
    return "".join(parts)


def curves_svg(runs: Sequence[RunRow], bands: bool = False) -> str:
    """Thumbnails of the runs' curves: loss | accuracy or MAE | learning rate (only when
    a run has an ``lr`` curve: the report fetches it for adaptive schedules)."""
    if not any(r.curves for r in runs):
        return "<span class='meta'>no curves</span>"
    second = second_metric(runs)
    panels, x0 = [], 0.0
    for metric in ("loss", second):
        series = []
        for split in ("train", "val"):
            key, color = f"{split}/{metric}", SVG_COLORS[TRAIN_COLOR if split == "train"
                                                         else VAL_COLOR]
            cs = [r.curves[key] for r in runs if key in r.curves]
            if bands and len(cs) > 1:
                s, m, sd, _ = band(cs)
                series.append((color, s, m, sd, split == "val"))
            else:
                series.extend((color, s, v, None, split == "val") for s, v in cs)
        ref = []
        if metric != "loss":
            dashed, dotted = reference_lines(runs, second)
            ref = [(dashed, "d"), (dotted, "o")]
        fixed = (0.0, 1.0) if metric == "accuracy" else None
        panels.append(_svg_panel(series, x0, SVG_W, metric, fixed, ref))
        x0 += SVG_W + SVG_GAP
    rates = [r.curves["lr"] for r in runs if "lr" in r.curves]
    if rates:
        series = [(SVG_COLORS[LR_COLOR], s, v, None, False) for s, v in rates]
        panels.append(_svg_panel(series, x0, SVG_W_LR, "lr", log=True, decade=True))
        x0 += SVG_W_LR + SVG_GAP
    w = x0 - SVG_GAP
    return (f'<svg class="c" width="{w:g}" height="{SVG_H}" viewBox="0 0 {w:g} {SVG_H}">'
            + "".join(f"<g>{p}</g>" for p in panels) + "</svg>")


_CSS = """
body{font:13px/1.4 system-ui,sans-serif;margin:1.2em;color:#222}
h1{font-size:1.3em;margin:0 0 .3em}h2{font-size:1.1em;margin:1.4em 0 .4em}
.meta{color:#555;margin:.15em 0}code{font-size:12px}
table{border-collapse:collapse;font-size:12px}
th,td{padding:2px 7px;border-bottom:1px solid #e4e4e4;text-align:left;vertical-align:middle}
th{position:sticky;top:0;background:#f3f3f3;cursor:pointer;user-select:none;white-space:nowrap;
 z-index:1}
th[data-type=none]{cursor:default}
th[data-dir=asc]::after{content:" ▲"}th[data-dir=desc]::after{content:" ▼"}
td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.bad td{background:#fff0f0}td.err{color:#a00;max-width:28em}
svg.c{cursor:zoom-in;display:block}svg.c:hover .f{stroke:#999}
svg .f{fill:#fcfcfc;stroke:#ccc}
svg polyline{fill:none;stroke-width:1.6;vector-effect:non-scaling-stroke}
svg polyline.v{stroke-width:1.4;stroke-dasharray:4 2}
svg text{font:8px system-ui,sans-serif;fill:#555}svg text.r{text-anchor:end}
svg line{vector-effect:non-scaling-stroke}
svg line.d{stroke:#777;stroke-dasharray:3 2}svg line.o{stroke:#777;stroke-dasharray:1 2}
.key span{display:inline-block;width:14px;height:3px;margin:0 4px 3px 10px}
#q{margin:.3em 0 .6em;padding:3px 6px;width:24em}
#zoom{position:fixed;inset:0;background:rgba(255,255,255,.93);display:none;z-index:9;
 align-items:center;justify-content:center;flex-direction:column;cursor:zoom-out}
#zoom.on{display:flex}#zoom p{margin:0 0 .6em;max-width:90vw}
#zoom svg{max-width:96vw;max-height:80vh;height:auto}
"""

_JS = """
document.querySelectorAll('table.sortable').forEach(function(t){
 t.querySelectorAll('th').forEach(function(th,i){if(th.dataset.type==='none')return;
  th.addEventListener('click',function(){
  var dir=th.dataset.dir==='asc'?'desc':'asc';
  t.querySelectorAll('th').forEach(function(h){delete h.dataset.dir});th.dataset.dir=dir;
  var num=th.dataset.type==='num',b=t.tBodies[0],rows=Array.prototype.slice.call(b.rows);
  function val(r){var c=r.cells[i],v=c.dataset.v!==undefined?c.dataset.v:c.textContent;
   return num?(v===''?NaN:parseFloat(v)):v.toLowerCase();}
  rows.sort(function(a,c){var x=val(a),y=val(c);
   if(num){var xn=isNaN(x),yn=isNaN(y);if(xn||yn)return xn-yn;return dir==='asc'?x-y:y-x;}
   return dir==='asc'?x.localeCompare(y):y.localeCompare(x);});
  rows.forEach(function(r){b.appendChild(r)});});});});
var q=document.getElementById('q');if(q)q.addEventListener('input',function(){
 var s=q.value.toLowerCase();document.querySelectorAll('#runs tbody tr').forEach(function(r){
 r.style.display=r.textContent.toLowerCase().indexOf(s)>=0?'':'none';});});
var z=document.getElementById('zoom');
document.addEventListener('click',function(ev){
 var s=ev.target.closest?ev.target.closest('svg.c'):null;
 if(z.classList.contains('on')){z.classList.remove('on');z.innerHTML='';return;}
 if(!s)return;var c=s.cloneNode(true),f=ZOOM;
 c.setAttribute('width',s.getAttribute('width')*f);
 c.setAttribute('height',s.getAttribute('height')*f);
 var p=document.createElement('p'),row=s.closest('tr');
 p.textContent=row?row.innerText.replace(/\\s+/g,' ').slice(0,300):'';
 z.appendChild(p);z.appendChild(c);z.classList.add('on');});
document.addEventListener('keydown',function(ev){
 if(ev.key==='Escape'){z.classList.remove('on');z.innerHTML='';}});
""".replace("ZOOM", str(ZOOM))


def _is_num(values: Iterable[str]) -> bool:
    seen = False
    for v in values:
        if v == "":
            continue
        try:
            float(v)
        except ValueError:
            return False
        seen = True
    return seen


def _td(text: str, num: bool = False, sort: str | None = None, cls: str = "") -> str:
    attrs = []
    classes = ("n " if num else "") + cls
    if classes.strip():
        attrs.append(f'class="{classes.strip()}"')
    if sort is not None:
        attrs.append(f'data-v="{html.escape(sort)}"')
    return f"<td {' '.join(attrs)}>{html.escape(text)}</td>" if attrs else \
        f"<td>{html.escape(text)}</td>"


def _th(text: str, num: bool | None) -> str:
    kind = "none" if num is None else "num" if num else "str"
    return f'<th data-type="{kind}">{html.escape(text)}</th>'


def _numv(v: float | None) -> str:
    return "" if v is None or not math.isfinite(v) else repr(float(v))


def render_html(report: Report) -> str:
    """The whole page as one string (``write_html`` streams it to a file instead)."""
    return "\n".join(html_lines(report))


def write_html(report: Report, path) -> None:
    """Write the page piece by piece: at 10,000 runs it is ~60 MB, and holding it (and
    its encoded copy) in memory would add that twice to the report's peak."""
    with open(path, "w", encoding="utf-8") as fh:
        for i, line in enumerate(html_lines(report)):
            if i:
                fh.write("\n")
            fh.write(line)


def html_lines(report: Report):
    """The page, one piece at a time (no piece holds more than one table row)."""
    s = report.sweep
    e = html.escape
    yield from ["<!doctype html><html><head><meta charset='utf-8'>",
                f"<title>nets-report: {e(s.name)}</title><style>{_CSS}</style></head><body>",
                f"<h1>{e(s.name)}</h1>"]
    yield from [f'<p class="meta">{e(line)}</p>' for line in header_lines(report)]
    with_lr = any("lr" in r.curves for r in report.runs)
    yield (f'<p class="meta">generated {time.strftime("%Y-%m-%d %H:%M:%S")} by nets-report; '
           "click a column to sort. "
           f'<span class="key"><span style="background:{SVG_COLORS[TRAIN_COLOR]}"></span>train'
           f'<span style="border-top:2px dashed {SVG_COLORS[VAL_COLOR]};height:0"></span>'
           "validation"
           + (f'<span style="background:{SVG_COLORS[LR_COLOR]}"></span>learning rate '
              "(log scale)" if with_lr else "")
           + '<span style="border-top:2px dashed #777;height:0"></span>chance '
           '(baseline MAE)<span style="border-top:2px dotted #777;height:0"></span>majority '
           "class</span>; loss, then accuracy (0…1) or MAE"
           + (", then the learning rate where the schedule adapts it" if with_lr else "")
           + "; each panel says its range; click a plot to enlarge it.</p>")
    keys = report.config_keys
    if report.grouped:
        yield ("<h2>Configs</h2><p class='meta'>runs that differ only by seed, "
               "mean ± sample std (ddof=1) over the runs with a value; the band is "
               "mean ± sample std per epoch.</p>")
        nums = [_is_num(g.runs[0].params.get(k, "") for g in report.groups) for k in keys]
        yield ("<table class='sortable' id='configs'><thead><tr>" + _th("#", True)
               + "".join(_th(k, n) for k, n in zip(keys, nums))
               + _th("n", True) + _th(report.metric, True) + _th("± std", True)
               + _th("epoch", True) + _th(report.final_key, True) + _th("status", False)
               + _th("diagnosis", False) + _th("curves", None) + "</tr></thead><tbody>")
        for g in report.groups:
            first = g.runs[0]
            yield ("<tr>" + _td(str(g.rank), True, str(g.rank))
                   + "".join(_td(first.params.get(k, ""), n) for k, n in zip(keys, nums))
                   + _td(str(g.n), True) + _td(fmt(g.mean), True, _numv(g.mean))
                   + _td(fmt(g.std, 2), True, _numv(g.std))
                   + _td("" if not math.isfinite(g.epoch_mean) else f"{g.epoch_mean:.3g}",
                         True, _numv(g.epoch_mean))
                   + _td(fmt_pm(g.final_mean, g.final_std, g.n), True, _numv(g.final_mean))
                   + _td(status_summary(g.runs)) + _td(diagnosis_summary(g.runs))
                   + f"<td>{curves_svg(g.runs, bands=True)}</td></tr>")
        yield ("</tbody></table>")
    yield (f"<h2>Runs ({len(report.runs)})</h2>"
           "<input id='q' placeholder='show only rows containing…'>")
    vk = report.varying
    nums = [_is_num(r.params.get(k, "") for r in report.runs) for k in vk]
    yield ("<table class='sortable' id='runs'><thead><tr>" + _th("#", True)
           + "".join(_th(k, n) for k, n in zip(vk, nums))
           + _th(report.metric, True) + _th("epoch", True) + _th(report.final_key, True)
           + _th("status", False) + _th("diagnosis", False) + _th("config", True)
           + _th("run", False) + _th("curves", None) + "</tr></thead><tbody>")
    for r in report.runs:
        note = (r.error if r.failed else r.diagnosis)
        yield (("<tr class='bad'>" if r.failed else "<tr>")
               + _td(str(r.rank), True, str(r.rank))
               + "".join(_td(r.params.get(k, ""), n) for k, n in zip(vk, nums))
               + _td(fmt(r.value), True, _numv(r.value))
               + _td("" if r.epoch is None else str(r.epoch), True)
               + _td(fmt(r.final), True, _numv(r.final)) + _td(r.status)
               + _td(note, cls="err" if r.failed else "")
               + _td(str(r.group.rank) if r.group else "", True)
               + f'<td><code title="{e(r.name)}">{e(r.run_id)}</code></td>'
               + f"<td>{curves_svg([r])}</td></tr>")
    yield (f"</tbody></table><div id='zoom'></div><script>{_JS}</script></body></html>")
