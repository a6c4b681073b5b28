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
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

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

# model_data.c's arrays by what they hold (export/firmware.py names them <prefix>_..., the layers <prefix>_l<l>_...)
_KINDS = (
    ("weights", re.compile(r"_(w_ih|w_hh|head_w|embedding)$|_dense\d+_w$")),  # dense<k>: a hidden head layer
    ("biases", re.compile(r"_(b_x|b_hn|head_b)$|_dense\d+_b$")),
    ("requant", re.compile(r"_(mult_x|mult_h|shift_x|shift_h)$|_dense\d+_(mult|shift)$")),
    ("extensions", re.compile(r"_(h0|c0|peep|peep_mult|peep_shift)$")),  # ONNX layer extensions' constants
    ("floats", re.compile(r"_(input_mean|input_std|head_scale)$")),
)


class FootprintError(RuntimeError):
    """The footprint could not be measured (a tool missing, a build or run failing); the message says why."""


def available() -> tuple[bool, str]:
    """(True, "") when every tool is installed, else (False, which are missing)."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return False, f"{', '.join(missing)} not installed"
    return True, ""


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
    _run(["make", "--no-print-directory", "-f", str(ARM_MK), f"ARM_BUILD={build}", f"ARM_NAME={name}",
          f"ARM_BOARD={board}", f"ARM_SRCS={' '.join(str(o) for o in [*objects.values(), model_obj])} {BENCH_SRC}",
          f"ARM_INCLUDES=-I{FIRMWARE / 'include'} -I{src}",
          f"ARM_EXTRA_CFLAGS={' '.join([*v['STRICT_FLAGS'], *defines])} -DBENCH_STEPS={steps}", "arm-image"], "link",
         cwd=ROOT)
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
    image = _berkeley((build / name / f"{name}.size").read_text())
    library = _library(objects, sections)
    other = _unlinked_code_bytes(other_objects, library["helpers"])
    library["extensions"] = extensions
    library["code_bytes_with_extensions"] = library["code_bytes"] if extensions else other
    library["code_bytes_without_extensions"] = other if extensions else library["code_bytes"]
    model_const = _model_const(model_obj, sections)
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


def _run(command: list[str], what: str, cwd=None) -> str:
    try:
        proc = subprocess.run(command, check=False, capture_output=True, text=True, timeout=300, cwd=cwd)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise FootprintError(f"{what}: {e}") from None
    if proc.returncode != 0:
        raise FootprintError(f"{what} failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()[-600:]}")
    return proc.stdout


def _make_vars(board: str) -> dict[str, list[str]]:
    """LIB_INT8_SRCS and STRICT_FLAGS (firmware_ref/Makefile), ARM_CPU_<board> and ARM_CFLAGS (arm/arm.mk, which
    the Makefile includes), read from the makefiles themselves."""
    names = {"LIB_INT8_SRCS": "LIB_INT8_SRCS", "STRICT_FLAGS": "STRICT_FLAGS", "ARM_CPU": f"ARM_CPU_{board}",
             "ARM_CFLAGS": "ARM_CFLAGS"}
    recipe = "".join(f"$(info {key}=$({var}))" for key, var in names.items())
    # EXTENSIONS=1 on the command line: an EXTENSIONS variable in the environment cannot change or break the read
    out = _run(["make", "-s", "--no-print-directory", "-C", str(FIRMWARE), "EXTENSIONS=1", "--eval",
                f"_rnnedge_footprint_vars: ; @:{recipe}", "_rnnedge_footprint_vars"], "reading the makefiles")
    values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    result = {key: values.get(key, "").split() for key in names}
    empty = [key for key, value in result.items() if not value]
    if empty:
        raise FootprintError(f"firmware_ref/Makefile defines no {', '.join(empty)}")
    return result


def _compile(cflags: list[str], source: Path, obj: Path) -> None:
    obj.parent.mkdir(parents=True, exist_ok=True)
    _run(["arm-none-eabi-gcc", *cflags, "-c", str(source), "-o", str(obj)], f"compiling {source.name}")


def _first_line(command: list[str]) -> str:
    return _run(command, command[0]).splitlines()[0]


# -- size readers ---------------------------------------------------------------------------------------------

_MAP_SECTION = re.compile(r"^ (\.\S+|COMMON)(?:\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)\s+(\S.*))?$")
_MAP_PLACEMENT = re.compile(r"^\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)\s+(\S.*)$")
_MAP_SYMBOL = re.compile(r"^\s+0x([0-9a-fA-F]+)\s+([A-Za-z_$][\w.$]*)$")
_ALLOCATED = (".vectors", ".text", ".rodata", ".data", ".bss", ".ARM.exidx", ".ARM.extab")


def parse_map(text: str) -> list[dict]:
    """GNU ld map file -> every input section placed in an allocated output section: {"name", "output",
    "address", "size", "file" (a Path, or "lib.a(member.o)"), "symbols"}. Sections of zero size are left out."""
    start = text.find("Linker script and memory map")
    if start < 0:
        raise FootprintError("the map file has no memory map")
    sections: list[dict] = []
    output = None
    pending = None  # an input section name whose placement is on the next line
    for line in text[start:].splitlines()[1:]:
        if line and not line[0].isspace():
            output = line.split()[0]
            pending = None
            continue
        if output is None or not output.startswith(_ALLOCATED):
            continue
        m = _MAP_SECTION.match(line)
        if m:
            pending = None
            if m.group(2) is None:
                pending = m.group(1)
            else:
                _add_section(sections, m.group(1), output, m.group(2), m.group(3), m.group(4))
            continue
        if pending is not None:
            m = _MAP_PLACEMENT.match(line)
            if m:
                _add_section(sections, pending, output, *m.groups())
            pending = None
            continue
        m = _MAP_SYMBOL.match(line)
        if m and sections and sections[-1]["output"] == output:
            sections[-1]["symbols"].append(m.group(2))
    return sections


def _add_section(sections: list[dict], name: str, output: str, address: str, size: str, file: str) -> None:
    size_bytes = int(size, 16)
    if size_bytes == 0 or file.strip() == "linker stubs":
        return
    file = file.strip()
    sections.append({"name": name, "output": output, "address": int(address, 16), "size": size_bytes,
                     "file": Path(file) if "(" not in file else file, "symbols": []})


def _kind(section: dict) -> str:
    name = section["name"]
    for prefix, kind in ((".text", "text"), (".vectors", "text"), (".rodata", "rodata"), (".data", "data"),
                         (".bss", "bss"), ("COMMON", "bss")):
        if name.startswith(prefix):
            return kind
    return "other"


def _object_sections(obj: Path) -> dict[str, int]:
    """arm-none-eabi-size -A of one object: allocated section sizes by name (debug and notes left out)."""
    out = _run(["arm-none-eabi-size", "-A", str(obj)], "arm-none-eabi-size")
    sizes = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].isdigit() and parts[0].startswith((".text", ".rodata", ".data", ".bss")):
            sizes[parts[0]] = int(parts[1])
    return sizes


def _library(objects: dict[str, Path], sections: list[dict]) -> dict:
    """The int8 library: per object (as compiled, and as linked), its code and const bytes, and the libc/libgcc
    routines it calls."""
    per_object = {}
    for name, obj in objects.items():
        compiled = _object_sections(obj)
        linked = [s for s in sections if s["file"] == obj]
        per_object[name] = {
            "text": sum(v for k, v in compiled.items() if k.startswith(".text")),
            "rodata": sum(v for k, v in compiled.items() if k.startswith(".rodata")),
            "data_bss": sum(v for k, v in compiled.items() if k.startswith((".data", ".bss"))),
            "linked_text": sum(s["size"] for s in linked if _kind(s) == "text"),
            "linked_rodata": sum(s["size"] for s in linked if _kind(s) == "rodata"),
        }
    calls = _external_calls(objects)
    helpers = {}
    for s in sections:
        if isinstance(s["file"], str) and _kind(s) == "text":  # an archive member: libc.a(...), libgcc.a(...)
            for symbol in set(s["symbols"]) & calls:
                helpers[symbol] = s["size"]
    text = sum(o["text"] for o in per_object.values())
    return {
        "objects": per_object,
        "helpers": helpers,
        "helper_bytes": sum(helpers.values()),
        "code_bytes": text + sum(helpers.values()),
        "const_bytes": sum(o["rodata"] for o in per_object.values()),
        "data_bss_bytes": sum(o["data_bss"] for o in per_object.values()),
        "linked_code_bytes": sum(o["linked_text"] for o in per_object.values()),
    }


def _external_calls(objects: dict[str, Path]) -> set[str]:
    """The symbols the objects use but none of them defines (libc/libgcc routines such as memset)."""
    undefined, defined = set(), set()
    for obj in objects.values():
        for line in _run(["arm-none-eabi-nm", str(obj)], "arm-none-eabi-nm").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == "U":
                undefined.add(parts[1])
            elif len(parts) == 3:
                defined.add(parts[2])
    return undefined - defined


def _unlinked_code_bytes(objects: dict[str, Path], helpers: dict[str, int]) -> int | None:
    """code_bytes of library objects that were compiled but not linked: their .text plus the libc/libgcc routines
    they call, sized as the linked image's `helpers`; None when they call one the image does not link."""
    calls = _external_calls(objects)
    if not calls <= set(helpers):
        return None
    text = sum(v for obj in objects.values() for k, v in _object_sections(obj).items() if k.startswith(".text"))
    return text + sum(helpers[name] for name in calls)


def _array_kind(symbol: str) -> str:
    for kind, pattern in _KINDS:
        if pattern.search(symbol):
            return kind
    return "structs"  # <prefix>_layers and <prefix> itself


def _model_const(model_obj: Path, sections: list[dict]) -> dict:
    """model_data.o: const bytes by kind as linked, the arrays it defines (nm -S), and the raw parameter count."""
    arrays = {}
    for line in _run(["arm-none-eabi-nm", "-S", str(model_obj)], "arm-none-eabi-nm").splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "rR":
            arrays[parts[3]] = int(parts[1], 16)
    linked = {}
    for s in sections:
        if s["file"] == model_obj:
            if _kind(s) != "rodata":
                raise FootprintError(f"model_data.o places {s['name']} outside .rodata")
            linked[s["name"].removeprefix(".rodata.")] = s["size"]
    by_kind = {kind: 0 for kind in ("weights", "biases", "requant", "extensions", "structs", "floats")}
    for symbol, size in linked.items():
        by_kind[_array_kind(symbol)] += size
    # PyTorch's parameter count: every matrix (int8, one byte per element), b_ih and b_hh (G each) per layer,
    # the head's biases (hidden layers' too); a layer's G is its b_x length (int32)
    weights = sum(size for symbol, size in arrays.items() if _array_kind(symbol) == "weights")
    layer_biases = sum(2 * (size // 4) for symbol, size in arrays.items() if symbol.endswith("_b_x"))
    head_bias = sum(size // 4 for symbol, size in arrays.items() if re.search(r"_head_b$|_dense\d+_b$", symbol))
    raw = weights + layer_biases + head_bias
    flash = sum(linked.values())
    return {
        "flash_bytes": flash,
        "by_kind": by_kind,
        "object_bytes": sum(arrays.values()),
        "object_float_bytes": sum(size for symbol, size in arrays.items() if _array_kind(symbol) == "floats"),
        "integer_array_bytes": sum(size for symbol, size in arrays.items()
                                   if _array_kind(symbol) in ("weights", "biases", "requant", "extensions")),
        "raw_int8_params": raw,
        "flash_over_raw_params": flash / raw,
        "weight_matrices_over_raw_params": by_kind["weights"] / raw,
    }


def _berkeley(text: str) -> dict:
    """arm-none-eabi-size's Berkeley line (text data bss dec hex filename) -> flash and static RAM."""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 4 and all(p.isdigit() for p in parts[:3]):
            text_b, data, bss = (int(p) for p in parts[:3])
            return {"text": text_b, "data": data, "bss": bss, "flash_bytes": text_b + data,
                    "static_ram_bytes": data + bss}
    raise FootprintError("no size line in the size report")


def environment_disabled() -> str | None:
    """The reason an export should not measure (RNNEDGE_FOOTPRINT=0/off/no), or None."""
    value = os.environ.get("RNNEDGE_FOOTPRINT", "").strip().lower()
    return "disabled by RNNEDGE_FOOTPRINT" if value in ("0", "off", "no", "false") else None
