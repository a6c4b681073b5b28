"""The int8w layer of a float step compiled for one model on AVX512-VNNI (fused_float_source.source, path
"avx512_vnni"): each stream's input and state as two int16 limbs with one scale, their int32 sums on `vpdpwssd`
(fused_float_vnni.py), then b + row scale * (s hi.w + t lo.w) into the cell update. The buffer's parts (words,
limb sums, scales) are fused_float_source's module docstring's."""

from __future__ import annotations

from rnnedge.runtime.fused_float_cells import update
from rnnedge.runtime.fused_float_ext import Extensions
from rnnedge.runtime.fused_float_source import Lines, _blocks, _pairs, gate_rows, over_blocks
from rnnedge.runtime.fused_float_vnni import GROUP, LANES, limb_range
from rnnedge.runtime.fused_float_vnni import STREAM_BLOCKS as VNNI_BLOCKS
from rnnedge.runtime.fused_float_vnni import STREAMS as VNNI_STREAMS
from rnnedge.runtime.layout import (
    L_CELL,
    L_HIDDEN,
    L_N_IN,
    L_OFF_BHH,
    L_OFF_BIH,
    L_OFF_H,
    L_OFF_SHH,
    L_OFF_SIH,
    L_OFF_WHH,
    L_OFF_WIH,
)


def layer_int8w_limbs(out: Lines, row, src: str, stride: int, S: int, sums: int, words: int,
                      ext: Extensions | None = None) -> None:
    """One forward int8w layer for every stream: [x] and [h] as int16 limbs, their int32 sums on VNNI, then
    b + row scale * (s hi.w + t lo.w) into the cell update (fused_float_vnni.py), with ext's extensions
    (fused_float_ext.py) where the layer has them."""
    G, K, H = gate_rows(row), int(row[L_N_IN]), int(row[L_HIDDEN])
    px, ph, n_pad = _pairs(K), _pairs(H), sums // 4
    out(f"# layer: cell {int(row[L_CELL])}, {K} -> {H}",
        "for b in range(B):",
        f"    wd, sc = WD + b * {words}, SC + b * 4")
    _limbs(out, f"{src} + b * {stride}", K, "wd", px, "sc")
    _limbs(out, f"S0 + b * {S} + {int(row[L_OFF_H])}", H, f"wd + {2 * px}", ph, "sc + 2")
    blocks = _blocks(G)
    _dp2_streams(out, row, sums, words, px, ph)  # STREAMS streams per weight load, then the rest (b0..) alone
    for first, count in [(g, GROUP) for g in range(0, blocks - blocks % GROUP, GROUP)] + \
                        [(g, 1) for g in range(blocks - blocks % GROUP, blocks)]:
        out("for b in range(b0, B):",
            f"    a, wd = A + b * {sums} + {first * LANES}, WD + b * {words}",
            f"    dp2_1_{count}(ibuf, a, a + {n_pad}, 0, q, {int(row[L_OFF_WIH]) + first * LANES}, {G}, wd, wd + {px}, "
            f"0, {px})",
            f"    dp2_1_{count}(ibuf, a + {2 * n_pad}, a + {3 * n_pad}, 0, q, {int(row[L_OFF_WHH]) + first * LANES}, "
            f"{G}, wd + {2 * px}, wd + {2 * px + ph}, 0, {ph})")
    out("for b in range(B):",
        f"    a, st, sc = ibuf[A + b * {sums}:], buf[S0 + b * {S}:], SC + b * 4  # views, as in layer_f32",
        "    sx, tx, sh, th = buf[sc], buf[sc + 1], buf[sc + 2], buf[sc + 3]")

    def gx(off: int) -> str:
        return (f"(w[{int(row[L_OFF_BIH]) + off} + j] + w[{int(row[L_OFF_SIH]) + off} + j] * "
                f"(np.float32(a[{off} + j]) * sx + np.float32(a[{n_pad + off} + j]) * tx))")

    def gh(off: int) -> str:
        return (f"(w[{int(row[L_OFF_BHH]) + off} + j] + w[{int(row[L_OFF_SHH]) + off} + j] * "
                f"(np.float32(a[{2 * n_pad + off} + j]) * sh + np.float32(a[{3 * n_pad + off} + j]) * th))")

    update(out, row, gx, gh, ext=ext)


def _dp2_streams(out: Lines, row, sums: int, words: int, px: int, ph: int) -> None:
    """Both parts' limb sums for the first b0 = B - B % STREAMS streams, STREAMS at a time: STREAM_BLOCKS blocks
    of 16 rows per call (then the last block alone), the blocks outer so a block's weights stay in L1 while every
    group of streams reads them. Integer sums: the same numbers in any grouping."""
    G, n_pad = gate_rows(row), sums // 4
    out(f"b0 = B - B % {VNNI_STREAMS}")

    def streams(indent: str, count: int, lane: str) -> None:
        call = f"dp2_{VNNI_STREAMS}_{count}"
        out(f"{indent}for b in range(0, b0, {VNNI_STREAMS}):",
            f"{indent}    a, wd = A + b * {sums} + {lane}, WD + b * {words}",
            f"{indent}    {call}(ibuf, a, a + {n_pad}, {sums}, q, {int(row[L_OFF_WIH])} + {lane}, {G}, wd, wd + {px}, "
            f"{words}, {px})",
            f"{indent}    {call}(ibuf, a + {2 * n_pad}, a + {3 * n_pad}, {sums}, q, {int(row[L_OFF_WHH])} + {lane}, {G}, "
            f"wd + {2 * px}, wd + {2 * px + ph}, {words}, {ph})")

    over_blocks(out, _blocks(G), VNNI_BLOCKS, streams)


def _limbs(out: Lines, v: str, K: int, words: str, pairs: int, scales: str) -> None:
    """One stream's K inputs at buf[v ..] as two int16 limbs (fused_float_vnni.py), two inputs to a word:
    hi words at `words`, lo words after them; the scales s, t at buf[scales], buf[scales + 1]."""
    R = limb_range(K)
    out(f"    vb = {v}",
        "    m_ = ZERO",
        f"    for k in range({K}):",
        "        m_ = max(m_, abs(buf[vb + k]))",
        f"    s_ = m_ / np.float32({R}) if m_ > ZERO else ONE",
        f"    t_ = s_ / np.float32({2 * R - 2})",
        f"    buf[{scales}], buf[{scales} + 1] = s_, t_",
        "    inv_s, inv_t = ONE / s_, ONE / t_",
        f"    vv, hw, lw = buf[vb:], ibuf[{words}:], ibuf[{words} + {pairs}:]  # views: the pairs loop vectorises")
    whole = K // 2  # pairs of two inputs; an odd K's last input pairs with zero limbs
    if whole:
        out(f"    for p in range({whole}):")
        _limb_pair(out, R, "p", "vv[2 * p]", "vv[2 * p + 1]")
    if K % 2:
        _limb_pair(out, R, str(whole), f"vv[{K - 1}]", None)


def _limb_pair(out: Lines, R: int, p: str, v0: str, v1: str | None) -> None:
    """Words p of hw, lw (in _limbs): the hi and lo limbs of inputs v0, v1 (None: no second input, limbs 0)."""
    pad = "        " if p == "p" else "    "
    hi = ["h0"] + (["h1"] if v1 else [])
    out(*[pad + line for line in (
        [f"v0 = {v0}"] + ([f"v1 = {v1}"] if v1 else [])
        + [f"h{i} = min(max(np.floor(v{i} * inv_s + HALF), np.float32(-{R})), np.float32({R}))" for i in range(len(hi))]
        + [f"l{i} = min(max(np.floor((v{i} - h{i} * s_) * inv_t + HALF), np.float32(-{R})), np.float32({R}))"
           for i in range(len(hi))]
        + [f"{w}w[{p}] = np.int32((np.int64({w}0) & 0xFFFF)" + (f" | (np.int64({w}1) << 16))" if v1 else ")")
           for w in ("h", "l")])])
