"""benchmarks/measure.py: the CPU accounting and the paired statistics (no timing asserts on throughput)."""
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import measure  # noqa: E402

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

SPIN_S = 0.3
# Spins SPIN_S of its own CPU, prints it (user+sys as the child measures it), then waits for stdin to close.
BUSY = ("import sys, time\nwhile time.process_time() < float(sys.argv[1]): pass\n"
        "print(time.process_time(), flush=True)\nsys.stdin.read()\n")


def child(seconds: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", BUSY, str(seconds)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)


def assert_attributed(measured: float, self_measured: float, usage: measure.CpuUsage) -> None:
    """≥ 70 % of what the process itself counted (ticks truncate; generous on a noisy box), ≤ what the cores could
    give in the interval."""
    assert 0.7 * self_measured <= measured <= usage.wall_s * measure.cores() + 0.02


def test_child_that_exits_during_the_interval_counts_in_the_tree():
    meter = measure.CpuMeter()
    start = meter.snapshot()
    proc = child(SPIN_S)
    spent, _ = proc.communicate("")  # it exits and is reaped before the end snapshot: cutime
    usage = meter.snapshot().since(start)
    assert_attributed(usage.total_s, float(spent), usage)
    assert usage.components == {measure.REST: pytest.approx(usage.total_s)}


def test_live_child_tagged_as_component_gets_its_cpu():
    pids: set = set()
    meter = measure.CpuMeter([measure.Component("inference", processes=pids)])
    start = meter.snapshot()
    proc = child(SPIN_S)
    pids.add(proc.pid)
    try:
        spent = float(proc.stdout.readline())  # done spinning, still alive at the end snapshot
        usage = meter.snapshot().since(start)
    finally:
        proc.communicate("")
    assert_attributed(usage.components["inference"], spent, usage)
    assert usage.total_s >= usage.components["inference"]
    assert usage.components[measure.REST] < 0.5 * spent  # the caller only waited


def test_sleeping_child_gets_about_nothing():
    proc = subprocess.Popen([sys.executable, "-c", "import sys; print(flush=True); sys.stdin.read()"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        proc.stdout.readline()  # interpreter start-up is behind us
        meter = measure.CpuMeter([measure.Component("sleeper", processes=measure.cmdline_contains("sys.stdin"))])
        start = meter.snapshot()
        time.sleep(0.3)
        usage = meter.snapshot().since(start)
    finally:
        proc.communicate("")
    assert usage.components["sleeper"] <= 0.02  # two clock ticks


def test_separate_process_is_reported_apart_from_the_tree():
    pids: set = set()
    meter = measure.CpuMeter(separate=[measure.Component("db", processes=pids)])
    start = meter.snapshot()
    proc = child(SPIN_S)
    pids.add(proc.pid)
    try:
        spent = float(proc.stdout.readline())
        usage = meter.snapshot().since(start)
    finally:
        proc.communicate("")
    assert_attributed(usage.separate["db"], spent, usage)
    assert usage.total_s < 0.5 * spent  # left out of the tree: the caller only waited


def test_thread_tagged_as_component_gets_its_cpu():
    spun, release = threading.Event(), threading.Event()
    spent = []

    def spin() -> None:
        while time.thread_time() < SPIN_S:
            pass
        spent.append(time.thread_time())
        spun.set()
        release.wait()  # alive at the end snapshot

    meter = measure.CpuMeter([measure.Component("decode", threads="spin-decode")])
    start = meter.snapshot()
    worker = threading.Thread(target=spin, name="spin-decode_0")
    worker.start()
    try:
        assert spun.wait(30)
        usage = meter.snapshot().since(start)
    finally:
        release.set()
        worker.join()
    assert_attributed(usage.components["decode"], spent[0], usage)
    assert usage.total_s >= usage.components["decode"]


def test_steal_and_idle_are_percentages():
    meter = measure.CpuMeter()
    start = meter.snapshot()
    time.sleep(0.2)
    usage = meter.snapshot().since(start)
    assert 0 <= usage.steal_pct <= 100 and 0 <= usage.idle_pct <= 100
    assert usage.jiffies[0] > 0


def test_spread_and_pair_ratios_on_synthetic_numbers():
    s = measure.spread([1.2, 0.8, 1.0, 0.9, 1.1])
    assert (s.median, s.q1, s.q3, s.n) == pytest.approx((1.0, 0.9, 1.1, 5))
    assert s.iqr == pytest.approx(0.2)
    even = measure.spread([1, 2, 3, 4])  # linear interpolation, as numpy.percentile's default
    assert (even.median, even.q1, even.q3) == pytest.approx((2.5, 1.75, 3.25))
    # The median of per-pair ratios ignores one burst that a ratio of medians would not see as such.
    r = measure.pair_ratios([80, 90, 100, 50, 110], [100, 100, 100, 100, 100])
    assert (r.median, r.q1, r.q3) == pytest.approx((0.9, 0.8, 1.0))
    with pytest.raises(ValueError):
        measure.pair_ratios([1, 2], [1])


def test_interleaving_alternates_who_goes_first():
    order = measure.interleaved_order(["A", "B"], 4)
    assert order == [["A", "B"], ["B", "A"], ["A", "B"], ["B", "A"]]
    assert measure.interleaved_order(["A", "B", "C"], 2) == [["A", "B", "C"], ["C", "B", "A"]]


def test_run_paired_runs_the_same_segment_per_pair_in_abba_order():
    seen: dict = {"A": [], "B": []}
    paths = {name: (lambda chunk, name=name: seen[name].append(list(chunk))) for name in seen}
    result = measure.run_paired(paths, list(range(10)), 3, pairs=20)
    assert result.order == [n for pair in measure.interleaved_order(["A", "B"], 20) for n in pair]
    assert seen["A"] == seen["B"]  # warm-up, then the same segment for both paths of each pair
    assert seen["A"][:4] == [[0, 1, 2], [0, 1, 2], [3, 4, 5], [6, 7, 8]]
    a = result.paths["A"]
    assert (a.items, len(a.segments), result.ratios["B"].n) == (60, 20, 20)
    assert set(a.components_ms_per_item) == {measure.REST} and a.physical_limit is None
    assert result.to_dict()["ratios"]["B"]["n"] == 20
    table = measure.markdown_table(result).splitlines()
    assert len(table) == 4 and table[2].startswith("| A |") and "baseline" in table[2]
    with pytest.raises(ValueError):
        measure.run_paired(paths, list(range(2)), 3)


def test_find_shared_honours_the_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("FIFTYONE_MSLITE_SHARED", str(tmp_path))
    assert measure.shared_path() == tmp_path and measure.find_shared() is None
    (tmp_path / "README.md").write_text("shared\n")
    assert measure.find_shared() == tmp_path
    info = measure.machine_info(["pytest"])
    assert info["cores"] == measure.cores() >= 1 and info["versions"]["pytest"]
    assert str(info["cores"]) in measure.describe_machine(info)


def test_thread_that_ended_inside_the_interval_keeps_its_cpu():
    """A decode pool shut down before the end snapshot (as at the end of an annotate call) is still counted."""
    spent = []

    def spin() -> None:
        while time.thread_time() < SPIN_S:
            pass
        spent.append(time.thread_time())
        time.sleep(3 * measure.THREAD_POLL_S)  # let the poller read the final counter

    meter = measure.CpuMeter([measure.Component("decode", threads="spin-decode")])
    start = meter.snapshot()
    worker = threading.Thread(target=spin, name="spin-decode_1")
    worker.start()
    worker.join()
    usage = meter.snapshot().since(start)
    assert_attributed(usage.components["decode"], spent[0], usage)


@pytest.mark.parametrize("flags, level", [
    ({"sse4_2", "avx", "avx2", "fma", "avx512f"}, "avx512"),
    ({"sse4_2", "avx", "avx2", "fma"}, "avx2"),  # AMD EPYC (Zen 1-3): the CPU of issue 23's slower figures
    ({"sse4_2", "avx", "avx2"}, "avx2 (no fma)"),
    ({"sse4_2", "avx"}, "avx"),
    ({"fp", "asimd"}, "neon"),
    (set(), "baseline"),
])
def test_simd_level_names_the_widest_instruction_set(flags, level):
    assert measure.simd_level(flags) == level


def test_machine_info_records_this_cpus_simd_level():
    info = measure.machine_info()
    assert info["simd"] == measure.simd_level()
    assert set(info["simd_flags"]) <= measure.cpu_flags()
    assert info["simd"].upper() in measure.describe_machine(info)
