"""Multi-step forecasting with the runtime: stream a history with step(), then feed each prediction back in.

    from rnnedge import runtime
    from rnnedge.train.forecast import forecast, multistep_rmse
    model = runtime.load("artifacts/co2/model.int8.safetensors")
    future = forecast(model, history, horizon=52)       # history (T, F) raw values -> (52, F) raw values
    scores = multistep_rmse(model, load_dataset("co2").test, horizon=52)

A forecasting model here reads a value x_t (raw units; the model normalises it with the spec's input mean
and std) and predicts the next value normalised by that same mean and std (as train.data.load_co2
builds its targets). So a prediction p becomes the next input as p * std + mean: the model's own
normalisation, undone. The model must take dense input, have a head on every step without activation
(task forecast) and predict as many values as it reads (head.out == input features).

Only numpy and the runtime: no torch. On the command line:

    python -m rnnedge.train.forecast artifacts/co2/model.f32.safetensors --data co2 --horizon 52
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from rnnedge import runtime


def check_forecaster(model: runtime.Model) -> None:
    """Raise ValueError unless `model` can feed its predictions back as its next input."""
    spec = model.spec
    head = spec["head"]
    if not model.dense or head["on"] != "every_step" or head["activation"] != "none" or model.out != model.features:
        raise ValueError("multi-step forecasting feeds each prediction back as the next input: it needs a model "
                         "with dense input, a head on every step without activation and head.out equal to the input "
                         f"features; this one has {spec['input']['kind']} input ({model.features} features), a head "
                         f"on {head['on']} with {head['activation']} activation and {model.out} outputs")


def scale(model: runtime.Model) -> tuple[np.ndarray, np.ndarray]:
    """The model's input normalisation (mean, std), float32 (features,): value = prediction * std + mean."""
    return (np.asarray(model.spec["input"]["mean"], dtype=np.float32),
            np.asarray(model.spec["input"]["std"], dtype=np.float32))


def forecast(model: runtime.Model, history, horizon: int) -> np.ndarray:
    """The next `horizon` values after `history`, in raw units.

    history: (T, F) or (B, T, F) raw values, T >= 1 (all streams of a batch equally long). A fresh stream
    steps through the history; its last output is the first forecast; each forecast, denormalised, is stepped
    in as the next input to give the one after. Returns (horizon, F), or (B, horizon, F) for a batch.
    """
    check_forecaster(model)
    history = np.asarray(history)
    batched = history.ndim == 3
    if not batched:
        history = history[None]
    if history.ndim != 3 or history.shape[1] < 1 or history.shape[2] != model.features:
        raise ValueError(f"history must be (T, {model.features}) or (B, T, {model.features}) with T >= 1, "
                         f"got shape {np.shape(history)}")
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ValueError(f"horizon must be a positive integer, got {horizon!r}")
    B, T, F = history.shape
    mean, std = scale(model)
    stream = model.stream(batch=B)
    x = np.empty((B, F), dtype=np.float32)
    for t in range(T):
        x[:] = history[:, t]
        y = stream.step(x)
    out = np.empty((B, int(horizon), F), dtype=np.float32)
    for h in range(int(horizon)):
        np.multiply(y, std, out=x)
        np.add(x, mean, out=x)
        out[:, h] = x
        if h + 1 < horizon:
            y = stream.step(x)
    return out if batched else out[0]


def multistep_rmse(model: runtime.Model, data, horizon: int, warmup: int = 104, every: int = 4) -> dict:
    """RMSE (normalised units, like the task metric) of forecasts 1..horizon steps ahead over a split.

    data: a train.data.SequenceData of a forecast set (X raw values, y the normalised next values). Each
    sequence streams through one stream of the model; at every origin t0 = warmup, warmup + every, ... with
    t0 + horizon <= length, the state is saved, the model forecasts `horizon` steps from it (each prediction
    fed back), and the state is restored before the real inputs carry on. The forecast h steps ahead from t0
    is scored against y[t0 - 1 + h - 1] (the value at t0 + h - 1). Returns
    {"horizon", "origins", "rmse" (all steps ahead together), "rmse_by_step" (list, 1..horizon ahead),
    "next_step_rmse" (= rmse_by_step[0]: the one-step forecasts at the same origins)}.
    """
    check_forecaster(model)
    if horizon < 1 or warmup < 1 or every < 1:
        raise ValueError(f"horizon, warmup and every must be >= 1, got {horizon}, {warmup}, {every}")
    mean, std = scale(model)
    F = model.features
    stream = model.stream(batch=1)
    x = np.empty((1, F), dtype=np.float32)
    squared = np.zeros(horizon, dtype=np.float64)
    origins = 0
    for n in range(len(data)):
        length = int(data.lengths[n])
        stream.reset()
        for t in range(length):
            if t >= warmup and (t - warmup) % every == 0 and t + horizon <= length:
                saved = stream.state.copy()
                y = stream.y.copy()  # the forecast of the value at t (one step ahead)
                for h in range(horizon):
                    err = y[0].astype(np.float64) - data.y[n, t - 1 + h].astype(np.float64)
                    squared[h] += float(np.sum(err**2))
                    if h + 1 < horizon:
                        x[:] = y * std + mean
                        y = stream.step(x)
                stream.state[:] = saved
                origins += 1
            x[:] = data.X[n, t]
            stream.step(x)
    if origins == 0:
        raise ValueError(f"no origin: every sequence is shorter than warmup + horizon = {warmup + horizon} steps")
    by_step = np.sqrt(squared / (origins * F))
    return {"horizon": horizon, "origins": origins, "warmup": warmup, "every": every,
            "rmse": float(np.sqrt(squared.sum() / (origins * F * horizon))),
            "rmse_by_step": [float(v) for v in by_step], "next_step_rmse": float(by_step[0])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rnnedge.train.forecast", description=(
        "Multi-step forecasts of a runtime weight file over a forecast data set's test split: RMSE of the "
        "forecasts 1..HORIZON steps ahead (each prediction fed back as the next input) against the next-step RMSE."))
    parser.add_argument("weights", help="model.<precision>.safetensors of a forecasting model")
    parser.add_argument("--data", default="co2", help="forecast data set (default: %(default)s)")
    parser.add_argument("--split", choices=("val", "test"), default="test")
    parser.add_argument("--horizon", type=int, default=52, help="steps ahead (default: %(default)d)")
    parser.add_argument("--warmup", type=int, default=104, help="real steps before the first origin (default: %(default)d)")
    parser.add_argument("--every", type=int, default=4, help="steps between origins (default: %(default)d)")
    args = parser.parse_args(argv)
    from rnnedge.train.data import load_dataset  # numpy only

    try:
        model = runtime.load(args.weights)
        data = load_dataset(args.data)
        result = multistep_rmse(model, getattr(data, args.split), args.horizon, args.warmup, args.every)
    except (OSError, ValueError, runtime.ArtifactError) as e:
        print(f"python -m rnnedge.train.forecast: error: {e}", file=sys.stderr)
        return 2
    result.update(weights=str(args.weights), data=args.data, split=args.split)
    if data.target_scale is not None:
        result["rmse_units"] = result["rmse"] * data.target_scale[1]
        result["next_step_rmse_units"] = result["next_step_rmse"] * data.target_scale[1]
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
