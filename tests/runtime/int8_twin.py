"""A plain NumPy twin of the whole `int8` model: slow, obvious, written from the documented formulas.

The contract is the module docstring of runtime/kernels_int8.py (the step of every cell, the input and the
head) and of runtime/int8_math.py (each primitive's rounding). Nothing here calls the runtime's kernels: every
value is an int64 NumPy array (or float32 for the one float step, the input quantisation), and every
saturation is counted in `Int8Twin.counts`, so a test can show that its data reached the limits it claims to
test. The requantised terms of a gate pre-activation (yx, yh, a peephole's yp) are kept whole and their sum
saturated once (docs/int8.md); `counts` also holds how many of them lay beyond int16 ("yx_wide", "yh_wide",
"peephole_wide": the terms an arithmetic that saturated each term first would have clipped). Arrays carry a
leading batch axis: B independent streams advance together, as in `Model.stream(B)`.

The ONNX layer extensions int8 runs (runtime/spec.py; their integers in kernels_int8's docstring) are here too:
clip (each pre-activation clamped to [-Q, Q], Q = round(clip / unit) capped at 32767, unit 2^-12 or rnn_relu's
s_h), input_forget (f = min(32768 - i, 32767)), lstm peepholes (pre = sat16(yx + yh + MBQM(p * c, M, S))),
i and f with the previous c, o with the new one), gru's linear_before_reset false (n from W_hn RDBPOT(r * h, 15)),
reverse (run() only) and initial_state (h0, c0 from the tensors: reset() and every sequence of run() start there).

Also here: `random_int8_tensors`, a random `model.int8.safetensors` payload whose requantisation constants
are "hot" (typical pre-activations a good fraction of int16's range, so sat16 clips often), and
`saturating_dense_inputs`, raw float inputs whose quantisation clamps at +-32767 and hits rint's ties.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from rnnedge.runtime import file_tensors
from rnnedge.runtime import spec as specs

INT16_MIN, INT16_MAX = -(2**15), 2**15 - 1
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INPUT_MAX = 32767  # quantised inputs lie in [-INPUT_MAX, INPUT_MAX]
Q15_ONE = 2**15

# int8_math's TABLE[k] = min(65535, round(65536 * sigmoid(k / 24))), unsigned Q0.16, rebuilt from the formula
SIGMOID_TABLE = np.array([min(65535, math.floor(65536.0 / (1.0 + math.exp(-k / 24.0)) + 0.5)) for k in range(256)],
                         dtype=np.int64)


# -- primitives: int64 arrays in, int64 arrays out ------------------------------------------------------------
def rdbpot(x, e):
    """round(x / 2^e), ties away from zero (RDBPOT): sign(x) * floor((|x| + 2^e / 2) / 2^e)."""
    half = (np.int64(1) << e) >> 1
    return np.sign(x) * ((np.abs(x) + half) >> e)


def srdhm(a, b):
    """floor((a*b + 2^30) / 2^31), INT32_MAX for INT32_MIN * INT32_MIN (SRDHM)."""
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, (a * b + 2**30) >> 31)


def sigmoid_q15(x):
    """Q3.12 -> Q0.15, int8_math's table formula with a = |3x|, index a >> 9, 9 bits of interpolation."""
    a = np.abs(3 * x)
    u = a >> 9
    lo, hi = SIGMOID_TABLE[np.minimum(u, 254)], SIGMOID_TABLE[np.minimum(u, 254) + 1]
    r = np.where(u >= 255, 0x7FFF << 10, lo * 2**9 + (a % 2**9) * (hi - lo))
    return np.where(x >= 0, (r + 2**9) // 2**10, (2**25 - r + 2**9 - 1) // 2**10)


def tanh_q15(x):
    """Q3.12 -> Q0.15, the same table at twice the resolution: index a >> 8, 8 bits of interpolation."""
    a = np.abs(3 * x)
    u = a >> 8
    lo, hi = SIGMOID_TABLE[np.minimum(u, 254)], SIGMOID_TABLE[np.minimum(u, 254) + 1]
    r = np.where(u >= 255, 0xFFFF << 8, lo * 2**8 + (a % 2**8) * (hi - lo))
    return np.where(x >= 0, (r - 2**23 + 2**7) // 2**8, (-r + 2**23 + 2**7 - 1) // 2**8)


def gelu_q12(x):
    """Q3.12 -> Q3.12, int8_math's gelu: x * sigmoid(2u), 2u = 2 sqrt(2/pi) (x + 0.044715 x^3) in Q3.12, saturated."""
    inner = x + (46887 * x**3 + 2**43) // 2**44  # 46887 = round(0.044715 * 2^20)
    two_u = np.minimum(np.maximum((1673285 * inner + 2**19) // 2**20, INT16_MIN), INT16_MAX)  # 2 sqrt(2/pi) 2^20
    return (x * sigmoid_q15(two_u) + 2**14) // 2**15


# the activations tabulated over every int16 input, once: a step then indexes instead of interpolating
ALL_INT16 = np.arange(INT16_MIN, INT16_MAX + 1, dtype=np.int64)
SIGMOID_OF_INT16, TANH_OF_INT16, GELU_OF_INT16 = sigmoid_q15(ALL_INT16), tanh_q15(ALL_INT16), gelu_q12(ALL_INT16)


def sigmoid_lut(x):
    return SIGMOID_OF_INT16[x - INT16_MIN]


def tanh_lut(x):
    return TANH_OF_INT16[x - INT16_MIN]


def gelu_lut(x):
    return GELU_OF_INT16[x - INT16_MIN]


class Int8Twin:
    """The int8 model of `spec` with `tensors` (PyTorch layout, runtime.file_tensors.int8_tensors), for `batch` streams.

    step_quantised(xq (B, I)) -> integer logits (B, O), the state kept per layer (h, and c for an LSTM);
    run(xq (B, T, I)) -> every_step (B, T, O) or last_step (B, O) integer logits of whole sequences (any
    direction). quantize_input / embed make xq from raw inputs; dequantize gives float32 acc * head.scale.
    """

    def __init__(self, spec: dict, tensors: dict[str, np.ndarray], batch: int = 1, terms_saturated: bool = False):
        """terms_saturated: saturate each term of a pre-activation to int16 before the sum, as TFLM does and as
        rnnedge did before docs/int8.md's one-saturation rule: the arithmetic the tests compare against."""
        self.spec = specs.validate(spec)
        self.terms_saturated = terms_saturated
        self.batch = batch
        self.counts = Counter()  # how often each saturation happened (element count), see _sat
        self.last_pre = None  # the last cell_step's gate pre-activations (B, G), once saturated and clipped
        inp = self.spec["input"]
        if inp["kind"] == "dense":
            self.mean = np.asarray(inp["mean"], dtype=np.float32)
            self.std = np.asarray(inp["std"], dtype=np.float32)
            self.input_scale = np.float32(tensors["input.scale"][0])
        else:
            self.embedding = tensors["embedding.weight"].astype(np.int64)
        # layers[l][d]: one layer-direction's integer constants, d = 0 forward, 1 backward. W^T, and the (M, S)
        # of yx and yh side by side, so that one MBQM call requantises [ax | ah] (B, 2G)
        self.layers = []
        for l, layer in enumerate(self.spec["layers"]):
            power = int(tensors[f"layers.{l}.cell_power"][0])
            dirs = []
            for name in ("fwd", "bwd")[: specs.directions(layer)]:
                p = f"layers.{l}.{name}"
                Mx, Mh = tensors[f"{p}.requant"].astype(np.int64)
                Sx, Sh = tensors[f"{p}.shift"].astype(np.int64)
                H = layer["hidden"]
                reset_after = layer.get("linear_before_reset", True)
                b_hh = np.zeros(specs.GATES[layer["cell"]] * H, dtype=np.int64)  # gru's n rows only, else 0
                if layer["cell"] == "gru" and reset_after:
                    b_hh[2 * H :] = tensors[f"{p}.b_hh"]
                zeros = np.zeros(H, dtype=np.int64)
                init = layer.get("initial_state", False)
                dirs.append({"cell": layer["cell"], "H": H, "p": power,
                             "w_ih_t": np.ascontiguousarray(tensors[f"{p}.w_ih"].T, dtype=np.int64),
                             "w_hh_t": np.ascontiguousarray(tensors[f"{p}.w_hh"].T, dtype=np.int64),
                             "b_ih": tensors[f"{p}.b_ih"].astype(np.int64),
                             "b_hh": b_hh,
                             "M": np.concatenate([Mx, Mh]), "S": np.concatenate([Sx, Sh]),
                             "clip": self._clip_q(layer, tensors[f"layers.{l}.scale"]),
                             "input_forget": layer.get("input_forget", False),
                             "peep": (tensors[f"{p}.p"].astype(np.int64).reshape(3, H),
                                      tensors[f"{p}.p_requant"].astype(np.int64),
                                      tensors[f"{p}.p_shift"].astype(np.int64)) if layer.get("peepholes") else None,
                             "reset_before": layer["cell"] == "gru" and not reset_after,
                             "reverse": layer.get("reverse", False),
                             "h0": tensors[f"{p}.h0"].astype(np.int64) if init else zeros,
                             "c0": tensors[f"{p}.c0"].astype(np.int64) if init and layer["cell"] == "lstm"
                             else zeros})
            self.layers.append(dirs)
        # the head's hidden dense layers: W^T (in, U), bias, per-row (M, S), activation
        self.dense = [(np.ascontiguousarray(tensors[f"head.hidden.{k}.weight"].T, dtype=np.int64),
                       tensors[f"head.hidden.{k}.bias"].astype(np.int64),
                       tensors[f"head.hidden.{k}.requant"].astype(np.int64),
                       tensors[f"head.hidden.{k}.shift"].astype(np.int64), layer["activation"])
                      for k, layer in enumerate(specs.head_hidden(self.spec))]
        self.head_w_t = np.ascontiguousarray(tensors["head.weight"].T, dtype=np.int64)
        self.head_b = tensors["head.bias"].astype(np.int64)
        self.head_scale = tensors["head.scale"].astype(np.float32)
        self.reset()

    @staticmethod
    def _clip_q(layer, s_h):
        """The clip as an integer of the pre-activation: round(clip / unit) (halves up), at most 32767; None
        without a clip. unit: Q3.12's 2^-12, or rnn_relu's s_h (the layer's float32 scale)."""
        if layer.get("clip") is None:
            return None
        unit = float(np.float32(s_h[0])) if layer["cell"] == "rnn_relu" else 2.0**-12
        return min(math.floor(layer["clip"] / unit + 0.5), INT16_MAX)

    def clip(self, x, q):
        """x clamped to [-q, q] (q None: unchanged), counted as "clip"."""
        return x if q is None else self._sat(x, -q, q, "clip")

    # -- counted saturations --------------------------------------------------------------------------------
    def _sat(self, x, lo, hi, what):
        clipped = np.minimum(np.maximum(x, lo), hi)
        self.counts[what] += int(np.count_nonzero(clipped != x))
        return clipped

    def sat16(self, x, what):
        return self._sat(x, INT16_MIN, INT16_MAX, what)

    def wide(self, x, what):
        """A term of a pre-activation: x unchanged (terms_saturated: sat16(x)); counts as `what` the terms beyond
        int16, which a saturation before the sum clips."""
        self.counts[what] += int(np.count_nonzero((x < INT16_MIN) | (x > INT16_MAX)))
        return np.minimum(np.maximum(x, INT16_MIN), INT16_MAX) if self.terms_saturated else x

    def mbqm(self, x, M, S):
        """x * m for (M, S): RDBPOT(SRDHM(sat32(x * 2^max(S,0)), M), max(-S,0))."""
        shifted = self._sat(x << np.maximum(S, 0), INT32_MIN, INT32_MAX, "mbqm_left_shift")
        return rdbpot(srdhm(shifted, M), np.maximum(-S, 0))

    def peephole(self, d: dict, k: int, c):
        """Gate k's (0 i, 1 f, 2 o) peephole term of c (B, H): MBQM(p_k * c, M_k, S_k) in Q3.12, not saturated."""
        p, M, S = d["peep"]
        return self.wide(self.mbqm(p[k] * c, M[k], S[k]), "peephole_wide")

    def tanh_of_cell(self, c, p):
        """c in scale 2^p to Q3.12 (e = p + 12: saturating c << e, or RDBPOT(c, -e)), then tanh_q15."""
        e = p + 12
        q312 = self.sat16(c << e, "cell_to_q3.12") if e >= 0 else rdbpot(c, -e)
        return tanh_lut(q312)

    # -- one layer-direction step ---------------------------------------------------------------------------
    def cell_step(self, d: dict, x, h, c):
        """x (B, I), h, c (B, H) int64 -> new (h, c), the step of runtime/kernels_int8.py's docstring.

        Sums are exact in int64; the export's bound (check_int32_sums) keeps them inside int32 as well."""
        H = d["H"]
        G = d["b_ih"].size
        ax = d["b_ih"] + x @ d["w_ih_t"]  # (B, G)
        ah = d["b_hh"] + h @ d["w_hh_t"]
        if d["reset_before"]:
            ah[:, 2 * H :] = 0  # its n rows read r * h, below; 0 here requantises to 0 and saturates nothing
        y = self.mbqm(np.concatenate([ax, ah], axis=1), d["M"], d["S"])  # [yx | yh], int32 values, not saturated
        yx, yh = self.wide(y[:, :G], "yx_wide"), self.wide(y[:, G:], "yh_wide")
        cell, q = d["cell"], d["clip"]
        if cell in ("rnn_tanh", "rnn_relu"):
            pre = self.clip(self.sat16(yx + yh, "pre_activation"), q)
            self.last_pre = pre
            return (np.maximum(pre, 0) if cell == "rnn_relu" else tanh_lut(pre)), c
        if cell == "lstm":
            sums = yx + yh  # i f g o, each saturated once, after its peephole term
            if d["peep"] is not None:  # i and f read the previous c
                sums[:, :H] += self.peephole(d, 0, c)
                sums[:, H : 2 * H] += self.peephole(d, 1, c)
            pre = self.clip(self.sat16(sums[:, : 3 * H], "pre_activation"), q)
            i, f, g = sigmoid_lut(pre[:, :H]), sigmoid_lut(pre[:, H : 2 * H]), tanh_lut(pre[:, 2 * H :])
            if d["input_forget"]:  # f = 1 - i in Q0.15; i = 0 would give 32768, one past int16
                f = np.minimum(Q15_ONE - i, INT16_MAX)
            kept = self.sat16(rdbpot(f * c, 15), "cell_kept")
            added = self.sat16(rdbpot(i * g, 30 + d["p"]), "cell_added")
            c = self.sat16(kept + added, "cell")
            o_sum = sums[:, 3 * H :] + (self.peephole(d, 2, c) if d["peep"] is not None else 0)  # the new c
            o_pre = self.clip(self.sat16(o_sum, "pre_activation"), q)
            self.last_pre = np.concatenate([pre, o_pre], axis=1)
            o = sigmoid_lut(o_pre)
            h = self.sat16(rdbpot(o * self.tanh_of_cell(c, d["p"]), 15), "h")
            return h, c
        rz_pre = self.clip(self.sat16(yx[:, : 2 * H] + yh[:, : 2 * H], "pre_activation"), q)
        rz = sigmoid_lut(rz_pre)
        r, z = rz[:, :H], rz[:, H:]
        if d["reset_before"]:  # ONNX's default: n = tanh(yx_n + requant(W_hn (r * h))), b_hn folded into b_x
            rh = rdbpot(r * h, 15)
            ah_n = rh @ d["w_hh_t"][:, 2 * H :]
            yh_n = self.wide(self.mbqm(ah_n, d["M"][G + 2 * H :], d["S"][G + 2 * H :]), "yh_wide")
            n_pre = self.clip(self.sat16(yx[:, 2 * H :] + yh_n, "pre_activation"), q)
        else:  # PyTorch's linear_before_reset: n = tanh(yx_n + r * yh_n), yh_n not saturated
            n_pre = self.clip(self.sat16(yx[:, 2 * H :] + rdbpot(r * yh[:, 2 * H :], 15), "pre_activation"), q)
        self.last_pre = np.concatenate([rz_pre, n_pre], axis=1)
        n = tanh_lut(n_pre)
        h = self.sat16(rdbpot((Q15_ONE - z) * n + z * h, 15), "h")
        return h, c

    def head(self, feats):
        """feats (..., Hin) -> integer logits acc = b + W v (..., O), v = feats after every hidden dense layer:
        q = sat16(MBQM(b + W v, M, S)) per row, then max(0, q), q, tanh_lut(q), sigmoid_lut(q) or gelu_lut(q)."""
        v = feats
        for w_t, b, M, S, activation in self.dense:
            q = self.sat16(self.mbqm(b + v @ w_t, M, S), f"head_hidden {activation}")
            v = {"relu": lambda q: np.maximum(q, 0), "none": lambda q: q, "tanh": tanh_lut,
                 "sigmoid": sigmoid_lut, "gelu": gelu_lut, "gelu_tanh": gelu_lut}[activation](q)
        return self.head_b + v @ self.head_w_t

    # -- inputs and outputs ---------------------------------------------------------------------------------
    def quantize_input(self, x):
        """Raw dense x (..., F) -> clamp(rint(((x - mean) / std) / s_x), -32767, 32767), in float32 as the runtime."""
        q = ((np.asarray(x, dtype=np.float32) - self.mean) / self.std) / self.input_scale
        assert q.dtype == np.float32
        self.counts["input_tie"] += int(np.count_nonzero(q - np.floor(q) == 0.5))  # rint rounds these to even
        v = np.rint(q)
        return self._sat(v, -INPUT_MAX, INPUT_MAX, "input").astype(np.int64)

    def embed(self, ids):
        """Token ids (...) -> the int8 embedding rows (..., D), widened."""
        return self.embedding[np.asarray(ids)]

    def dequantize(self, acc):
        """float32(acc) * head.scale: the output y of a head whose activation is "none"."""
        return np.asarray(acc).astype(np.float32) * self.head_scale

    # -- streaming (forward-only models) --------------------------------------------------------------------
    def reset(self):
        """Every layer's h and c back to its initial state (h0, c0; zeros without one), for `batch` streams."""
        self.h = [np.tile(dirs[0]["h0"], (self.batch, 1)) for dirs in self.layers]
        self.c = [np.tile(dirs[0]["c0"], (self.batch, 1)) for dirs in self.layers]

    def step_quantised(self, xq):
        """One time step of every stream: xq (B, I) quantised input (int16 values) -> integer logits (B, O)."""
        if not specs.can_stream(self.spec):
            raise ValueError("a bidirectional or reverse model cannot step")
        x = np.asarray(xq, dtype=np.int64).reshape(self.batch, -1)
        for l, dirs in enumerate(self.layers):
            self.h[l], self.c[l] = self.cell_step(dirs[0], x, self.h[l], self.c[l])
            x = self.h[l]
        return self.head(x)

    def state_vector(self):
        """(B, S): per layer h, then c for an LSTM; Stream.state's order."""
        parts = []
        for dirs, h, c in zip(self.layers, self.h, self.c):
            parts += [h, c] if dirs[0]["cell"] == "lstm" else [h]
        return np.concatenate(parts, axis=1)

    # -- whole sequences ------------------------------------------------------------------------------------
    def run(self, xq_seq):
        """xq_seq (B, T, I) quantised sequences, all of length T, from the initial state (the streaming state is
        not touched) -> every_step (B, T, O) or last_step (B, O) integer logits, as Model.run's head reads them.
        A backward direction, and a reverse layer's one direction, run from step T-1 down to 0."""
        seq = np.asarray(xq_seq, dtype=np.int64)
        B, T = seq.shape[:2]
        for dirs in self.layers:
            outs = []
            for d, layer in enumerate(dirs):
                h = np.tile(layer["h0"], (B, 1))
                c = np.tile(layer["c0"], (B, 1))
                out = np.zeros((B, T, layer["H"]), dtype=np.int64)
                for t in (reversed(range(T)) if d == 1 or layer["reverse"] else range(T)):
                    h, c = self.cell_step(layer, seq[:, t], h, c)
                    out[:, t] = h
                outs.append(out)
            seq = np.concatenate(outs, axis=2)
        if self.spec["head"]["on"] == "every_step":
            return self.head(seq)
        if self.layers[-1][0]["reverse"]:
            return self.head(seq[:, 0])  # a reverse layer has seen everything at step 0
        feats = seq[:, T - 1].copy()  # the forward direction at its last step ...
        if len(self.layers[-1]) == 2:
            H = self.layers[-1][0]["H"]
            feats[:, H:] = seq[:, 0, H:]  # ... and the backward one at step 0, where it has seen everything
        return self.head(feats)


# -- random artifacts and inputs ----------------------------------------------------------------------------
TYPICAL_INPUT = 16384  # typical |value| of a layer input (int16, Q0.15 h, or a clamped quantised feature)
TYPICAL_TOKEN_INPUT = 64  # ... and of an int8 embedding entry


def _random_rows(rng, rows, cols):
    """int8 weights in [-127, 127]; most rows full range, some small or sparse (so m > 1 and S > 0 occur)."""
    amp = rng.choice([1, 15, 127], size=(rows, 1), p=[0.15, 0.15, 0.7])
    return rng.integers(-amp, amp + 1, size=(rows, cols)).astype(np.int8)


def _random_bias_and_requant(rng, w, hot, typical_input=TYPICAL_INPUT):
    """Bias (int32) and (M, S) per row: typical |MBQM(ax)| is 2^-3..2^1 of 32768 (hot) or 2^-6..2^-2 (cold)."""
    rows = w.shape[0]
    w64 = w.astype(np.int64)
    typical = np.sqrt((w64**2).sum(axis=1)) * typical_input + 1.0
    limit = INT32_MAX - np.abs(w64).sum(axis=1) * 2**15  # runtime/layout.py's check_int32_sums
    bias = np.clip(np.round(rng.uniform(-1, 1, rows) * typical), -limit, limit).astype(np.int64)
    target = 32768 * np.exp2(rng.uniform(-3, 1, rows) if hot else rng.uniform(-6, -2, rows))
    M = rng.integers(2**30, 2**31, rows, dtype=np.int64)
    S = np.clip(np.round(np.log2(target / typical * 2**31 / M)), -31, 30).astype(np.int64)
    if hot and rows >= 3:  # one row at the int32 limit, one shifted left far enough to saturate int32, one ~0
        a, b, c = rng.choice(rows, 3, replace=False)
        bias[a] = limit[a] * rng.choice([-1, 1])
        S[b] = rng.integers(16, 31)
        S[c] = -31
    return bias.astype(np.int32), M, S


def _random_peepholes(rng, H, hot):
    """p (3H,) int16 and per gate (M, S): typical |MBQM(p * c)| for typical |p|, |c| ~ 2^14 is 2^-3..2^1 of
    32768 (hot) or 2^-6..2^-2 (cold); hot, one gate in two layer-directions shifts left (S in 1..3), so its
    p * c << S saturates int32 for large products."""
    p = rng.integers(INT16_MIN, INT16_MAX + 1, 3 * H)
    p[rng.random(3 * H) < 0.1] = rng.choice([INT16_MIN, INT16_MAX, -INT16_MAX, 0])
    target = 32768 * np.exp2(rng.uniform(-3, 1, 3) if hot else rng.uniform(-6, -2, 3))
    M = rng.integers(2**30, 2**31, 3, dtype=np.int64)
    S = np.round(np.log2(target / 2.0**28 * 2**31 / M)).astype(np.int64)
    if hot and rng.random() < 0.5:
        S[rng.integers(3)] = rng.integers(1, 4)
    return p.astype(np.int16), M.astype(np.int32), S.astype(np.int8)


def random_int8_tensors(spec: dict, rng: np.random.Generator, hot: bool = True, cell_powers=None) -> dict:
    """A random, valid `model.int8` payload for spec (every name and dtype of runtime.file_tensors.int8_tensors).

    hot: requantisation constants large enough that sat16 clips pre-activations often, plus one extreme row per
    matrix (a bias at check_int32_sums' limit, a left shift that saturates int32, a multiplier of ~0).
    cell_powers: the LSTM cell power p of each layer, in [-15, 1] (default -15, -12, 1, -9, cycling).
    """
    spec = specs.validate(spec)
    t: dict[str, np.ndarray] = {}
    inp = spec["input"]

    def f32(n):  # positive float32 scales
        return np.exp2(rng.uniform(-12, -4, n)).astype(np.float32)

    if inp["kind"] == "dense":
        t["input.scale"] = f32(1)
    else:
        t["embedding.weight"] = rng.integers(-127, 128, (inp["vocab"], inp["embed_dim"])).astype(np.int8)
        t["embedding.scale"] = f32(1)
    powers = cell_powers or [(-15, -12, 1, -9)[l % 4] for l in range(len(spec["layers"]))]
    for l, (layer, n_in) in enumerate(zip(spec["layers"], specs.layer_input_sizes(spec))):
        rows, H = specs.GATES[layer["cell"]] * layer["hidden"], layer["hidden"]
        for d in ("fwd", "bwd")[: specs.directions(layer)]:
            p = f"layers.{l}.{d}"
            t[f"{p}.w_ih"], t[f"{p}.w_hh"] = _random_rows(rng, rows, n_in), _random_rows(rng, rows, H)
            typical = TYPICAL_TOKEN_INPUT if l == 0 and inp["kind"] == "tokens" else TYPICAL_INPUT
            t[f"{p}.b_ih"], Mx, Sx = _random_bias_and_requant(rng, t[f"{p}.w_ih"], hot, typical)
            b_hh, Mh, Sh = _random_bias_and_requant(rng, t[f"{p}.w_hh"], hot)
            keep = specs.recurrent_bias_rows(layer)  # the file holds gru's b_hn only; other recurrent biases are 0
            if keep.stop > keep.start:
                t[f"{p}.b_hh"] = b_hh[keep]
            if layer.get("peepholes"):  # any int16 (extremes included), a requantisation per gate
                t[f"{p}.p"], t[f"{p}.p_requant"], t[f"{p}.p_shift"] = _random_peepholes(rng, H, hot)
            if layer.get("initial_state"):  # any int16, the extremes included
                for name in ("h0", "c0") if layer["cell"] == "lstm" else ("h0",):
                    v = rng.integers(INT16_MIN, INT16_MAX + 1, H)
                    v[rng.random(H) < 0.2] = rng.choice([INT16_MIN, INT16_MAX, 0])
                    t[f"{p}.{name}"] = v.astype(np.int16)
            t[f"{p}.requant"] = np.stack([Mx, Mh]).astype(np.int32)
            t[f"{p}.shift"] = np.stack([Sx, Sh]).astype(np.int8)
        t[f"layers.{l}.scale"] = f32(1)
        t[f"layers.{l}.cell_power"] = np.array([powers[l] if layer["cell"] == "lstm" else 0], dtype=np.int32)
    widths = specs.head_input_sizes(spec)
    for k, dense in enumerate(specs.head_hidden(spec)):
        p = f"head.hidden.{k}"
        t[f"{p}.weight"] = _random_rows(rng, dense["units"], widths[k])
        t[f"{p}.bias"], M, S = _random_bias_and_requant(rng, t[f"{p}.weight"], hot)
        t[f"{p}.requant"], t[f"{p}.shift"] = M.astype(np.int32), S.astype(np.int8)
        t[f"{p}.scale"] = f32(1)
    out, width = spec["head"]["out"], widths[-1]
    t["head.weight"] = _random_rows(rng, out, width)
    t["head.bias"] = rng.integers(-(2**24), 2**24, out).astype(np.int32)
    t["head.scale"] = f32(out)
    assert {k: (v.shape, v.dtype.name) for k, v in t.items()} == {k: (s, d) for k, (s, d) in
                                                                   file_tensors.int8_tensors(spec).items()}
    return t


def saturating_dense_inputs(spec: dict, input_scale: float, rng: np.random.Generator, batch: int, steps: int):
    """Raw float32 inputs (B, T, F) for a dense spec: normalised values spread to ~1.3x the quantised range
    (so clamping at +-32767 is frequent), 1 % huge (1e6), and, when s_x is a power of two and the spec's mean
    and std are exact in binary, 10 % exact ties of rint (k + 1/2) that round to even."""
    inp = spec["input"]
    mean, std = np.asarray(inp["mean"], dtype=np.float64), np.asarray(inp["std"], dtype=np.float64)
    shape = (batch, steps, inp["features"])
    z = rng.standard_normal(shape) * (input_scale * INPUT_MAX * 0.65)  # normalised values
    z = np.where(rng.random(shape) < 0.01, rng.choice([-1e6, 1e6], shape), z)
    ties = (rng.integers(-40000, 40000, shape) + 0.5) * input_scale
    z = np.where(rng.random(shape) < 0.1, ties, z)
    return (mean + std * z).astype(np.float32)
