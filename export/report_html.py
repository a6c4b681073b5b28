"""report.html: the parity report as one self-contained page a person can open (no scripts, no files beside it).

It says what report.md says, with the plots embedded as PNG data: URIs (matplotlib, Agg, no pyplot state):

- the verdict, the model, the parity inputs (and how the data were split), the pass rules and the float64 floor;
- the parity table, one row per artifact and way it runs;
- one held-out stream: PyTorch's outputs at every step (had the stream ended there) and each stepped artifact's,
  overlaid, up to MAX_UNITS output units, and below them each artifact's largest |difference| per step;
- the error distribution per precision: the share of all compared values in each log-spaced bin of |artifact -
  PyTorch| (export/parity.py Difference.histogram);
- int8's ranges and saturation (export/saturation.py): a table and a plot of each tensor's calibrated and test
  maximum against the end of its format;
- the files with their sizes, the firmware footprint, warnings and failures.
"""

from __future__ import annotations

import base64
import html
import io

import numpy as np

from rnnedge.export import report

MAX_UNITS = 4  # output units plotted, one panel each
PRECISION_GROUPS = (("float32", ("f32",)), ("int8w", ("int8w",)), ("int8", ("int8",)))
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.8em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.pass { color: #146c2e; font-weight: bold; } .fail { color: #b00020; font-weight: bold; }
.verdict { font-size: 1.2em; padding: 0.5em 0.8em; border-radius: 4px; display: inline-block; }
.verdict.pass { background: #e6f4ea; } .verdict.fail { background: #fde7e9; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #555; }
"""


def render(result: dict, traces: dict | None = None) -> str:
    """The whole page. traces: {"reference": (steps, out) or None, row name: (steps, out)} (export/comparisons.py)
    for the stream plot; None or no reference: the page says why there is no such plot."""
    e = html.escape
    verdict = ("PASS: every artifact meets its precision's pass rule" if result["passed"]
               else f"FAIL: {len(result['failures'])} row(s) fail their rule")
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f"<title>rnnedge export report: {e(result['model'])}</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
        "<h1>rnnedge export report</h1>",
        f'<p class="verdict {"pass" if result["passed"] else "fail"}">{e(verdict)}</p>',
        "<ul>" + "".join(f"<li>{_inline(line)}</li>" for line in report.summary(result)) + "</ul>",
        "<h2>Parity</h2>", _parity_table(result),
    ]
    if result["failures"]:
        parts += ["<h3>Failures</h3>", "<ul>" + "".join(f"<li>{e(f)}</li>" for f in result["failures"]) + "</ul>"]
    parts += ["<h2>One held-out stream</h2>", _stream_section(result, traces or {})]
    parts += ["<h2>Error distribution per precision</h2>", _error_section(result)]
    saturation = result["quantization"].get("int8", {}).get("saturation")
    if saturation:
        parts += ["<h2>int8 ranges and saturation</h2>", _saturation_section(saturation)]
    parts += ["<h2>Files</h2>", _files_section(result)]
    if result.get("warnings"):
        parts += ["<h2>Warnings</h2>", "<ul>" + "".join(f"<li>{e(w)}</li>" for w in result["warnings"]) + "</ul>"]
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def _inline(text: str) -> str:
    """A report.md line as HTML: escaped, `code` spans kept."""
    pieces = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(pieces))


def _cell(value, numeric: bool = False) -> str:
    text = report._number(value) if isinstance(value, float) or value is None else str(value)
    return f'<td class="n">{html.escape(text)}</td>' if numeric else f"<td>{html.escape(text)}</td>"


def _parity_table(result: dict) -> str:
    metric = result["reference"]["metric"]
    head = ["artifact", "bytes", "comparison", "max abs diff", "mean abs diff", "x float64 floor", "flips"]
    head += [metric["name"], "95% interval of the difference"] if metric else []
    rows = ["<table>", "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head + ["result"]) + "</tr>"]
    if metric:
        rows.append("<tr><td>PyTorch model</td><td></td><td>reference: " + html.escape(report.REFERENCE)
                    + "</td><td></td><td></td><td></td><td></td>" + _cell(metric["value"], True) + "<td></td><td></td></tr>")
    for row in result["artifacts"]:
        cells = [_cell(row["file"] or "(PyTorch step)"), _cell(row["bytes"], True), _cell(row["comparison"]),
                 _cell(row["max_abs_diff"], True), _cell(row["mean_abs_diff"], True), _cell(row.get("vs_floor"), True),
                 _cell("" if row.get("flips") is None else f"{row['flips']} / {row['decisions']}", True)]
        if metric:
            interval = row.get("interval")
            cells += [_cell(row["metric"]["value"] if row["metric"] else None, True),
                      _cell("" if interval is None else
                            f"[{report._number(interval[0])}, {report._number(interval[1])}]", True)]
        verdict = ("pass" + (" (warning)" if row.get("warning") else "")) if row["passed"] else "FAIL"
        cells.append(f'<td class="{"pass" if row["passed"] else "fail"}">{verdict}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return "\n".join(rows + ["</table>"])


def _figure(fig, alt: str, caption: str) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _new_figure(width: float, height: float):
    from matplotlib.figure import Figure  # the train extra's; no pyplot: no global state, no display

    return Figure(figsize=(width, height), layout="constrained")


def _stream_section(result: dict, traces: dict) -> str:
    reference = traces.get("reference")
    stepped = [(row["name"], row) for row in result["artifacts"] if row["name"] in traces and row["stepped"]]
    if reference is None or not stepped:
        return ("<p>This model does not stream (a backward direction or a last-step head that needs the whole "
                "sequence), so there are no stepped outputs to plot; the parity table compares whole sequences.</p>")
    units = min(reference.shape[1], MAX_UNITS)
    fig = _new_figure(11, 2.0 * units + 2.4)
    axes = fig.subplots(units + 1, 1, sharex=True, squeeze=False)[:, 0]
    steps = np.arange(reference.shape[0])
    for u in range(units):
        ax = axes[u]
        ax.plot(steps, reference[:, u], color="#888", linewidth=3.0, label="PyTorch forward")
        for (name, _), colour in zip(stepped, COLOURS):
            ax.plot(steps, traces[name][:, u], color=colour, linewidth=0.9, label=name)
        ax.set_ylabel(f"output {u}")
    axes[0].legend(loc="upper right", fontsize=7, ncol=3)
    ax = axes[-1]
    for (name, _), colour in zip(stepped, COLOURS):
        gap = np.abs(traces[name].astype(np.float64) - reference.astype(np.float64)).max(axis=1)
        ax.semilogy(steps, np.maximum(gap, 1e-12), color=colour, linewidth=0.9, label=name)
    ax.set_ylabel("max |diff|")
    ax.set_xlabel("step of the first held-out stream")
    shown = f"the first {units} of {reference.shape[1]} outputs" if reference.shape[1] > units else "every output"
    return _figure(fig, "outputs of one held-out stream, PyTorch and every stepped artifact",
                   f"The first parity stream ({reference.shape[0]} steps), {shown}: PyTorch's output at every "
                   "step (grey, had the stream ended there) and each artifact stepped one call per step; the bottom "
                   "panel is each artifact's largest |difference| from PyTorch at each step (log scale).")


def _error_section(result: dict) -> str:
    fig = _new_figure(11, 3.2)
    axes = fig.subplots(1, len(PRECISION_GROUPS), squeeze=False)[0]
    drawn = 0
    for ax, (title, precisions) in zip(axes, PRECISION_GROUPS):
        rows = [r for r in result["artifacts"] if r["precision"] in precisions and r.get("abs_diff_histogram")]
        for row, colour in zip(rows, COLOURS):
            hist = row["abs_diff_histogram"]
            counts = np.asarray(hist["counts"], np.float64)
            edges = np.asarray(hist["log10_edges"])
            share = counts[1:-1] / max(counts.sum(), 1.0)
            ax.stairs(share, 10.0**edges, color=colour, label=f"{row['file'] or 'PyTorch step'}: "
                      f"{'stream' if row['stepped'] else 'whole sequence'}")
            drawn += 1
        ax.set_xscale("log")
        ax.set_title(title if rows else f"{title}: not exported", fontsize=10)
        ax.set_xlabel("|artifact - PyTorch|")
        if rows:
            ax.legend(fontsize=6)
    axes[0].set_ylabel("share of compared values")
    if not drawn:
        return "<p>No row compared any value (every row failed to run).</p>"
    return _figure(fig, "error distribution per precision",
                   "Share of every compared output value in each bin of |artifact - PyTorch| (4 bins a decade; "
                   "exact matches and differences below 1e-12 are not drawn).")


def _saturation_section(rows: list[dict]) -> str:
    head = ["layer", "tensor", "int8 format", "holds |x| up to", "calibrated max", "test max", "test values saturated"]
    table = ["<table>", "<tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for row in rows:
        saturated = f"{100 * row['saturated']:.3g}%"
        if row["saturated"] and row["harmless"]:
            saturated += f" (harmless: {row['harmless']})"
        css = ' class="fail"' if row["saturated"] and not row["harmless"] else ""
        table.append("<tr>" + "".join(_cell(v) for v in (row["layer"], row["tensor"], row["format"]))
                     + "".join(_cell(row[k], True) for k in ("limit", "calibrated_absmax", "test_absmax"))
                     + f"<td{css}>{html.escape(saturated)}</td></tr>")
    table.append("</table>")
    fig = _new_figure(11, 0.28 * len(rows) + 1.2)
    ax = fig.subplots()
    labels = [f"{r['layer']} {r['tensor']}" for r in rows]
    where = np.arange(len(rows))[::-1]
    calibrated = [max(r["calibrated_absmax"] / r["limit"], 1e-6) for r in rows]
    tested = [max(r["test_absmax"] / r["limit"], 1e-6) for r in rows]
    ax.barh(where + 0.2, calibrated, height=0.4, color="#1f77b4", label="calibrated max / format's end")
    ax.barh(where - 0.2, tested, height=0.4, color="#ff7f0e", label="test max / format's end")
    ax.axvline(1.0, color="#b00020", linewidth=1.0)
    ax.set_xscale("log")
    ax.set_yticks(where, labels, fontsize=7)
    ax.legend(fontsize=7, loc="lower right")
    return "\n".join(table) + _figure(
        fig, "int8 ranges against their formats",
        "Each tensor's largest magnitude on the calibration slice and on the test streams, as a fraction of the "
        "largest its int8 format holds (red line: values past it saturate).")


def _files_section(result: dict) -> str:
    table = ["<table>", "<tr><th>file</th><th>bytes</th></tr>"]
    for name, size in sorted(result["files"].items()):
        table.append(f"<tr>{_cell(name)}{_cell(size, True)}</tr>")
    table.append("</table>")
    firmware = result.get("firmware")
    if firmware is not None and firmware.get("written") is not False:
        table.append(f"<p>firmware/int8 footprint: {html.escape(report._firmware(firmware))}</p>")
    for precision, reason in (firmware or {}).get("refused", {}).items():
        table.append(f"<p>firmware/{html.escape(precision)}: not written: {html.escape(reason)}</p>")
    return "\n".join(table)
