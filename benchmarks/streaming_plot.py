"""benchmarks.bench_streaming's output: the plot (latency, memory held and FLOPs per step against stream position)
and the byte counts as the table and the plot print them."""

from __future__ import annotations

from pathlib import Path


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = report["positions"]
    colors = {"rnn_tanh": "tab:blue", "lstm": "tab:orange", "gru": "tab:green", "transformer": "tab:red",
              "tcn": "tab:purple"}
    styles = {"runtime f32": "-", "runtime int8": ":", "torch cell": "--", "torch": "-"}
    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(18, 5.5))
    for m in report["models"].values():
        lw = 2.5 if m["kind"] == "torch" else 1.5
        a1.plot(t, m["latency_us"], styles[m["kind"]], color=colors[m["family"]], lw=lw, label=m["label"])
    a1.set_ylabel(f"per-step latency, us (median of {report['config']['window']} steps x "
                  f"{report['config']['reps']} reps)")
    a1.set_title("latency per step (1 core, batch 1, PyTorch 1 thread)")
    a1.legend(fontsize=7, loc="center left")
    for m in report["models"].values():
        if m["kind"] in ("runtime f32", "torch"):
            last = fmt_bytes(m["state_bytes"][-1])
            a2.plot(t, m["state_bytes"], color=colors[m["family"]], lw=2 if m["family"] != "lstm" else 3,
                    ls="-" if m["family"] != "lstm" else "--",
                    label=m["label"].replace(" f32", " f32 state") + f" ({last} at t={t[-1]:,})")
    a2.set_ylabel("memory held by the stream, bytes (weights excluded)")
    a2.set_title("state / KV cache / ring buffers")
    a2.legend(fontsize=7, loc="upper left")
    for m in report["models"].values():
        if m["kind"] in ("runtime f32", "torch"):
            a3.plot(t, m["flops_per_step"], color=colors[m["family"]], lw=2, label=m["label"].replace(" f32", ""))
    a3.set_ylabel("FLOPs per step (2 per multiply-add)")
    a3.set_title("arithmetic per step")
    a3.legend(fontsize=7, loc="upper left")
    for a in (a1, a2, a3):
        a.set_xscale("log")
        a.set_yscale("log")
        a.set_xlabel("stream position t (steps)")
        a.grid(True, which="both", alpha=0.3)
    params = ", ".join(f"{m['family']} {m['params']:,}" for m in report["models"].values()
                       if m["kind"] in ("runtime f32", "torch"))
    fig.suptitle(f"Streaming one step per call, 16 features in, 8 out; parameters: {params}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def fmt_bytes(b: int) -> str:
    return f"{b / 1e6:.2f} MB" if b >= 1e6 else f"{b / 1e3:.1f} kB" if b >= 1e3 else f"{b} B"
