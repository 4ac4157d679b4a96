#!/usr/bin/python3
"""Configuration errors seen from the command line: `rnicsim check CONFIG [--set k=v]`.

usage: check_config_errors.py RNICSIM REPO_ROOT CASE      (one case; ctest registers each)
       check_config_errors.py RNICSIM REPO_ROOT --list    (the case names)

Each case writes its config files into a temp dir of its own, runs `rnicsim check` and checks the
exit status (2 for a configuration error) and that stderr names the file, the line where there is
one, the key and the bad value. Exit 0: pass, 1: fail, 77: a known issue of the code under test
still present (ctest reports the test as skipped, see SKIP_RETURN_CODE in CMakeLists.txt).
"""
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

RNICSIM = REPO = None
PREFIX = "rnicsim: configuration error: "


class Failure(Exception):
    pass


class KnownIssue(Exception):
    pass


def run(args, cwd):
    env = dict(os.environ, SC_COPYRIGHT_MESSAGE="DISABLE")
    try:
        p = subprocess.run([RNICSIM] + args, cwd=cwd, env=env, capture_output=True, text=True,
                           timeout=120)
    except subprocess.TimeoutExpired:
        raise Failure(f"rnicsim {' '.join(args)} did not finish within 120 s")
    print(f"$ rnicsim {' '.join(args)}\n  exit {p.returncode}\n  stdout: {p.stdout.strip()!r}\n"
          f"  stderr: {p.stderr.strip()!r}")
    return p


def write(d, name, text):
    path = os.path.join(d, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path


def expect_error(d, args, *needles, pattern=None, status=2):
    """rnicsim exits `status` with one configuration error line naming every needle."""
    p = run(args, d)
    if p.returncode < 0:
        raise Failure(f"rnicsim crashed with signal {-p.returncode}")
    if p.returncode != status:
        raise Failure(f"exit status {p.returncode}, expected {status}")
    err = p.stderr
    if status == 2 and PREFIX not in err:
        raise Failure(f"stderr lacks {PREFIX!r}")
    missing = [n for n in needles if n not in err]
    if missing:
        raise Failure(f"stderr does not name: {missing}")
    if pattern and not re.search(pattern, err):
        raise Failure(f"stderr does not match /{pattern}/")
    if p.stdout.strip():
        raise Failure("a failed check printed to stdout")
    return err


def check_file(d, name, text, *needles, pattern=None, extra=()):
    path = write(d, name, text)
    return path, expect_error(d, ["check", path, *extra], path, *needles, pattern=pattern)


CASES = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


@case
def default_config_ok(d):
    for cfg in ["configs/default.toml", "configs/presets/cx5.toml", "configs/presets/back_to_back.toml"]:
        p = run(["check", os.path.join(REPO, cfg)], d)
        if p.returncode != 0:
            raise Failure(f"{cfg}: exit {p.returncode}, expected 0")
        if "OK" not in p.stdout:
            raise Failure(f"{cfg}: no OK on stdout")
    # An empty file is valid: every parameter has a valid default.
    p = run(["check", write(d, "empty.toml", "")], d)
    if p.returncode != 0:
        raise Failure(f"empty config: exit {p.returncode}, expected 0")
    # Valid --set values are accepted, in both spellings.
    p = run(["check", os.path.join(REPO, "configs/default.toml"), "--set", "pcie.gen=4",
             "--set=link.rate=\"25Gbps\"", "--set", "run.workloads=send_bw"], d)
    if p.returncode != 0 or "workloads: send_bw" not in p.stdout:
        raise Failure(f"valid --set: exit {p.returncode}, expected 0 and the workload list")


@case
def unknown_key(d):
    # Section typo: the hint names the key with the same last component.
    check_file(d, "c.toml", '[run]\nworkloads = "write_bw"\n[lnk]\nrate = "100Gbps"\n',
               "c.toml:4", "unknown key 'lnk.rate'", "did you mean: link.rate")
    check_file(d, "c2.toml", '[pcie]\ngeneration = 3\n', "c2.toml:2", "'pcie.generation'")


@case
def bad_unit(d):
    check_file(d, "c.toml", '[link]\nrate = "100Gbs"\n', "c.toml:2", "'link.rate'", "'100Gbs'",
               "Gbps")
    check_file(d, "t.toml", '\n[pcie]\nread_latency = "400"\n', "t.toml:3", "'pcie.read_latency'",
               "'400'", "no unit")
    check_file(d, "s.toml", '[link]\nmtu = "4200 bytes"\n', "s.toml:2", "'link.mtu'", "'4200 bytes'")


@case
def out_of_range(d):
    check_file(d, "c.toml", "[pcie]\ngen = 9\n", "c.toml:2", "'pcie.gen'", "'9'", "[1, 5]")
    check_file(d, "t.toml", '[link]\npropagation_delay = "2s"\n', "t.toml:2",
               "'link.propagation_delay'", "'2s'")
    check_file(d, "z.toml", "[write_bw]\niterations = 0\n", "z.toml:2", "'write_bw.iterations'", "'0'")


@case
def wrong_type(d):
    check_file(d, "str.toml", '[pcie]\nlanes = "sixteen"\n', "str.toml:2", "'pcie.lanes'",
               "'sixteen'", "not an integer")
    check_file(d, "bool.toml", '[pcie]\necrc = "yes"\n', "bool.toml:2", "'pcie.ecrc'", "'yes'")
    check_file(d, "float.toml", "[pcie]\nlanes = 16.5\n", "float.toml:2", "'pcie.lanes'", "'16.5'")
    check_file(d, "time.toml", "[link]\npropagation_delay = 25\n", "time.toml:2",
               "'link.propagation_delay'", "'25'")
    # No text form of an array to quote: file, line and key must be named.
    check_file(d, "array.toml", "[pcie]\nlanes = [16]\n", "array.toml:2", "'pcie.lanes'")
    check_file(d, "choice.toml", '[host]\npage_alloc = "random"\n', "choice.toml:2",
               "'host.page_alloc'", "'random'", "scattered")


@case
def unknown_workload(d):
    check_file(d, "c.toml", '[run]\nworkloads = "write_bw,read_bw"\n', "c.toml:2", "'run.workloads'",
               "'read_bw'", "write_bw, send_bw, write_lat, send_lat")
    check_file(d, "e.toml", '[run]\nworkloads = " , "\n', "e.toml:2", "'run.workloads'")


@case
def cross_link_mtu(d):
    check_file(d, "c.toml", '[link]\nmtu = "1500B"\n', "c.toml:2", "'link.mtu'", "'1500B'", "4096")


@case
def cross_cq_mod(d):
    check_file(d, "c.toml", "[write_bw]\ntx_depth = 64\ncq_mod = 100\n", "c.toml:3",
               "'write_bw.cq_mod'", "'100'", "tx_depth")


@case
def cross_rx_depth(d):
    # SEND workloads: fewer receives than sends in flight would end in RNR NAKs (no retry yet).
    check_file(d, "c.toml", '[run]\nworkloads = "send_bw"\n[send_bw]\nrx_depth = 4\n', "c.toml:4",
               "'send_bw.rx_depth'", "'4'", "send_bw.tx_depth", "RNR")


@case
def cross_slow_link_timeout(d):
    # The messages between two completions must fit in host.driver_timeout.
    check_file(d, "c.toml", '[link]\nrate = "10Mbps"\n', "c.toml:2", "'link.rate'", "'10Mbps'",
               "host.driver_timeout")


@case
def cross_pcie_mps(d):
    check_file(d, "c.toml", '[pcie]\nmps = "300B"\n', "c.toml:2", "'pcie.mps'", "'300B'",
               "128,256,512,1024,2048,4096")
    check_file(d, "l.toml", "[pcie]\nlanes = 3\n", "l.toml:2", "'pcie.lanes'", "'3'")


@case
def cross_latency_qps(d):
    check_file(d, "c.toml", '[run]\nworkloads = "send_lat"\n[send_lat]\nqps = 2\n', "c.toml:4",
               "'send_lat.qps'", "'2'")
    # A rule on a workload that is not run is not checked.
    p = run(["check", write(d, "off.toml", '[run]\nworkloads = "send_bw"\n[send_lat]\nqps = 2\n')], d)
    if p.returncode != 0:
        raise Failure(f"send_lat.qps=2 with send_lat not run: exit {p.returncode}, expected 0")


@case
def cross_rule_names_the_key_set_in_the_file(d):
    # Known issue: when only tx_depth is set (cq_mod keeps its default 100), the message names
    # "default" as the source and the default key, not the file and line the user wrote.
    path = write(d, "c.toml", "[write_bw]\ntx_depth = 50\n")
    expect_error(d, ["check", path], "'write_bw.cq_mod'", "'100'", "50")
    try:
        expect_error(d, ["check", path], path + ":2", "tx_depth")
    except Failure as e:
        raise KnownIssue(f"cross-parameter error does not name the file and line of the key set: {e}")


@case
def pcie_params_checked_later(d):
    # Known issue: System::validate copies only gen/lanes/mps/mrrs/rcb into pcie::Params, so the
    # other PCIe rules (credits, ack/fc limits) fail later, in the bridge, as a generic error
    # (exit 1, "rnicsim: error: ...") without file or line.
    problems = []
    for name, text, key, value in [("pd.toml", "[pcie]\npd_credits = 4\n", "pcie.pd_credits", "'4'"),
                                   ("ack.toml", '[pcie]\nack_limit = "16B"\n', "pcie.ack_limit", "'16B'")]:
        path = write(d, name, text)
        try:
            expect_error(d, ["check", path], path + ":2", "'" + key + "'", value)
        except Failure as e:
            problems.append(f"{name}: {e}")
    if problems:
        raise KnownIssue("; ".join(problems))


@case
def bad_log_category(d):
    # Known issue: sim.log (and --log) are checked only when the System is built, by
    # Logger::enable's std::invalid_argument: exit 1 "rnicsim: error: unknown log category",
    # without file, line or key.
    path = write(d, "c.toml", '[sim]\nlog = "cmd,bogus"\n')
    try:
        expect_error(d, ["check", path], path + ":2", "'sim.log'", "bogus")
    except Failure as e:
        raise KnownIssue(f"bad sim.log is not a configuration error: {e}")


@case
def toml_syntax_error(d):
    check_file(d, "c.toml", "[link\nrate = 1\n", pattern=r"c\.toml:1:\d+: TOML syntax error")
    check_file(d, "v.toml", "[link]\n\nrate = = 1\n", pattern=r"v\.toml:3:8: TOML syntax error")
    check_file(d, "dup.toml", '[pcie]\ngen = 3\ngen = 4\n', pattern=r"dup\.toml:3:\d+: TOML syntax error")


@case
def missing_file(d):
    path = os.path.join(d, "nope.toml")
    expect_error(d, ["check", path], path, "no such file")


@case
def config_is_a_directory(d):
    # Known issue: a directory passes the existence test and parses as an empty document, so
    # `rnicsim check DIR` says OK with every default.
    sub = os.path.join(d, "adir")
    os.makedirs(sub)
    try:
        expect_error(d, ["check", sub], sub)
    except Failure as e:
        raise KnownIssue(f"a directory is accepted as a configuration file: {e}")


@case
def include_errors(d):
    path = write(d, "c.toml", 'include = ["presets/nope.toml"]\n')
    expect_error(d, ["check", path], path, "'include'", "presets/nope.toml", "does not exist")
    a = write(d, "a.toml", 'include = ["b.toml"]\n')
    write(d, "b.toml", 'include = ["a.toml"]\n')
    expect_error(d, ["check", a], "loop")
    # An error inside an included file names that file and its line.
    inner = write(d, "p/inner.toml", "[pcie]\n\ngen = 0\n")
    outer = write(d, "outer.toml", 'include = ["p/inner.toml"]\n')
    expect_error(d, ["check", outer], inner + ":3", "'pcie.gen'", "'0'")
    # Including the real presets works from anywhere.
    ok = write(d, "ok.toml", 'include = ["%s"]\n[pcie]\ngen = 4\n' % os.path.join(REPO, "configs/presets/cx5.toml"))
    p = run(["check", ok], d)
    if p.returncode != 0:
        raise Failure(f"absolute include: exit {p.returncode}, expected 0")


@case
def bad_set(d):
    cfg = os.path.join(REPO, "configs/default.toml")
    expect_error(d, ["check", cfg, "--set", "pcie.gen"], "--set 'pcie.gen'", "key=value")
    expect_error(d, ["check", cfg, "--set", "=3"], "key=value")
    expect_error(d, ["check", cfg, "--set", "pcie.gen=9"], "--set", "'pcie.gen'", "'9'", "[1, 5]")
    expect_error(d, ["check", cfg, "--set", "link.rate=100Gbs"], "--set", "'link.rate'", "'100Gbs'")
    expect_error(d, ["check", cfg, "--set", "lnk.rate=100Gbps"], "--set", "unknown key 'lnk.rate'",
                 "did you mean: link.rate")
    # --set wins over the file, and a cross-parameter error then names --set.
    expect_error(d, ["check", cfg, "--set", 'link.mtu="1500B"'], "--set", "'link.mtu'", "'1500B'")
    # --set with no value at all is a usage error.
    p = run(["check", cfg, "--set"], d)
    if p.returncode != 2 or "--set needs a value" not in p.stderr:
        raise Failure(f"--set without a value: exit {p.returncode}, expected 2 and 'needs a value'")


def expect_ok(d, args, what):
    """rnicsim exits 0 (check: prints OK; run: the report ends with result: OK)."""
    p = run(args, d)
    if p.returncode != 0:
        raise Failure(f"{what}: exit {p.returncode}, expected 0")
    return p


def default_cfg():
    return os.path.join(REPO, "configs/default.toml")


def sets(*kv):
    out = []
    for x in kv:
        out += ["--set", x]
    return out


# Rules that `run` enforces (the driver or the NIC refuses, a wait times out, the run outlasts
# sim.max_time): `check` refuses them first, naming the keys.

@case
def runtime_cq_size(d):
    # The perftest's CQs take qps x max(tx_depth, rx_depth) x 2 entries: more than 4096 QPs at
    # the default depths do not fit a CQ (the driver refused: "create_cq: cqe 4195328").
    cfg = default_cfg()
    bw = sets("run.workloads=write_bw", "write_bw.iterations=1")
    expect_error(d, ["check", cfg, *bw, *sets("write_bw.qps=4097")], "'write_bw.qps'", "'4097'",
                 "write_bw.rx_depth", "nic.max_cqe", "4195328")
    # 65536 x 32768 x 2 overflows 32 bits (the driver saw "cqe 0" or "cqe -2147483648").
    err = expect_error(d, ["check", cfg, *bw, *sets("write_bw.qps=65536", "write_bw.tx_depth=32768",
                                                    "write_bw.rx_depth=32768", "nic.max_qps=65536")],
                       "'write_bw.", "nic.max_cqe", "4294967296")
    if "-2147483648" in err or "cqe 0" in err:
        raise Failure("the CQ size overflowed")
    expect_error(d, ["check", cfg, *bw, *sets("nic.max_cqe=512")], "'nic.max_cqe'", "'512'",
                 "write_bw.qps", "write_bw.rx_depth")
    # Corrected: CQs of 2 x 256 x 2 entries fit 1024.
    expect_ok(d, ["run", cfg, "--no-plots", "--out", os.path.join(d, "out"), *bw,
                  *sets("nic.max_cqe=1024", "write_bw.qps=2", "write_bw.rx_depth=256",
                        "capture.pcap=false")], "corrected CQ size")


@case
def runtime_nic_object_limits(d):
    cfg = default_cfg()
    expect_error(d, ["check", cfg, *sets("nic.max_cqs=1")], "'nic.max_cqs'", "'1'", "2 CQs")
    # A latency test registers two MRs per QP on each host (its send and receive buffers).
    expect_error(d, ["check", cfg, *sets("run.workloads=send_lat", "nic.max_mrs=1")],
                 "'nic.max_mrs'", "'1'", "send_lat.qps", "2 memory regions")
    # A bandwidth test one per QP (the client's source, the server's destination).
    expect_error(d, ["check", cfg, *sets("run.workloads=write_bw", "write_bw.qps=3",
                                         "nic.max_mrs=2")], "'write_bw.qps'", "nic.max_mrs", "3")
    expect_ok(d, ["run", cfg, "--no-plots", "--out", os.path.join(d, "out"),
                  *sets("run.workloads=write_bw", "write_bw.qps=2", "nic.max_mrs=2",
                        "write_bw.iterations=10", "nic.max_cqs=2", "capture.pcap=false")],
              "2 QPs in 2 MRs")
    # The driver rounds a queue up to a power of two; the NIC's largest is within nic.max_qp_wr.
    expect_error(d, ["check", cfg, *sets("run.workloads=write_bw", "write_bw.tx_depth=20000",
                                         "nic.max_qp_wr=20000")],
                 "'write_bw.tx_depth'", "'20000'", "32768", "nic.max_qp_wr")


@case
def runtime_latency_over_driver_timeout(d):
    cfg = default_cfg()
    for key, val, wl in [("link.propagation_delay", "200ms", "write_bw"),
                         ("link.propagation_delay", "60ms", "send_lat"),
                         ("pcie.link_latency", "200ms", "write_bw"),
                         ("host1.pcie.link_latency", "200ms", "send_lat"),
                         ("nic.cmd_latency", "200ms", "write_bw")]:
        expect_error(d, ["check", cfg, *sets("run.workloads=" + wl, f"{key}={val}")],
                     "--set", f"'{key}'", f"'{val}'", "host.driver_timeout")
    # The timeout set in the file is blamed when nothing else was changed.
    path = write(d, "t.toml", '[host]\ndriver_timeout = "2us"\n')
    expect_error(d, ["check", path], path + ":2", "'host.driver_timeout'", "'2us'")
    # Corrected: a timeout above the round trip.
    expect_ok(d, ["run", cfg, "--no-plots", "--out", os.path.join(d, "out"),
                  *sets("run.workloads=send_lat", "link.propagation_delay=60ms",
                        "host.driver_timeout=1s", "send_lat.iterations=3", "send_lat.warmup=0",
                        "capture.pcap=false")], "60 ms propagation, 1 s timeout")


@case
def runtime_sim_max_time(d):
    cfg = default_cfg()
    # 1e7 round trips of at least 3 us: more than the default 10 s.
    expect_error(d, ["check", cfg, *sets("run.workloads=send_lat", "send_lat.iterations=10000000")],
                 "'send_lat.iterations'", "'10000000'", "sim.max_time", "round trips")
    # 1e9 one-byte WRITEs: the client's CPU alone takes 120 s to post them.
    expect_error(d, ["check", cfg, *sets("run.workloads=write_bw", "write_bw.size=1",
                                         "write_bw.iterations=1000000000")],
                 "'write_bw.iterations'", "sim.max_time")
    # The limit set by --set is blamed when the workload comes from the file.
    expect_error(d, ["check", cfg, *sets("sim.max_time=1ms")], "'sim.max_time'", "'1ms'",
                 "write_bw")
    expect_ok(d, ["check", cfg, *sets("run.workloads=send_lat", "send_lat.iterations=10000000",
                                      "sim.max_time=60s")], "1e7 round trips in 60 s")


@case
def blame_the_key_the_user_changed(d):
    # presets/cx5.toml sets link.rate; --set names the message size: the size is blamed.
    expect_error(d, ["check", default_cfg(), *sets("write_bw.size=1GiB")], "--set",
                 "'write_bw.size'", "'1GiB'", "host.driver_timeout")
    # A key of the top file over one of a preset it includes.
    write(d, "p/slow.toml", '[link]\nmtu = "1500B"\n')
    top = write(d, "top.toml", 'include = ["p/slow.toml"]\n[run]\nworkloads = "write_bw"\n'
                '[write_bw]\nmtu = "2048B"\n')
    expect_error(d, ["check", top], top + ":5", "'write_bw.mtu'", "'2048B'", "'link.mtu'",
                 "slow.toml:2")
    # A preset's key over a default.
    only = write(d, "only.toml", 'include = ["p/slow.toml"]\n')
    expect_error(d, ["check", only], "slow.toml:2", "'link.mtu'", "'1500B'")
    # --set over the top file.
    expect_error(d, ["check", top, *sets("link.mtu=1400B")], "--set", "'link.mtu'", "'1400B'",
                 top + ":5")


@case
def size_at_most_2gib(d):
    cfg = default_cfg()
    expect_error(d, ["check", cfg, *sets("write_bw.size=3GiB")], "'write_bw.size'", "'3GiB'",
                 "[0B, 2GiB]")
    doc = open(os.path.join(REPO, "docs/configuration.md")).read()
    row = [l for l in doc.splitlines() if l.startswith("| `send_lat.size`")]
    if not row or "2GiB" not in row[0]:
        raise Failure(f"docs/configuration.md: send_lat.size row does not say 2GiB: {row}")


@case
def memory_over_the_machine(d):
    # 65536 QPs of 2 GiB messages: far more memory than any machine has. Time limits raised so
    # that memory is what is refused.
    err = expect_error(d, ["check", default_cfg(), *sets(
        "run.workloads=write_bw", "write_bw.size=2GiB", "write_bw.qps=65536", "nic.max_qps=65536",
        "nic.max_mrs=1000000", "write_bw.tx_depth=16", "write_bw.rx_depth=16",
        "write_bw.cq_mod=1", "write_bw.iterations=1", "host.driver_timeout=1000s",
        "sim.max_time=10000000s")], "'write_bw.", "write_bw.size", "write_bw.qps", "memory")
    if "bad_alloc" in err:
        raise Failure("bad_alloc")


@case
def latency_histogram_and_capped_csv(d):
    cfg = default_cfg()
    out = os.path.join(d, "out")
    base = ["run", cfg, "--no-plots", "--out", out,
            *sets("run.workloads=write_lat,send_lat", "write_lat.iterations=300",
                  "send_lat.iterations=200", "capture.pcap=false")]
    expect_ok(d, base + sets("capture.latency_csv=50"), "latency run")
    stats = json.load(open(os.path.join(out, "stats.json")))
    for name, n in [("write_lat", 300), ("send_lat", 200)]:
        w = stats["run"]["workloads"][name]
        lat = w["latency_ns"]
        if set(lat) != {"min", "p50", "p90", "p99", "p999", "max", "avg", "samples"}:
            raise Failure(f"{name}: latency_ns keys {sorted(lat)}")
        if lat["samples"] != n:
            raise Failure(f"{name}: {lat['samples']} samples, expected {n}")
        if not lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p999"] <= lat["max"]:
            raise Failure(f"{name}: percentiles out of order: {lat}")
        bins = w["latency_histogram"]["bins_ns"]
        if sum(c for _, c in bins) != n:
            raise Failure(f"{name}: histogram holds {sum(c for _, c in bins)} samples")
        with open(os.path.join(out, f"latency_{name}.csv")) as f:
            rows = list(csv.DictReader(f))
        if len(rows) != 50:
            raise Failure(f"latency_{name}.csv has {len(rows)} rows, expected capture.latency_csv=50")
    # No CSV at all, and none left from the run before.
    expect_ok(d, base + sets("capture.latency_csv=0"), "latency run without CSV")
    if any(f.endswith(".csv") for f in os.listdir(out)):
        raise Failure(f"capture.latency_csv=0 left CSV files: {os.listdir(out)}")


def main():
    global RNICSIM, REPO
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    RNICSIM, REPO, name = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]), sys.argv[3]
    if name == "--list":
        print("\n".join(CASES))
        return 0
    if name not in CASES:
        print(f"unknown case {name}; known: {', '.join(CASES)}")
        return 2
    d = tempfile.mkdtemp(prefix=f"rnicsim_cli_{name}_")
    try:
        CASES[name](d)
    except Failure as e:
        print(f"FAIL {name}: {e}")
        return 1
    except KnownIssue as e:
        print(f"KNOWN ISSUE (skipped) {name}: {e}")
        return 77
    finally:
        shutil.rmtree(d, ignore_errors=True)
    print(f"PASS {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
