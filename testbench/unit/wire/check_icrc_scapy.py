#!/usr/bin/python3
"""Independent check of the ICRC of every RoCEv2 frame in a pcap, with Scapy.

Usage: /usr/bin/python3 check_icrc_scapy.py PCAP

For every frame (Ether / IPv4 or IPv6 / UDP dport 4791 / BTH) the ICRC is recomputed twice,
independently of rnicsim's C++ code:
  1. by Scapy itself (scapy.contrib.roce BTH.compute_icrc; IPv4 only in Scapy 2.5),
  2. by a plain zlib implementation of the recipe in roce-v2.md (IPv4 and IPv6),
and compared with the 4 ICRC bytes on the wire. Exits 1 if any differs, if a frame is not
RoCEv2, or if the pcap holds no frame. Needs Debian's Python (/usr/bin/python3), which has scapy.
"""
import struct
import sys
import zlib

from scapy.all import IP, UDP, Ether, IPv6, rdpcap  # noqa: E402
from scapy.contrib.roce import BTH  # noqa: E402


def recipe_icrc(l3: bytes, ipv6: bool) -> bytes:
    """roce-v2.md: CRC-32 over 8 x 0xFF + masked IP/UDP/BTH + rest, LSB first."""
    iplen = 40 if ipv6 else 20
    ip = bytearray(l3[:iplen])
    udp = bytearray(l3[iplen:iplen + 8])
    bth = bytearray(l3[iplen + 8:iplen + 20])
    if ipv6:
        ip[0] |= 0x0F
        ip[1:4] = b"\xff\xff\xff"
        ip[7] = 0xFF
    else:
        ip[1] = 0xFF
        ip[8] = 0xFF
        ip[10:12] = b"\xff\xff"
    udp[6:8] = b"\xff\xff"
    bth[4] = 0xFF
    rest = l3[iplen + 20:]
    return struct.pack("<I", zlib.crc32(b"\xff" * 8 + bytes(ip) + bytes(udp) + bytes(bth) + rest))


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    pkts = rdpcap(sys.argv[1])
    bad = 0
    checked = 0
    for n, pkt in enumerate(pkts, 1):
        raw = bytes(pkt)
        if Ether not in pkt or UDP not in pkt or BTH not in pkt:
            print(f"FAIL frame {n}: not Ether/IP/UDP/BTH: {pkt.summary()}")
            bad += 1
            continue
        ipv6 = IPv6 in pkt
        l3_off = len(raw) - len(bytes(pkt[Ether].payload))
        if ipv6:
            l3_len = 40 + pkt[IPv6].plen
        else:
            l3_len = pkt[IP].len
        l3 = raw[l3_off:l3_off + l3_len]  # drops Ethernet padding
        wire = l3[-4:]
        want_recipe = recipe_icrc(l3[:-4], ipv6)
        bth = pkt[BTH]
        scapy_icrc = struct.pack("!I", bth.icrc)  # Scapy shows the wire bytes read big-endian
        problems = []
        if scapy_icrc != wire:
            problems.append(f"scapy field {scapy_icrc.hex()} != wire {wire.hex()}")
        if want_recipe != wire:
            problems.append(f"recipe {want_recipe.hex()} != wire {wire.hex()}")
        if not ipv6:
            # Scapy's own computation, on a fresh dissection of the frame without padding.
            fresh = Ether(raw[:l3_off + l3_len])
            computed = fresh[BTH].compute_icrc(None)
            if computed != wire:
                problems.append(f"scapy compute_icrc {computed.hex()} != wire {wire.hex()}")
        if problems:
            print(f"FAIL frame {n} opcode 0x{bth.opcode:02x} psn {bth.psn}: " + "; ".join(problems))
            bad += 1
        checked += 1
    print(f"check_icrc_scapy: {sys.argv[1]}: {len(pkts)} frames, {checked} ICRCs checked, "
          f"{bad} bad")
    if len(pkts) == 0 or bad:
        return 1
    print("check_icrc_scapy: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
