"""One firmware_ref step measured under QEMU for any target x precision of runtime/cost_model.py's TARGETS: the
cost table's (benchmarks/cost_table.py) and the cost model's (benchmarks/cost_fit.py, tests/firmware/
test_cost_model.py) measurement.

`measure(spec, target, precision, folder)` builds a seeded model of `spec` (PyTorch's init; int8: calibrated on a
random stream and quantised as export does it, as benchmarks/bench_firmware.build_model; int8w: export/quantize.py),
generates its model_data.{h,c} (export/firmware.py), and then, with the flags read from firmware_ref's makefiles
(firmware_ref/Makefile STRICT_FLAGS / FLOAT_FLAGS, arm/arm.mk ARM_CPU_<board> ARM_CFLAGS ARM_LDFLAGS ARM_LIBS,
riscv/riscv.mk RISCV_CFLAGS RISCV_LDFLAGS):

1. compiles the library (LIB_INT8_SRCS, or LIB_FLOAT_SRCS for f32 / int8w) and model_data.c to objects, without the
   ONNX layer extensions' code (-DRNNEDGE_EXTENSIONS=0: the models are PyTorch's cells);
2. links them with the step benchmark (firmware_ref/arm/bench/step_bench.c, step_bench_float.c for f32 / int8w)
   and the target's startup and semihosting runtime, writing a map file;
3. runs the image under QEMU (arm/run.sh BOARD, riscv/run.sh; -icount shift=0) and parses its "key: value" lines.

Figures: instructions per step (the mean over the measured steps; QEMU's executed instructions, not cycles),
flash = library code (the .text of the library objects --gc-sections kept for this model, plus the libc/libgcc
routines they call, as linked) + library constants (their .rodata: the sigmoid table) + model constants (the
.rodata of model_data.o as linked), RAM = state + scratch (the generated MODEL_*_BYTES, the bench's static arrays)
+ stack (startup paints the stack with a pattern; sh_stack_used() is the deepest byte overwritten after the steps,
bench frame included). A missing tool or a failing build or run raises MeasureError with the reason.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import torch

from benchmarks.bench_firmware import CALIBRATION_SEED, CALIBRATION_STEPS
from rnnedge.export import footprint
from rnnedge.export.calibrate import calibrate, calibration_slice
from rnnedge.export.firmware import write_float_model_sources, write_model_sources
from rnnedge.export.quantize import quantize_int8w
from rnnedge.export.quantize_int8 import quantize_int8
from rnnedge.export.weights import canonical_tensors
from rnnedge.runtime import artifact
from rnnedge.runtime.cost_model import TARGETS
from rnnedge.train.model import RecurrentModel

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware_ref"
NO_EXTENSIONS = "-DRNNEDGE_EXTENSIONS=0"
ARM_TOOLS = ("arm-none-eabi-gcc", "arm-none-eabi-nm", "qemu-system-arm")
RISCV_TOOLS = ("riscv64-unknown-elf-gcc", "riscv64-unknown-elf-nm", "qemu-system-riscv32")


class MeasureError(RuntimeError):
    """A measurement could not be made (a tool missing, the target not built by firmware_ref yet, a build or run
    failing); the message says why."""


def family(target: str) -> str:
    return "riscv" if TARGETS[target]["board"] == "virt" else "arm"


def missing_tools(target: str) -> list[str]:
    tools = ("make", "timeout", "sh", *(RISCV_TOOLS if family(target) == "riscv" else ARM_TOOLS))
    return [tool for tool in tools if shutil.which(tool) is None]


def _run(command: list[str], what: str, cwd=None, timeout: float = 300) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(command, check=False, capture_output=True, text=True, timeout=timeout, cwd=cwd,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise MeasureError(f"{what}: {e}") from None
    if proc.returncode != 0:
        raise MeasureError(f"{what} failed ({proc.returncode}): {(proc.stderr + proc.stdout).strip()[-800:]}")
    return proc


_VARS_CACHE: dict[str, dict[str, list[str]]] = {}


def make_vars(target: str) -> dict[str, list[str]]:
    """The flags and sources of `target`'s build, read from firmware_ref's makefiles (cached per target)."""
    if target in _VARS_CACHE:
        return _VARS_CACHE[target]
    board = TARGETS[target]["board"]
    names = {"LIB_INT8_SRCS": "LIB_INT8_SRCS", "LIB_FLOAT_SRCS": "LIB_FLOAT_SRCS", "STRICT_FLAGS": "STRICT_FLAGS",
             "FLOAT_FLAGS": "FLOAT_FLAGS"}
    if family(target) == "riscv":
        names |= {"CPU": "RISCV_ARCH", "CFLAGS": "RISCV_CFLAGS", "LDFLAGS": "RISCV_LDFLAGS", "LIBS": "RISCV_LIBS",
                  "RUNTIME": "RISCV_RUNTIME_SRCS", "DIR": "RISCV_DIR"}
    else:
        # ARM_LDSCRIPT_<board>: a board with a linker script of its own (the mps3-an547); where arm.mk has none,
        # ARM_LDFLAGS names the one script (-T mps2.ld)
        names |= {"CPU": f"ARM_CPU_{board}", "CFLAGS": "ARM_CFLAGS", "LDSCRIPT": f"ARM_LDSCRIPT_{board}",
                  "LDFLAGS": "ARM_LDFLAGS", "LIBS": "ARM_LIBS", "RUNTIME": "ARM_RUNTIME_SRCS", "DIR": "ARM_DIR"}
    recipe = "".join(f"$(info {key}=$({var}))" for key, var in names.items())
    out = _run(["make", "-s", "--no-print-directory", "-C", str(FIRMWARE), "EXTENSIONS=1", "FMA=1", "--eval",
                f"_rnnedge_cost_vars: ; @:{recipe}", "_rnnedge_cost_vars"], "reading firmware_ref's makefiles").stdout
    values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    result = {key: values.get(key, "").split() for key in names}
    if family(target) == "riscv":
        result["CFLAGS"] = [f for f in result["CFLAGS"] if f not in result["CPU"]]  # RISCV_CFLAGS holds the arch
    elif result["LDSCRIPT"]:
        result["LDFLAGS"] = ["-T", *result["LDSCRIPT"], *result["LDFLAGS"]]
    if not result["CPU"]:
        raise MeasureError(f"firmware_ref does not build for {target} yet (arm/arm.mk defines no ARM_CPU_{board})")
    empty = [key for key in ("LIB_INT8_SRCS", "LIB_FLOAT_SRCS", "STRICT_FLAGS", "CFLAGS", "LDFLAGS", "RUNTIME")
             if not result[key]]
    if empty:
        raise MeasureError(f"firmware_ref's makefiles define no {', '.join(empty)} for {target}")
    _VARS_CACHE[target] = result
    return result


def write_model(spec: dict, precision: str, folder: Path, seed: int = 0) -> Path:
    """A seeded model of `spec` as a weight file and its model_data.{h,c} in folder/<precision>/; returns that
    folder."""
    torch.manual_seed(seed)
    model = RecurrentModel(spec).eval()
    tensors = canonical_tensors(model)
    if precision == "int8w":
        tensors, _ = quantize_int8w(model.spec, tensors)
    elif precision == "int8":
        inp = spec["input"]
        rng = np.random.default_rng(CALIBRATION_SEED)
        if inp["kind"] == "dense":
            X = (rng.standard_normal((1, CALIBRATION_STEPS, inp["features"])) * np.asarray(inp["std"])
                 + np.asarray(inp["mean"])).astype(np.float32)
        else:
            X = rng.integers(0, inp["vocab"], size=(1, CALIBRATION_STEPS)).astype(np.int64)
        ranges = calibrate(model, *calibration_slice(X), where="cost-model calibration stream")
        tensors, _ = quantize_int8(model.spec, tensors, ranges)
    out = folder / precision
    out.mkdir(parents=True, exist_ok=True)
    weights = out / f"model.{precision}.safetensors"
    artifact.write(weights, tensors, model.spec, precision)
    (write_model_sources if precision == "int8" else write_float_model_sources)(weights, out)
    return out


def measure(spec: dict, target: str, precision: str, folder, steps: int = 16, seed: int = 0,
            timeout: float = 120.0) -> dict:
    """Build, run and size one step of a seeded `spec` model on `target` in `precision` (module docstring)."""
    if target not in TARGETS:
        raise MeasureError(f"unknown target {target!r}: one of {', '.join(TARGETS)}")
    if precision not in TARGETS[target]["precisions"]:
        raise MeasureError(f"{target} does not run {precision}")
    missing = missing_tools(target)
    if missing:
        raise MeasureError(f"{', '.join(missing)} not installed")
    folder = Path(folder).resolve()
    v = make_vars(target)
    model_dir = write_model(spec, precision, folder, seed)
    build = folder / f"build-{target}-{precision}"
    build.mkdir(parents=True, exist_ok=True)
    prefix = "riscv64-unknown-elf-" if family(target) == "riscv" else "arm-none-eabi-"
    strict = v["STRICT_FLAGS"] if precision == "int8" else v["FLOAT_FLAGS"]
    extra = [*strict, NO_EXTENSIONS, "-Iinclude", f"-I{model_dir}"]
    cflags = [*v["CPU"], *v["CFLAGS"], *extra]
    sources = v["LIB_INT8_SRCS"] if precision == "int8" else v["LIB_FLOAT_SRCS"]
    objects = []
    for src in sources:
        obj = build / Path(src).with_suffix(".o").name
        _run([f"{prefix}gcc", *cflags, "-c", src, "-o", str(obj)], f"compiling {src}", cwd=FIRMWARE)
        objects.append(obj)
    model_obj = build / "model_data.o"
    _run([f"{prefix}gcc", *cflags, "-c", str(model_dir / "model_data.c"), "-o", str(model_obj)],
         "compiling model_data.c", cwd=FIRMWARE)
    bench = "arm/bench/step_bench.c" if precision == "int8" else "arm/bench/step_bench_float.c"
    elf, map_file = build / "bench.elf", build / "bench.map"
    _run([f"{prefix}gcc", *v["CPU"], *v["CFLAGS"], f"-I{v['DIR'][0]}", *extra, f"-DBENCH_STEPS={steps}", *v["LDFLAGS"], f"-Wl,-Map={map_file}", *v["RUNTIME"],
          *(str(o) for o in [*objects, model_obj]), bench, *v["LIBS"], "-o", str(elf)], "linking the bench image",
         cwd=FIRMWARE)
    if family(target) == "riscv":
        run = ["sh", "riscv/run.sh", str(elf), str(int(timeout))]
    else:
        run = ["sh", "arm/run.sh", TARGETS[target]["board"], str(elf), str(int(timeout))]
    try:
        proc = subprocess.run(run, check=False, capture_output=True, text=True, timeout=timeout + 30, cwd=FIRMWARE,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise MeasureError(f"running the {target} {precision} bench: {e}") from None
    out = dict(re.findall(r"^(\w+): (\S+)$", proc.stdout, re.MULTILINE))
    if proc.returncode != 0 or out.get("status") != "ok":
        raise MeasureError(f"the {target} {precision} bench under QEMU exited {proc.returncode}: "
                           f"{(proc.stdout + proc.stderr).strip()[-400:]}")
    sizes = _sizes(map_file.read_text(), objects, model_obj, f"{prefix}nm")
    return {
        "target": target, "precision": precision, "cpu": out["cpu"], "steps": int(out["steps"]),
        "instructions_per_step": int(out["icount_per_step_mean_x100"]) / 100.0,
        "instructions_min": int(out["icount_per_step_min"]), "instructions_max": int(out["icount_per_step_max"]),
        "flash": {"library_code": sizes["library_code"], "library_const": sizes["library_const"],
                  "model_const": sizes["model_const"], "helpers": sizes["helpers"]},
        "ram": {"state": int(out["state_bytes"]), "scratch": int(out["scratch_bytes"]),
                "stack": int(out["stack_used"])},
        "generated_const_bytes": int(out["const_bytes"]),
    }


# -- sizes from the map file (export/footprint_sizes.py's parser, footprint.parse_map: input sections placed in allocated output sections) --


def _kind(name: str) -> str:
    for prefixes, kind in (((".text",), "code"), ((".rodata", ".srodata"), "const"), ((".data", ".sdata"), "data"),
                           ((".bss", ".sbss", "COMMON"), "bss")):
        if name.startswith(prefixes):
            return kind
    return "other"


def _sizes(map_text: str, objects: list[Path], model_obj: Path, nm: str) -> dict:
    """Library code (+ the libc/libgcc routines it calls) and constants, model constants, by input section name
    (rv32's small-data sections too: .srodata, .sdata)."""
    try:
        sections = footprint.parse_map(map_text)
    except footprint.FootprintError as e:
        raise MeasureError(str(e)) from None
    library = [s for s in sections if s["file"] in objects]
    undefined, defined = set(), set()
    for obj in objects:
        for line in _run([nm, str(obj)], nm).stdout.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == "U":
                undefined.add(parts[1])
            elif len(parts) == 3:
                defined.add(parts[2])
    calls = undefined - defined
    helpers = {sym: s["size"] for s in sections if isinstance(s["file"], str) and _kind(s["name"]) == "code"
               for sym in set(s["symbols"]) & calls}
    model = [s for s in sections if s["file"] == model_obj]
    return {"library_code": sum(s["size"] for s in library if _kind(s["name"]) == "code") + sum(helpers.values()),
            "library_const": sum(s["size"] for s in library if _kind(s["name"]) == "const"),
            "model_const": sum(s["size"] for s in model if _kind(s["name"]) in ("const", "data")),
            "helpers": helpers}
