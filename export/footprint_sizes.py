"""The sizes of a footprint build (export/footprint.py): GNU ld's map file (parse_map), the int8 library's objects
(library_sizes, unlinked_code_bytes: arm-none-eabi-size -A and -nm), model_data.o's const arrays by kind
(model_const_sizes: nm -S and the map) and the image's Berkeley size line (image_sizes). Failures raise
FootprintError."""

from __future__ import annotations

import re
from pathlib import Path

from rnnedge.export.footprint_tools import FootprintError, run_tool

# model_data.c's arrays by what they hold (export/firmware.py names them <prefix>_..., the layers <prefix>_l<l>_...)
_KINDS = (
    ("weights", re.compile(r"_(w_ih|w_hh|head_w|embedding)$|_dense\d+_w$")),  # dense<k>: a hidden head layer
    ("biases", re.compile(r"_(b_x|b_hn|head_b)$|_dense\d+_b$")),
    ("requant", re.compile(r"_(mult_x|mult_h|shift_x|shift_h)$|_dense\d+_(mult|shift)$")),
    ("extensions", re.compile(r"_(h0|c0|peep|peep_mult|peep_shift)$")),  # ONNX layer extensions' constants
    ("floats", re.compile(r"_(input_mean|input_std|head_scale)$")),
)

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
    out = run_tool(["arm-none-eabi-size", "-A", str(obj)], "arm-none-eabi-size")
    sizes = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].isdigit() and parts[0].startswith((".text", ".rodata", ".data", ".bss")):
            sizes[parts[0]] = int(parts[1])
    return sizes


def library_sizes(objects: dict[str, Path], sections: list[dict]) -> dict:
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
        for line in run_tool(["arm-none-eabi-nm", str(obj)], "arm-none-eabi-nm").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == "U":
                undefined.add(parts[1])
            elif len(parts) == 3:
                defined.add(parts[2])
    return undefined - defined


def unlinked_code_bytes(objects: dict[str, Path], helpers: dict[str, int]) -> int | None:
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


def model_const_sizes(model_obj: Path, sections: list[dict]) -> dict:
    """model_data.o: const bytes by kind as linked, the arrays it defines (nm -S), and the raw parameter count."""
    arrays = {}
    for line in run_tool(["arm-none-eabi-nm", "-S", str(model_obj)], "arm-none-eabi-nm").splitlines():
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


def image_sizes(text: str) -> dict:
    """arm-none-eabi-size's Berkeley line (text data bss dec hex filename) -> flash and static RAM."""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 4 and all(p.isdigit() for p in parts[:3]):
            text_b, data, bss = (int(p) for p in parts[:3])
            return {"text": text_b, "data": data, "bss": bss, "flash_bytes": text_b + data,
                    "static_ram_bytes": data + bss}
    raise FootprintError("no size line in the size report")
