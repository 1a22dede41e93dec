"""Turn a saved pytest-benchmark run into the ratio table of benchmarks/RESULTS.md.

    pytest benchmarks --benchmark-only --benchmark-json=run.json
    python benchmarks/report.py run.json [run2.json ...] > table.md

With several runs it first prints each softmax_fast entry's speed-up over the reference run by
run, with the median (the machines here are noisy), then the last run's full table.

For every group (one case), each competitor's median time and its speed-up over the group's
baseline (``reference``) and over each other competitor named in --peers.  For the cases with a
known floor, the floor from the same run's probes and how far the fastest softmax_fast entry is
from it:

* loss_and_grad m x n, K:  max(time to read X once, 4 m n K flops at the measured GEMM rate);
  reading X is scaled from the 200,000 x 100 probe by the size of X
* softmax m x K:           time to copy Z once (read Z, write the result)
"""

import argparse
import json
import sys


def _median(bench):
    return bench["stats"]["median"]


def _impl(bench):
    return (bench.get("params") or {}).get("impl", bench["name"])


def _param(bench, key):
    return (bench.get("params") or {}).get(key)


def floors(benchmarks):
    """Floor seconds per group name, from the 'floor probes' group of the same run."""
    probes = {_param(b, "probe"): _median(b) for b in benchmarks if b["group"] == "floor probes"}
    result = {}
    for dtype in ("float64", "float32"):
        gemm = probes.get(f"gemm 2000^3 {dtype}")
        read_x = probes.get(f"read X 200000x100 {dtype}")
        if gemm is None:
            continue
        rate = 2 * 2000**3 / gemm  # flop/s with all threads
        for m, n, K in ((200_000, 100, 10), (20_000, 256, 1000), (60_000, 784, 10)):
            read = read_x * (m * n) / (200_000 * 100) if read_x else 0.0
            result[f"loss_and_grad {m}x{n} K={K} {dtype}"] = (
                max(read, 4 * m * n * K / rate),
                f"max(read X {read * 1e3:.1f} ms, 4mnK at {rate / 1e9:.0f} GFLOP/s "
                f"{4 * m * n * K / rate * 1e3:.1f} ms)",
            )
    copy = probes.get("copy Z 1000000x10")
    if copy:
        for name in ("softmax", "log_softmax", "cross_entropy_grad"):
            result[f"{name} 1000000x10 float64"] = (copy, f"copy Z once {copy * 1e3:.1f} ms")
            result[f"{name} 1000000x10 float32"] = (
                copy / 2,
                f"copy Z once, half the float64 probe: {copy / 2e-3:.1f} ms",
            )
    return result


def table(benchmarks, baseline="reference"):
    groups = {}
    for bench in benchmarks:
        groups.setdefault(bench["group"], []).append(bench)
    floor_of = floors(benchmarks)
    lines = [
        "| case | implementation | median (ms) | speed-up vs reference | "
        "softmax_fast is ... faster than this | vs softmax_fast 1 thread |",
        "|---|---|---:|---:|---:|---:|",
    ]
    notes = []
    for group in sorted(g for g in groups if g != "floor probes"):
        members = {_impl(b): _median(b) for b in groups[group]}
        base = members.get(baseline)
        ours = members.get("softmax_fast-2t", members.get("softmax_fast"))
        one = members.get("softmax_fast-1t")
        for impl, t in sorted(members.items(), key=lambda kv: kv[1]):
            versus = "" if impl.startswith("softmax_fast") or not ours else f"{t / ours:.2f}x"
            lines.append(
                f"| {group} | {impl} | {t * 1e3:.2f} | "
                f"{f'{base / t:.2f}x' if base else ''} | {versus} | "
                f"{f'{one / t:.2f}x' if one else ''} |"
            )
        if group in floor_of:
            floor, how = floor_of[group]
            fastest = min(t for impl, t in members.items() if impl.startswith("softmax_fast"))
            notes.append(
                f"- {group}: floor {floor * 1e3:.1f} ms ({how}); reference is "
                f"{base / floor:.1f}x the floor, softmax_fast {fastest / floor:.1f}x."
                if base
                else f"- {group}: floor {floor * 1e3:.1f} ms ({how})."
            )
    probes = groups.get("floor probes", [])
    if probes:
        lines.append("")
        lines.append(
            "Floor probes (same run; read X = np.sum and copy Z = np.copyto on one thread, gemm = "
            "np.matmul on all threads): "
            + "; ".join(f"{_param(b, 'probe')} {_median(b) * 1e3:.2f} ms" for b in probes)
        )
    return "\n".join(lines + [""] + notes)


def summary(runs, baseline="reference"):
    """Speed-up over the baseline of every softmax_fast entry, one column a run, and the median."""
    speedups = {}
    for i, benchmarks in enumerate(runs):
        groups = {}
        for bench in benchmarks:
            groups.setdefault(bench["group"], {})[_impl(bench)] = _median(bench)
        for group, members in groups.items():
            base = members.get(baseline)
            for impl, t in members.items():
                if base and impl.startswith("softmax_fast"):
                    speedups.setdefault((group, impl), [None] * len(runs))[i] = base / t
    header = " | ".join(f"run {i + 1}" for i in range(len(runs)))
    lines = [
        f"| case | implementation | {header} | median |",
        "|---|---|" + "---:|" * (len(runs) + 1),
    ]
    for (group, impl), values in sorted(speedups.items()):
        cells = " | ".join(f"{v:.2f}x" if v else "" for v in values)
        present = sorted(v for v in values if v)
        lines.append(f"| {group} | {impl} | {cells} | {present[len(present) // 2]:.2f}x |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "runs", nargs="+", help="JSON files written by --benchmark-json or --benchmark-autosave"
    )
    args = parser.parse_args(argv)
    data = []
    for path in args.runs:
        with open(path) as f:
            data.append(json.load(f))
    machine = data[0].get("machine_info", {})
    cpu = machine.get("cpu", {}).get("brand_raw", "unknown CPU")
    print(
        f"Machine: {cpu}, {machine.get('cpu', {}).get('count', '?')} logical CPUs, "
        f"Python {machine.get('python_version', '?')}; "
        f"runs {', '.join(d.get('datetime', '')[:19] for d in data)}\n"
    )
    if len(data) > 1:
        print("Speed-up over the NumPy reference, run by run:\n")
        print(summary([d["benchmarks"] for d in data]))
        print(f"\nRun {len(data)} in full:\n")
    print(table(data[-1]["benchmarks"]))


if __name__ == "__main__":
    sys.exit(main())
