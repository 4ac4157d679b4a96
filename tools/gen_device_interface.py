#!/usr/bin/env python3
"""Generate the C++ layouts and the documentation of the rnicsim device interface from its one
source, model/device/device_interface.toml: constants, register offsets, register bit-field
structs (pack/unpack, masks), enums, packed layouts and the WQE geometry helpers.

  gen_device_interface.py            rewrite the generated files
  gen_device_interface.py --check    exit 1 if a checked-in generated file is stale
"""
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "model/device/device_interface.toml"
OUT_H = ROOT / "model/device/device_interface.h"
OUT_MD = ROOT / "docs/device-interface.md"

SIZES = {"u8": 1, "u16": 2, "u32": 4, "u64": 8}
CTYPES = {"u8": "uint8_t", "u16": "uint16_t", "u32": "uint32_t", "u64": "uint64_t"}


def field_type(t):
    m = re.fullmatch(r"(u8|u16|u32|u64)(?:\[(\d+)\])?", t)
    if not m:
        sys.exit(f"{SPEC}: bad field type '{t}'")
    n = int(m.group(2)) if m.group(2) else None
    return m.group(1), n


def layout(s):
    off = 0
    rows = []
    for name, t, desc in s["fields"]:
        base, n = field_type(t)
        size = SIZES[base] * (n or 1)
        if off % SIZES[base]:
            sys.exit(f"{SPEC}: struct {s['name']} field {name} at offset {off} is not naturally aligned")
        rows.append((name, base, n, off, size, desc))
        off += size
    if off != s["size"]:
        sys.exit(f"{SPEC}: struct {s['name']} fields add up to {off} bytes, declared size {s['size']}")
    return rows


def snake(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()


def pascal(name):
    """CQ_DOORBELL -> CqDoorbell, log_size -> LogSize."""
    return "".join(p.capitalize() for p in name.lower().split("_"))


def bit_range(reg, fname, bits):
    """"23:0" -> (23, 0); "31" -> (31, 31)."""
    m = re.fullmatch(r"(\d+)(?::(\d+))?", bits)
    if not m:
        sys.exit(f"{SPEC}: register {reg} field {fname}: bad bits '{bits}' (want 'high:low' or 'bit')")
    hi = int(m.group(1))
    lo = int(m.group(2)) if m.group(2) is not None else hi
    if not 0 <= lo <= hi <= 31:
        sys.exit(f"{SPEC}: register {reg} field {fname}: bits '{bits}' not within 31:0, high first")
    return hi, lo


def reg_fields(r):
    """The bit fields of register r as (name, hi, lo, desc), bit 0 up; [] if it has none."""
    rows = []
    seen = set()
    for fname, bits, desc in r.get("fields", []):
        if not re.fullmatch(r"[a-z][a-z0-9_]*", fname) or fname in ("pack", "unpack") or fname in seen:
            sys.exit(f"{SPEC}: register {r['name']}: bad or repeated field name '{fname}'")
        seen.add(fname)
        hi, lo = bit_range(r["name"], fname, bits)
        if rows and lo <= rows[-1][1]:
            sys.exit(f"{SPEC}: register {r['name']}: field {fname} overlaps or precedes "
                     f"{rows[-1][0]} (list fields from bit 0 up)")
        rows.append((fname, hi, lo, desc))
    return rows


def reset_value(r):
    """A register's `reset` key, checked: required, 32 bits, no reserved bit set, 0 if WO."""
    if "reset" not in r:
        sys.exit(f"{SPEC}: register {r['name']} has no `reset` key")
    v = r["reset"]
    if not isinstance(v, int) or not 0 <= v <= 0xFFFFFFFF:
        sys.exit(f"{SPEC}: register {r['name']}: reset {v!r} is not a 32-bit value")
    if r["access"] == "WO" and v != 0:
        sys.exit(f"{SPEC}: register {r['name']} is write-only: it reads 0 (reset = 0)")
    fields = reg_fields(r)
    if fields and v & reserved_mask(fields):
        sys.exit(f"{SPEC}: register {r['name']}: reset {hex(v)} sets a reserved bit")
    return v


def field_mask(hi, lo):
    return ((1 << (hi - lo + 1)) - 1) << lo


def reserved_mask(fields):
    m = 0
    for _, hi, lo, _ in fields:
        m |= field_mask(hi, lo)
    return 0xFFFFFFFF & ~m


def bit_runs(mask):
    """The runs of set bits of a 32-bit mask, highest first, as (hi, lo)."""
    runs = []
    b = 31
    while b >= 0:
        if mask >> b & 1:
            hi = b
            while b >= 0 and mask >> b & 1:
                b -= 1
            runs.append((hi, b + 1))
        else:
            b -= 1
    return runs


def bits_str(hi, lo):
    return str(hi) if hi == lo else f"{hi}:{lo}"


def struct_sizes(spec):
    return {s["name"]: s["size"] for s in spec["struct"]}


def wqe_geometry(spec):
    """Per [[wqe]] entry: its name, header and entry struct names and sizes, shifts, derived values."""
    sizes = struct_sizes(spec)
    out = []
    for w in spec.get("wqe", []):
        n = w["name"]
        for k in ("header", "entry"):
            if w[k] not in sizes:
                sys.exit(f"{SPEC}: wqe {n}: {k} '{w[k]}' is not a declared struct")
        hdr, ent = sizes[w["header"]], sizes[w["entry"]]
        lo, hi = w["min_shift"], w["max_shift"]
        if not 0 < lo <= hi <= 16 or (1 << lo) < hdr:
            sys.exit(f"{SPEC}: wqe {n}: shifts {lo}..{hi} (want 0 < min <= max <= 16, and the "
                     f"smallest stride to hold the {hdr}-byte header)")
        g = dict(w)
        g.update(header_size=hdr, entry_size=ent, min_bytes=1 << lo, max_bytes=1 << hi,
                 min_sge=((1 << lo) - hdr) // ent, max_sge=((1 << hi) - hdr) // ent,
                 sges=[((1 << s) - hdr) // ent for s in range(lo, hi + 1)])
        # A queue whose WQEs may carry their payload inline: the bytes after the header.
        g.setdefault("inline", False)
        if g["inline"]:
            g.update(min_inline=(1 << lo) - hdr, max_inline=(1 << hi) - hdr,
                     inlines=[(1 << s) - hdr for s in range(lo, hi + 1)])
        out.append(g)
    return out


def substitute(spec):
    """Replace ${key} and ${queue.key} in every description with the value declared in the spec."""
    values = {k: v for k, v in spec["device"].items()}
    for g in wqe_geometry(spec):
        for k in ("min_shift", "max_shift", "min_bytes", "max_bytes", "min_sge", "max_sge",
                  "min_inline", "max_inline"):
            if k in g:
                values[f"{g['name']}.{k}"] = g[k]

    def sub(text):
        def one(m):
            if m.group(1) not in values:
                sys.exit(f"{SPEC}: unknown ${{{m.group(1)}}} in '{text}'")
            v = values[m.group(1)]
            return hex(v) if m.group(2) == ":x" else str(v)
        return re.sub(r"\$\{([A-Za-z0-9_.]+)(:x)?\}", one, text)

    def walk(x):
        if isinstance(x, str):
            return sub(x)
        if isinstance(x, list):
            return [walk(v) for v in x]
        if isinstance(x, dict):
            return {k: walk(v) for k, v in x.items()}
        return x
    return walk(spec)


def gen_bits_struct(r):
    """A register's bit fields as a constexpr struct with pack()/unpack() and masks."""
    fields = reg_fields(r)
    name = pascal(r["name"]) + "Bits"
    o = []
    o.append(f"// {r['name']} ({r['access']}) bit fields.")
    o.append(f"struct {name} {{")
    for fname, hi, lo, desc in fields:
        if hi == lo:
            o.append(f"  // bit {hi}: {desc}")
            o.append(f"  bool {fname} = false;")
        else:
            o.append(f"  // bits {hi}:{lo}: {desc}")
            o.append(f"  uint32_t {fname} = 0;")
    o.append("")
    for fname, hi, lo, desc in fields:
        c = "k" + pascal(fname)
        o.append(f"  static constexpr uint32_t {c}Shift = {lo};")
        o.append(f"  static constexpr uint32_t {c}Width = {hi - lo + 1};")
        o.append(f"  static constexpr uint32_t {c}Max = {hex((1 << (hi - lo + 1)) - 1)};  // largest value")
        o.append(f"  static constexpr uint32_t {c}Mask = {hex(field_mask(hi, lo))};  // in the register")
    o.append(f"  static constexpr uint32_t kFieldsMask = {hex(0xFFFFFFFF & ~reserved_mask(fields))};")
    o.append(f"  // Reserved bits: written as 0 (a write with one set is refused), read as 0.")
    o.append(f"  static constexpr uint32_t kReservedMask = {hex(reserved_mask(fields))};")
    o.append("")
    o.append("  // Every field of a register value; reserved bits are ignored (test kReservedMask).")
    o.append(f"  static constexpr {name} unpack(uint32_t v) {{")
    o.append(f"    {name} b{{}};")
    for fname, hi, lo, desc in fields:
        c = "k" + pascal(fname)
        if hi == lo:
            o.append(f"    b.{fname} = (v & {c}Mask) != 0;")
        else:
            o.append(f"    b.{fname} = (v & {c}Mask) >> {c}Shift;")
    o.append("    return b;")
    o.append("  }")
    o.append("  // The register value; each field keeps its low bits (an index is written modulo its")
    o.append("  // width); reserved bits are 0.")
    o.append("  constexpr uint32_t pack() const {")
    parts = []
    for fname, hi, lo, desc in fields:
        c = "k" + pascal(fname)
        if hi == lo:
            parts.append(f"({fname} ? {c}Mask : 0u)")
        else:
            parts.append(f"(({fname} << {c}Shift) & {c}Mask)")
    o.append(f"    return {' | '.join(parts)};")
    o.append("  }")
    eq = " && ".join(f"a.{f[0]} == b.{f[0]}" for f in fields)
    o.append(f"  friend constexpr bool operator==(const {name}& a, const {name}& b) {{ return {eq}; }}")
    o.append(f"  friend constexpr bool operator!=(const {name}& a, const {name}& b) {{ return !(a == b); }}")
    o.append("};")
    o.append(f"static_assert({name}::unpack(0xffffffffu).pack() == {name}::kFieldsMask, "
             f"\"{name} fields\");")
    o.append("")
    return o


def gen_wqe_geometry(spec):
    o = []
    geo = wqe_geometry(spec)
    if not geo:
        return o
    o.append("// WQE geometry: a WQE is its header followed by num_sge SGEs, in a stride of 2^shift")
    o.append("// bytes chosen per queue at CREATE_QP.")
    for g in geo:
        n, N = g["name"], pascal(g["name"])
        hdr, ent = g["header"], g["entry"]
        o.append(f"// {g['desc']}: {hdr} + num_sge x {ent}.")
        o.append(f"constexpr uint32_t k{N}WqeMinShift = {g['min_shift']};")
        o.append(f"constexpr uint32_t k{N}WqeMaxShift = {g['max_shift']};")
        o.append(f"constexpr uint32_t k{N}WqeMinBytes = uint32_t(1) << k{N}WqeMinShift;")
        o.append(f"constexpr uint32_t k{N}WqeMaxBytes = uint32_t(1) << k{N}WqeMaxShift;")
        o.append(f"// Whether 2^shift bytes is an allowed {n} WQE stride.")
        o.append(f"constexpr bool valid_{n}_wqe_shift(uint32_t shift) {{")
        o.append(f"  return shift >= k{N}WqeMinShift && shift <= k{N}WqeMaxShift;")
        o.append("}")
        o.append(f"// The SGEs a {n} WQE of stride 2^shift holds; 0 if the stride is not allowed.")
        o.append(f"constexpr uint32_t max_{n}_sge(uint32_t shift) {{")
        o.append(f"  return valid_{n}_wqe_shift(shift)")
        o.append(f"             ? static_cast<uint32_t>(((uint32_t(1) << shift) - sizeof({hdr})) / sizeof({ent}))")
        o.append("             : 0;")
        o.append("}")
        o.append(f"constexpr uint32_t kMax{N}Sge = max_{n}_sge(k{N}WqeMaxShift);")
        o.append(f"// The smallest allowed {n} WQE stride shift that holds num_sge SGEs; 0 if none does.")
        o.append(f"constexpr uint8_t {n}_wqe_shift_for(uint32_t num_sge) {{")
        o.append(f"  for (uint32_t s = k{N}WqeMinShift; s <= k{N}WqeMaxShift; ++s)")
        o.append(f"    if (max_{n}_sge(s) >= num_sge) return static_cast<uint8_t>(s);")
        o.append("  return 0;")
        o.append("}")
        o.append(f"static_assert(max_{n}_sge(k{N}WqeMinShift) == {g['min_sge']} && kMax{N}Sge == {g['max_sge']}, "
                 f"\"{n} WQE geometry\");")
        if g["inline"]:
            o.append(f"// Inline payload bytes a {n} WQE of stride 2^shift holds after its header; 0 if the")
            o.append("// stride is not allowed.")
            o.append(f"constexpr uint32_t max_{n}_inline(uint32_t shift) {{")
            o.append(f"  return valid_{n}_wqe_shift(shift)")
            o.append(f"             ? static_cast<uint32_t>((uint32_t(1) << shift) - sizeof({hdr}))")
            o.append("             : 0;")
            o.append("}")
            o.append(f"constexpr uint32_t kMax{N}Inline = max_{n}_inline(k{N}WqeMaxShift);")
            o.append(f"// The smallest allowed {n} WQE stride shift that holds `bytes` of inline payload; 0 if")
            o.append("// none does.")
            o.append(f"constexpr uint8_t {n}_wqe_shift_for_inline(uint32_t bytes) {{")
            o.append(f"  for (uint32_t s = k{N}WqeMinShift; s <= k{N}WqeMaxShift; ++s)")
            o.append(f"    if (max_{n}_inline(s) >= bytes) return static_cast<uint8_t>(s);")
            o.append("  return 0;")
            o.append("}")
            o.append(f"static_assert(max_{n}_inline(k{N}WqeMinShift) == {g['min_inline']} && "
                     f"kMax{N}Inline == {g['max_inline']}, \"{n} WQE inline geometry\");")
        o.append("")
    return o


def gen_header(spec):
    d = spec["device"]
    o = []
    o.append("// GENERATED by tools/gen_device_interface.py from model/device/device_interface.toml.")
    o.append("// Do not edit: change the .toml and regenerate (a test checks this file is fresh).")
    o.append("#pragma once")
    o.append("#include <cstddef>")
    o.append("#include <cstdint>")
    o.append("")
    o.append("// The layouts below are the little-endian wire format of host memory and registers;")
    o.append("// reading them through these structs assumes a little-endian host (x86-64, AArch64).")
    o.append("static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, \"little-endian host required\");")
    o.append("")
    o.append("namespace rn::dev {")
    o.append("")
    for k, v in d.items():
        o.append(f"constexpr uint64_t k{''.join(p.capitalize() for p in k.split('_'))} = {hex(v) if v > 255 else v};")
    o.append("")
    o.append("// BAR0 register offsets.")
    o.append("namespace reg {")
    for r in spec["register"]:
        o.append(f"constexpr uint64_t {r['name']} = {hex(r['offset'])};  // {r['access']}")
    for r in spec["register"]:
        for wname, woff, wdesc in r.get("words", []):
            if woff % 4 or woff >= r.get("stride", 4):
                sys.exit(f"{SPEC}: register {r['name']} word {wname}: offset {woff} not a word of the element")
            o.append(f"// Byte offset of the {wname} word in each {r['name']} element: {wdesc}.")
            o.append(f"constexpr uint64_t {r['name']}_{wname}_WORD = {woff};")
    o.append("// Each register's value after power-on and after a reset (CTRL.reset), as read (a")
    o.append("// write-only register reads 0; an array's every element).")
    for r in spec["register"]:
        o.append(f"constexpr uint32_t {r['name']}_RESET = {hex(reset_value(r))};")
    o.append("// The registers that are not arrays, with their reset values: for a reset test.")
    o.append("struct ResetValue {")
    o.append("  uint64_t offset;")
    o.append("  uint32_t value;")
    o.append("  const char* name;")
    o.append("};")
    o.append("inline constexpr ResetValue kResetValues[] = {")
    for r in spec["register"]:
        if "array" not in r:
            o.append(f"    {{{r['name']}, {r['name']}_RESET, \"{r['name']}\"}},")
    o.append("};")
    o.append("}  // namespace reg")
    o.append("")
    o.append("// Register bit fields (docs/device-interface.md, \"Register bit fields\").")
    o.append("")
    for r in spec["register"]:
        if r.get("fields"):
            o.extend(gen_bits_struct(r))
    for e in spec["enum"]:
        o.append(f"// {e['desc']}")
        o.append(f"enum class {e['name']} : uint32_t {{")
        for name, val, desc in e["values"]:
            c = f"  // {desc}" if desc else ""
            o.append(f"  {name} = {hex(val) if val > 9 else val},{c}")
        o.append("};")
        o.append(f"const char* to_string({e['name']} v);")
        o.append("")
    o.append("#pragma pack(push, 1)")
    for s in spec["struct"]:
        rows = layout(s)
        o.append(f"// {s['desc']}")
        o.append(f"struct {s['name']} {{")
        for name, base, n, off, size, desc in rows:
            arr = f"[{n}]" if n else ""
            c = f"  // +{off}" + (f" {desc}" if desc else "")
            o.append(f"  {CTYPES[base]} {name}{arr};{c}")
        o.append("};")
        o.append(f"static_assert(sizeof({s['name']}) == {s['size']}, \"{s['name']} size\");")
        for name, base, n, off, size, desc in rows:
            o.append(f"static_assert(offsetof({s['name']}, {name}) == {off}, \"{s['name']}.{name} offset\");")
        o.append("")
    o.append("#pragma pack(pop)")
    o.append("")
    o.extend(gen_wqe_geometry(spec))
    o.append("}  // namespace rn::dev")
    o.append("")
    return "\n".join(o)


def gen_enum_strings(spec):
    o = ["// GENERATED by tools/gen_device_interface.py from model/device/device_interface.toml.",
         "#include \"model/device/device_interface.h\"", "", "namespace rn::dev {", ""]
    for e in spec["enum"]:
        o.append(f"const char* to_string({e['name']} v) {{")
        o.append("  switch (v) {")
        seen = set()
        for name, val, _ in e["values"]:
            if val in seen:
                continue
            seen.add(val)
            o.append(f"    case {e['name']}::{name}: return \"{name}\";")
        o.append("  }")
        o.append("  return \"?\";")
        o.append("}")
        o.append("")
    o.append("}  // namespace rn::dev")
    o.append("")
    return "\n".join(o)


def gen_md(spec):
    d = spec["device"]
    o = []
    o.append("<!-- GENERATED by tools/gen_device_interface.py from model/device/device_interface.toml: do not edit. -->")
    o.append(f"# rnicsim device interface, version {d['version']}")
    o.append("")
    o.append("The contract between a driver and the simulated NIC: BAR0 registers and doorbells, the command")
    o.append("interface, and the formats of work queue entries, completions and events in host memory. It is")
    o.append("generated from `model/device/device_interface.toml`, the same source as the C++ layouts in")
    o.append("`model/device/device_interface.h` that the NIC model, the driver and the tests use.")
    o.append("")
    o.append("All multi-byte fields are little-endian. Reserved fields are written as zero and ignored.")
    o.append("")
    o.append("## Identity and constants")
    o.append("| constant | value |\n|---|---|")
    for k, v in d.items():
        o.append(f"| `{k}` | `{hex(v)}` ({v}) |")
    o.append("")
    o.append("## How a driver uses the device")
    o.append("""1. Read `ID` and `VERSION` once (MMIO reads are round trips: about a microsecond).
2. Commands: write a `CmdIn` at a 64-byte-aligned host address A, clear the `CmdOut.token` at A+64,
   write A to `CMD_ADDR_LO/HI`, then write a token to `CMD_DOORBELL`. The device reads the `CmdIn` by
   DMA, executes it, and writes the whole `CmdOut` by one DMA write; the driver polls host memory until
   `CmdOut.token` equals its token, then reads `status`. One command runs at a time.
3. Objects: `CREATE_PD`, `CREATE_MR` (the driver pins the pages and writes the page list), `CREATE_CQ`
   and `CREATE_QP` (rings in physically contiguous host memory, zeroed), then `MODIFY_QP`
   RESET -> INIT -> RTR -> RTS with the attributes the InfiniBand specification requires.
4. Posting: write WQEs into the ring at index `pi % size`, then write the new free-running producer
   index to the QP's doorbell (`QP_DOORBELL + 8*qpn`, +0 send, +4 receive). One doorbell may cover many
   WQEs. The device fetches WQEs by DMA.
5. Completions: the device writes `Cqe`s into the CQ ring with the phase bit (see `Cqe`). The driver
   polls host memory, and tells the device its consumer index through `CQ_DOORBELL` (at least every
   half ring, so the device can detect overrun). A send CQE's `wqe_counter` tells the driver that
   this WQE and every earlier one of that QP are finished, signaled or not.
6. Events: set `EQ_ADDR`, `EQ_LOG_SIZE`, the MSI-X vector registers, clear `MSIX_CTRL.masked`. Arm a CQ
   with `CQ_DOORBELL.arm`: the next completion on it writes an `Eqe` (COMPLETION, obj = CQN) and,
   if the EQ is armed (`EQ_DOORBELL.arm`), sends the MSI-X message (a 4-byte posted write of
   `MSIX_DATA` to `MSIX_ADDR`). Arming is one-shot, as `ibv_req_notify_cq`.
7. Errors: a write the device refuses leaves host memory untouched and sets `ERR_CODE`/`ERR_INFO`;
   a bad command returns a `CmdStatus` with the offending field's offset in `syndrome`.
8. Version 2 (read `CAPS` once `VERSION` is 2 or more; a version-1 driver never reads it and never
   meets what follows). With `CAPS.inline_data`, a send WQE may carry its payload inline: set
   `WqeFlags.INLINE`, `num_sge` 0, `inline_len` and the bytes right after the header (at most
   `CAPS.max_inline_data`, and what the QP's stride holds: `max_send_inline(sq_wqe_shift)`). The
   device then neither translates nor reads the payload: it sends the bytes it has. With
   `CAPS.wqe_doorbell`, a driver that posts one send WQE may, in place of step 4's doorbell, write
   the WQE (its used bytes, rounded up to 64, with `wqe_index` set) as one write-combined burst to
   the QP's `WQE_DOORBELL` area: that is its doorbell, and the device takes the WQE from it instead
   of fetching it. The WQE must be in the send queue too (written before the burst): the device
   fetches it from there whenever it cannot use the copy it was given, and when it goes back to
   resend.
9. Device control (`CAPS.device_control`; a driver may ignore it all: the device comes out of
   reset enabled and ready). At open, write `DRIVER_VERSION` and read it back (the handshake);
   to start from a clean device, write `CTRL.reset` and poll `STATUS.ready` first. The sections
   below give the rules a driver must follow beyond the layouts: reset, enable and quiesce,
   capabilities, command timeouts and abort, memory ordering, event queue overflow, interrupt
   moderation (`CAPS.eq_moderation`) and doorbell pages.
""")
    for sec in spec.get("section", []):
        o.append(f"## {sec['title']}")
        o.append(sec["text"].strip("\n"))
        o.append("")
    o.append("## BAR0 registers")
    o.append("| offset | name | access | reset | description |\n|---|---|---|---|---|")
    for r in spec["register"]:
        off = hex(r["offset"])
        if "array" in r:
            off += f" + {r['stride']}*n (n < {d[r['array']]})"
        desc = r["desc"]
        if r.get("words"):
            desc += " Words: " + "; ".join(f"+{woff} `{wn}`, {wd}" for wn, woff, wd in r["words"]) + "."
        if r.get("fields"):
            desc += f" [Bit fields](#{r['name'].lower()})."
        o.append(f"| `{off}` | `{r['name']}` | {r['access']} | `{hex(reset_value(r))}` | {desc} |")
    o.append("")
    o.append("## Register reset values")
    o.append("Every register's value after power-on and after a reset (`CTRL.reset`), as the driver")
    o.append("reads it (a write-only register reads 0). In C++: `dev::reg::<NAME>_RESET`, and")
    o.append("`dev::reg::kResetValues` for the registers that are not arrays (a test reads each after a")
    o.append("reset and compares).")
    o.append("")
    o.append("| name | offset | reset | fields at reset |\n|---|---|---|---|")
    for r in spec["register"]:
        v = reset_value(r)
        fields = reg_fields(r)
        fs = ", ".join(f"`{n}` = {(v & field_mask(hi, lo)) >> lo}" for n, hi, lo, _ in fields)
        o.append(f"| `{r['name']}` | `{hex(r['offset'])}` | `{hex(v)}` | {fs or '—'} |")
    o.append("")
    o.append("## Register bit fields")
    o.append("Bits not in a field are reserved: written as 0 (a write with one set is refused with")
    o.append("`BAD_VALUE`, and changes nothing) and read as 0. A one-bit field is a flag. In C++, each")
    o.append("register below has a `dev::<Name>Bits` struct (for example `CqDoorbellBits`): its fields,")
    o.append("`unpack(uint32_t)`, `pack()`, and per field `k<Field>Shift`, `k<Field>Width`, `k<Field>Max`")
    o.append("and `k<Field>Mask`, plus `kFieldsMask` and `kReservedMask`.")
    o.append("")
    for r in spec["register"]:
        fields = reg_fields(r)
        if not fields:
            continue
        o.append(f"### {r['name']}")
        o.append(f"`{hex(r['offset'])}`, {r['access']}; C++ `dev::{pascal(r['name'])}Bits`.")
        o.append("")
        o.append("| bits | field | meaning |\n|---|---|---|")
        rows = [(hi, lo, f"`{n}`", desc) for n, hi, lo, desc in fields]
        rsv = "reserved: read as 0" if r["access"] == "RO" else "reserved: write 0"
        rows += [(hi, lo, "—", rsv) for hi, lo in bit_runs(reserved_mask(fields))]
        for hi, lo, n, desc in sorted(rows, reverse=True):
            o.append(f"| {bits_str(hi, lo)} | {n} | {desc} |")
        o.append("")
    o.append("## Enumerations")
    for e in spec["enum"]:
        o.append(f"### {e['name']}")
        o.append(e["desc"])
        o.append("")
        o.append("| name | value | meaning |\n|---|---|---|")
        for name, val, desc in e["values"]:
            o.append(f"| `{name}` | `{hex(val)}` | {desc} |")
        o.append("")
    geo = wqe_geometry(spec)
    if geo:
        o.append("## WQE geometry")
        o.append("A WQE is its header followed by `num_sge` scatter/gather entries, in a stride of 2^shift")
        o.append("bytes chosen per queue at `CREATE_QP`. In C++: `k<Queue>WqeMinShift`, `k<Queue>WqeMaxShift`,")
        o.append("`k<Queue>WqeMinBytes`, `k<Queue>WqeMaxBytes`, `kMax<Queue>Sge`, `valid_<queue>_wqe_shift(shift)`,")
        o.append("`max_<queue>_sge(shift)` and `<queue>_wqe_shift_for(num_sge)` (the smallest stride that holds")
        o.append("them), for the queues `send` and `recv`. A queue whose WQEs may carry inline payload also")
        o.append("has `kMax<Queue>Inline`, `max_<queue>_inline(shift)` (the bytes after the header) and")
        o.append("`<queue>_wqe_shift_for_inline(bytes)`.")
        o.append("")
        o.append("| queue | layout | stride shift | stride bytes | SGEs per stride | inline bytes per stride |\n"
                 "|---|---|---|---|---|---|")
        for g in geo:
            sg = ", ".join(str(x) for x in g["sges"])
            il = ", ".join(str(x) for x in g["inlines"]) if g["inline"] else "—"
            o.append(f"| `{g['name']}`: {g['desc']} | `{g['header']}` ({g['header_size']} B) + "
                     f"`num_sge` × `{g['entry']}` ({g['entry_size']} B) | {g['min_shift']}..{g['max_shift']} | "
                     f"{g['min_bytes']}..{g['max_bytes']} | {sg} | {il} |")
        o.append("")
    o.append("## Layouts")
    for s in spec["struct"]:
        o.append(f"### {s['name']} ({s['size']} bytes)")
        o.append(s["desc"])
        o.append("")
        o.append("| offset | field | type | description |\n|---|---|---|---|")
        for name, base, n, off, size, desc in layout(s):
            t = base + (f"[{n}]" if n else "")
            o.append(f"| {off} | `{name}` | {t} | {desc} |")
        o.append("")
    return "\n".join(o)


def clang_format(text, name):
    """The generated C++ follows .clang-format like every other file (check_format.sh)."""
    r = subprocess.run(["clang-format", "--style=file", f"--assume-filename={ROOT / name}"],
                       input=text, capture_output=True, text=True, check=True, cwd=ROOT)
    return r.stdout


def main():
    spec = substitute(tomllib.loads(SPEC.read_text()))
    outputs = {
        OUT_H: clang_format(gen_header(spec), "model/device/device_interface.h"),
        ROOT / "model/device/device_interface_strings.cpp":
            clang_format(gen_enum_strings(spec), "model/device/device_interface_strings.cpp"),
        OUT_MD: gen_md(spec),
    }
    if "--check" in sys.argv:
        stale = [str(p.relative_to(ROOT)) for p, text in outputs.items()
                 if not p.exists() or p.read_text() != text]
        if stale:
            print("stale generated files (run tools/gen_device_interface.py):", ", ".join(stale))
            return 1
        print("device interface: generated files are fresh")
        return 0
    for p, text in outputs.items():
        if p.exists() and p.read_text() == text:
            continue  # unchanged: keep its time stamp (no rebuild of what includes it)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        print("wrote", p.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
