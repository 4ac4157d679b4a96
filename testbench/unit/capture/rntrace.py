"""A minimal reader of binary verb traces (docs/traces.md): the magic, then a CBOR sequence of
maps. Only what the format uses (unsigned and negative integers, byte and text strings, arrays,
maps) with definite lengths; anything else is an error naming the offset. Debian's python3 has no
CBOR module, and the tests must not depend on one."""
import sys

MAGIC = b"RNTRACE\n"


class TraceError(Exception):
    pass


def _item(b, i):
    if i >= len(b):
        raise TraceError(f"offset {i}: cut in the middle of an item")
    ib = b[i]
    major, info = ib >> 5, ib & 31
    i += 1
    if info < 24:
        v = info
    elif info in (24, 25, 26, 27):
        n = 1 << (info - 24)
        if i + n > len(b):
            raise TraceError(f"offset {i}: cut in the middle of an item")
        v = int.from_bytes(b[i:i + n], "big")
        i += n
    else:
        raise TraceError(f"offset {i - 1}: unsupported CBOR head 0x{ib:02x}")
    if major == 0:
        return v, i
    if major == 1:
        return -1 - v, i
    if major in (2, 3):
        if i + v > len(b):
            raise TraceError(f"offset {i}: cut in the middle of a string")
        s = b[i:i + v]
        return (bytes(s) if major == 2 else s.decode("utf-8")), i + v
    if major == 4:
        out = []
        for _ in range(v):
            x, i = _item(b, i)
            out.append(x)
        return out, i
    if major == 5:
        out = {}
        for _ in range(v):
            k, i = _item(b, i)
            if not isinstance(k, str):
                raise TraceError(f"offset {i}: a map key that is not text")
            if k in out:
                raise TraceError(f"offset {i}: key '{k}' twice")
            x, i = _item(b, i)
            out[k] = x
        return out, i
    raise TraceError(f"offset {i - 1}: unsupported CBOR major type {major}")


def read(path):
    """The records of the trace at `path` (a list of dicts)."""
    b = open(path, "rb").read()
    if not b.startswith(MAGIC):
        raise TraceError(f"{path}: no RNTRACE magic")
    i, recs = len(MAGIC), []
    while i < len(b):
        r, i = _item(b, i)
        if not isinstance(r, dict) or "call" not in r:
            raise TraceError(f"{path}: record {len(recs) + 1} is not a map with 'call'")
        recs.append(r)
    return recs


if __name__ == "__main__":
    for r in read(sys.argv[1]):
        print({k: (v.hex() if isinstance(v, bytes) else v) for k, v in r.items()})
