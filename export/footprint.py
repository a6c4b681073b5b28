"""Flash, RAM and instructions per step of a generated int8 model on a Cortex-M, measured under QEMU (issue 5).

`measure_footprint(model_dir, board="an385")` (an385 Cortex-M3, an386 Cortex-M4 with the DSP extension, an547
Cortex-M55 with Helium) takes a folder with export/firmware.py's `model_data.h` and
`model_data.c`, and:

1. compiles the int8 library (firmware_ref/Makefile's LIB_INT8_SRCS) and model_data.c to objects with the flags
   of firmware_ref/arm/arm.mk (ARM_CPU_<board>, ARM_CFLAGS: -Os, -ffunction-sections, ...) plus the library's
   STRICT_FLAGS, exactly as arm.mk's `arm-lib` does; the variables are read from the makefiles, not repeated.
   A model without ONNX layer extensions (model_data.h's MODEL_USES_EXTENSIONS 0) is built as its user would
   build it, with -DRNNEDGE_EXTENSIONS=0 (the library without the extensions' code; the Makefile's EXTENSIONS=0),
   a model with them without that flag; the library is also compiled the other way for its size alone;
2. links firmware_ref/arm/bench/step_bench.c with them through arm.mk's `arm-image` target (startup, semihosting
   runtime, linker script, --gc-sections, map file);
3. reads the sizes: `arm-none-eabi-size -A` of the library objects, the map file's input sections per object
   (what was linked), `arm-none-eabi-nm -S` of model_data.o;
4. runs the image under QEMU (firmware_ref/arm/run.sh: -icount shift=0) and parses its "key: value" lines.

What the numbers mean (all bytes unless named otherwise):

    library.code_bytes          every .text byte of the int8 library objects (all cells, both input kinds; the
                                whole library, not only what this model calls) plus the libc/libgcc routines
                                they call, as linked (e.g. memset); target <= 4 KiB on the Cortex-M3
    library.extensions          False: built with -DRNNEDGE_EXTENSIONS=0 (the model uses no ONNX layer
                                extension), True: with the extensions' code (the model needs it)
    library.code_bytes_with_extensions / library.code_bytes_without_extensions
                                code_bytes of the library compiled with / without the extensions' code (the
                                build not linked: its objects' .text plus the same libc/libgcc routines; None if
                                it would call a routine the image does not link)
    library.const_bytes         the library's const data (the 256-entry sigmoid table)
    library.linked_code_bytes   the .text of the library objects that --gc-sections kept for this model
    model_const.flash_bytes     every const byte of model_data.o linked into the image: int8 weight matrices,
                                int32 biases, requantisation multipliers/shifts, the ONNX layer extensions'
                                constants (h0, c0, peepholes), the layer and model structs
    model_const.raw_int8_params the float model's parameter count (PyTorch's: matrices incl. the embedding,
                                b_ih and b_hh per layer, head bias): its size at one byte per parameter
    model_const.flash_over_raw_params   flash_bytes / raw_int8_params; target <= 1.05 (within 5 %)
    ram.state_plus_scratch_bytes the MODEL_RAM_BYTES macro (state + scratch of one stream, int16), checked
                                against the bench's static arrays in .bss; target <= 1 KiB
    ram.stack_used_bytes        the stack high-water mark after the measured steps (startup paints the stack)
    icount.per_step_*           instructions per model step under QEMU -icount shift=0 (SysTick, resolution 40
                                instructions per measurement on the MPS2 boards, 31.25 on the AN547 whose
                                SysTick runs at 32 MHz; the mean over N steps is finer). Instructions, not
                                cycles: see firmware_ref/arm/README.md "Instruction counts"

`available()` says whether the tools are installed (make, arm-none-eabi-gcc/-size/-nm, qemu-system-arm,
timeout); a missing tool or any failure raises FootprintError with a one-line reason.

This module builds, runs and judges (steps 1, 2 and 4, `targets`, `summary_line`); export/footprint_sizes.py reads
the sizes (step 3; its `parse_map` is importable from here too), and export/footprint_tools.py holds FootprintError
and the one function that runs a tool.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from rnnedge.export.footprint_sizes import (
    image_sizes,
    library_sizes,
    model_const_sizes,
    parse_map,  # part of this module's interface too (benchmarks/cost_measure.py)
    unlinked_code_bytes,
)
from rnnedge.export.footprint_tools import FootprintError, run_tool

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware_ref"
ARM = FIRMWARE / "arm"
ARM_MK = ARM / "arm.mk"
RUN_SH = ARM / "run.sh"
BENCH_SRC = ARM / "bench" / "step_bench.c"
BOARDS = {"an385": "cortex-m3", "an386": "cortex-m4", "an547": "cortex-m55"}
TOOLS = ("make", "arm-none-eabi-gcc", "arm-none-eabi-size", "arm-none-eabi-nm", "qemu-system-arm", "timeout", "sh")
# instructions per SysTick tick under -icount shift=0 (semihost.h: 1 ns per instruction, SysTick at 25 / 32 MHz)
ICOUNT_RESOLUTION = {"an385": 40, "an386": 40, "an547": 31.25}

# Targets of issue 5 (LSTM(40 -> 64) + head, int8, Cortex-M3)
LIBRARY_CODE_TARGET = 4096  # bytes of library code
RAM_TARGET = 1024  # bytes of state + scratch
WEIGHTS_FLASH_TARGET = 1.05  # model const flash / raw int8 parameter count


def available() -> tuple[bool, str]:
    """(True, "") when every tool is installed, else (False, which are missing)."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return False, f"{', '.join(missing)} not installed"
    return True, ""


def environment_disabled() -> str | None:
    """The reason an export should not measure (RNNEDGE_FOOTPRINT=0/off/no), or None."""
    value = os.environ.get("RNNEDGE_FOOTPRINT", "").strip().lower()
    return "disabled by RNNEDGE_FOOTPRINT" if value in ("0", "off", "no", "false") else None


def measure_footprint(model_dir, board: str = "an385", steps: int = 64, build_dir=None,
                      timeout: float = 120.0, extensions: bool | None = None) -> dict:
    """Build the library and the step benchmark for `board` (an385 Cortex-M3, an386 Cortex-M4F, an547 Cortex-M55), run
    it under QEMU and return the footprint (see the module docstring); raises FootprintError.

    model_dir: a folder with model_data.h and model_data.c (export/firmware.py's default prefix; an export writes
    them to <out>/firmware/int8/). steps: measured model steps. build_dir: where objects, image and map go (default: a
    temporary folder, removed afterwards). extensions: build the library with the ONNX layer extensions' code (True)
    or with -DRNNEDGE_EXTENSIONS=0 (False); None (default): what the model needs (model_uses_extensions).
    """
    if board not in BOARDS:
        raise FootprintError(f"unknown board {board!r} ({' | '.join(BOARDS)})")
    if steps < 1:
        raise FootprintError(f"steps must be positive, got {steps}")
    ok, reason = available()
    if not ok:
        raise FootprintError(reason)
    model_dir = Path(model_dir)
    for name in ("model_data.h", "model_data.c"):
        if not (model_dir / name).is_file():
            raise FootprintError(f"{model_dir / name} not found")
    if extensions is None:
        extensions = model_uses_extensions(model_dir)
    if build_dir is None:
        with tempfile.TemporaryDirectory(prefix="rnnedge-footprint-") as tmp:
            return _measure(model_dir, board, steps, Path(tmp), timeout, bool(extensions))
    return _measure(model_dir, board, steps, Path(build_dir), timeout, bool(extensions))


_USES_EXTENSIONS = re.compile(r"^#define MODEL_USES_EXTENSIONS ([01])\b", re.MULTILINE)
NO_EXTENSIONS_FLAG = "-DRNNEDGE_EXTENSIONS=0"


def model_uses_extensions(model_dir) -> bool:
    """Whether the generated model in model_dir needs the library's ONNX layer extensions: model_data.h's
    MODEL_USES_EXTENSIONS (export/firmware.py); for sources generated before that macro, whether model_data.c sets
    any layer's flags."""
    model_dir = Path(model_dir)
    m = _USES_EXTENSIONS.search((model_dir / "model_data.h").read_text())
    if m:
        return m.group(1) == "1"
    return re.search(r"^\s*\.flags = ", (model_dir / "model_data.c").read_text(), re.MULTILINE) is not None


def _measure(model_dir: Path, board: str, steps: int, build: Path, timeout: float, extensions: bool) -> dict:
    started = time.perf_counter()
    build = build.resolve()
    if re.search(r"\s", str(build)) or re.search(r"\s", str(ROOT)):
        raise FootprintError(f"make cannot build in a path with spaces: {build}")
    build.mkdir(parents=True, exist_ok=True)
    src = build / "model"  # a copy: the model folder's path may hold characters make cannot take
    src.mkdir(exist_ok=True)
    for name in ("model_data.h", "model_data.c"):
        shutil.copyfile(model_dir / name, src / name)
    v = _make_vars(board)
    defines = [] if extensions else [NO_EXTENSIONS_FLAG]
    cflags = [*v["ARM_CPU"], *v["ARM_CFLAGS"], *v["STRICT_FLAGS"], *defines, f"-I{FIRMWARE / 'include'}"]
    objects = {}
    for lib_src in v["LIB_INT8_SRCS"]:
        obj = build / f"lib-{board}" / Path(lib_src).with_suffix(".o").name
        _compile(cflags, FIRMWARE / lib_src, obj)
        objects[Path(lib_src).name] = obj
    # the library the other way (with the extensions if this build has none, and the reverse), for its size only
    other_cflags = [*v["ARM_CPU"], *v["ARM_CFLAGS"], *v["STRICT_FLAGS"], *([NO_EXTENSIONS_FLAG] if extensions else []),
                    f"-I{FIRMWARE / 'include'}"]
    other_objects = {}
    for lib_src in v["LIB_INT8_SRCS"]:
        obj = build / f"lib-{board}-{'no-ext' if extensions else 'ext'}" / Path(lib_src).with_suffix(".o").name
        _compile(other_cflags, FIRMWARE / lib_src, obj)
        other_objects[Path(lib_src).name] = obj
    model_obj = build / f"lib-{board}" / "model_data.o"
    _compile([*cflags, f"-I{src}"], src / "model_data.c", model_obj)
    compiled = time.perf_counter()

    name = f"step-bench-{board}"
    run_tool(["make", "--no-print-directory", "-f", str(ARM_MK), f"ARM_BUILD={build}", f"ARM_NAME={name}",
              f"ARM_BOARD={board}", f"ARM_SRCS={' '.join(str(o) for o in [*objects.values(), model_obj])} {BENCH_SRC}",
              f"ARM_INCLUDES=-I{FIRMWARE / 'include'} -I{src}",
              f"ARM_EXTRA_CFLAGS={' '.join([*v['STRICT_FLAGS'], *defines])} -DBENCH_STEPS={steps}", "arm-image"],
             "link", cwd=ROOT)
    elf = build / name / f"{name}.elf"
    linked = time.perf_counter()

    proc = subprocess.run(["sh", str(RUN_SH), board, str(elf), str(int(timeout))], check=False,
                          capture_output=True, text=True, timeout=timeout + 30, stdin=subprocess.DEVNULL)
    out = dict(re.findall(r"^(\w+): (\S+)$", proc.stdout, re.MULTILINE))
    if proc.returncode != 0 or out.get("status") != "ok":
        raise FootprintError(f"{name} under QEMU exited {proc.returncode}: "
                             f"{(proc.stdout + proc.stderr).strip()[-400:]}")
    ran = time.perf_counter()

    sections = parse_map((build / name / f"{name}.map").read_text())
    image = image_sizes((build / name / f"{name}.size").read_text())
    library = library_sizes(objects, sections)
    other = unlinked_code_bytes(other_objects, library["helpers"])
    library["extensions"] = extensions
    library["code_bytes_with_extensions"] = library["code_bytes"] if extensions else other
    library["code_bytes_without_extensions"] = other if extensions else library["code_bytes"]
    model_const = model_const_sizes(model_obj, sections)
    if int(out["const_bytes"]) != model_const["integer_array_bytes"]:
        raise FootprintError(f"MODEL_CONST_BYTES {out['const_bytes']} != the integer arrays of model_data.o "
                             f"({model_const['integer_array_bytes']})")
    bss = {s["name"]: s["size"] for s in sections if s["name"].startswith(".bss.bench_")}  # step_bench.c's
    ram = {
        "state_bytes": int(out["state_bytes"]),
        "scratch_bytes": int(out["scratch_bytes"]),
        "state_plus_scratch_bytes": int(out["ram_bytes"]),
        "bss_state_bytes": bss.get(".bss.bench_state"),
        "bss_scratch_bytes": bss.get(".bss.bench_scratch"),
        "stack_used_bytes": int(out["stack_used"]),
        "stack_size_bytes": int(out["stack_size"]),
    }
    ram["bss_agrees"] = (ram["bss_state_bytes"], ram["bss_scratch_bytes"]) == (ram["state_bytes"],
                                                                               ram["scratch_bytes"])
    icount = {
        "steps": int(out["steps"]),
        "per_step_median": int(out["icount_per_step_median"]),
        "per_step_mean": int(out["icount_per_step_mean_x100"]) / 100.0,
        "per_step_min": int(out["icount_per_step_min"]),
        "per_step_max": int(out["icount_per_step_max"]),
        "total": int(out["icount_total"]),
        "reset": int(out["icount_reset"]),
        "resolution": ICOUNT_RESOLUTION[board],
        "logits_checksum": out["logits_checksum"],
    }
    result = {
        "board": board,
        "cpu": out["cpu"],
        "compiler": _first_line(["arm-none-eabi-gcc", "--version"]),
        "cflags": " ".join(cflags[:-1]),  # without the include path (with -DRNNEDGE_EXTENSIONS=0 if so built)
        "input_kind": "dense" if out["input_kind"] == "0" else "tokens",
        "library": library,
        "model_const": model_const,
        "ram": ram,
        "image": image,
        "icount": icount,
        "seconds": {"compile": compiled - started, "link": linked - compiled, "run": ran - linked,
                    "total": time.perf_counter() - started},
    }
    result["targets"] = targets(result)
    return result


def targets(result: dict) -> list[dict]:
    """Issue 5's targets (stated for LSTM(40 -> 64) + head in int8 on the Cortex-M3) judged on this result."""
    built = "with" if result["library"].get("extensions", True) else "without"
    rows = [
        ("library_code", result["library"]["code_bytes"], "<=", LIBRARY_CODE_TARGET,
         (f"library code (int8 objects' .text + the libc/libgcc routines they call; {built} the ONNX layer "
          "extensions) <= 4 KiB")),
        ("ram_state_scratch", result["ram"]["state_plus_scratch_bytes"], "<=", RAM_TARGET,
         "RAM for state + scratch <= 1 KiB"),
        ("weights_flash", result["model_const"]["flash_over_raw_params"], "<=", WEIGHTS_FLASH_TARGET,
         "model const flash within 5% of the raw int8 parameter count"),
    ]
    return [{"name": n, "value": value, "comparison": op, "limit": limit, "met": bool(value <= limit),
             "description": d} for n, value, op, limit, d in rows]


def summary_line(result: dict) -> str:
    """One line for a report: the main numbers of a measured footprint."""
    lib, mc, ram, ic = result["library"], result["model_const"], result["ram"], result["icount"]
    return (f"{result['cpu']} ({result['board']}, arm-none-eabi-gcc -Os, QEMU -icount): library code "
            f"{lib['code_bytes']} B (+ {lib['const_bytes']} B sigmoid table) {library_build(lib)}, model const "
            f"{mc['flash_bytes']} B "
            f"({mc['flash_over_raw_params']:.3f} x {mc['raw_int8_params']} raw int8 parameters), RAM state + scratch "
            f"{ram['state_plus_scratch_bytes']} B, stack {ram['stack_used_bytes']} B, "
            f"{ic['per_step_mean']:.0f} instructions per step (mean of {ic['steps']} steps)")


def library_build(library: dict) -> str:
    """Which library a footprint measured, in words: "without the ONNX layer extensions (-DRNNEDGE_EXTENSIONS=0;
    3358 B with them)" or "with the ONNX layer extensions (1954 B without)"."""
    if library.get("extensions", True):
        other = library.get("code_bytes_without_extensions")
        return "with the ONNX layer extensions" + (f" ({other} B without)" if other is not None else "")
    other = library.get("code_bytes_with_extensions")
    return (f"without the ONNX layer extensions ({NO_EXTENSIONS_FLAG}"
            + (f"; {other} B with them)" if other is not None else ")"))


# -- build helpers -------------------------------------------------------------------------------------------


def _make_vars(board: str) -> dict[str, list[str]]:
    """LIB_INT8_SRCS and STRICT_FLAGS (firmware_ref/Makefile), ARM_CPU_<board> and ARM_CFLAGS (arm/arm.mk, which
    the Makefile includes), read from the makefiles themselves."""
    names = {"LIB_INT8_SRCS": "LIB_INT8_SRCS", "STRICT_FLAGS": "STRICT_FLAGS", "ARM_CPU": f"ARM_CPU_{board}",
             "ARM_CFLAGS": "ARM_CFLAGS"}
    recipe = "".join(f"$(info {key}=$({var}))" for key, var in names.items())
    # EXTENSIONS=1 on the command line: an EXTENSIONS variable in the environment cannot change or break the read
    out = run_tool(["make", "-s", "--no-print-directory", "-C", str(FIRMWARE), "EXTENSIONS=1", "--eval",
                    f"_rnnedge_footprint_vars: ; @:{recipe}", "_rnnedge_footprint_vars"], "reading the makefiles")
    values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    result = {key: values.get(key, "").split() for key in names}
    empty = [key for key, value in result.items() if not value]
    if empty:
        raise FootprintError(f"firmware_ref/Makefile defines no {', '.join(empty)}")
    return result


def _compile(cflags: list[str], source: Path, obj: Path) -> None:
    obj.parent.mkdir(parents=True, exist_ok=True)
    run_tool(["arm-none-eabi-gcc", *cflags, "-c", str(source), "-o", str(obj)], f"compiling {source.name}")


def _first_line(command: list[str]) -> str:
    return run_tool(command, command[0]).splitlines()[0]
