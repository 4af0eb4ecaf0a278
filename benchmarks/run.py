"""Run every benchmark, rtnb and its peers side by side, and write the results.

What it measures (each server on one core, the Node load generator on the other):

* WebSocket fan-out, delivered messages/s, 1 publisher -> N subscribers,
  N = 100 and 1000, ~100-byte JSON payloads: rtnb, the classic Tornado loop,
  ``websockets`` broadcast(), python-socketio, and the raw asyncio ceiling;
* publish->deliver latency p50/p99 at 200 messages/s to 100 subscribers;
* SSE fan-out: rtnb's ``GET /sse`` against sse-starlette on uvicorn;
* memory per idle WebSocket connection, 10,000 connections per server.

Every point is measured ``--runs`` times (3 by default), the runs interleaved
so that a disturbance on a shared machine spreads over all servers; tables
give the median with min-max. It prints one table with the ratios, and
writes ``results/results.json`` (every run, the machine, versions),
``results/summary.md`` (the tables) and ``results/fanout.png`` (the plot).

    python benchmarks/run.py            # everything, about 10 minutes on 2 cores
    python benchmarks/run.py --quick    # one short run of each, to try the setup
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fanout import PAYLOAD_BYTES, default_loop, measure_latency, measure_throughput, server_nanoseconds_per_message
from harness import LOADGEN, ROOT, SERVERS, ensure_loadgen, machine_busy_seconds, raise_open_file_limit
from memory import measure_idle_memory

WS_SERVERS = ["rtnb", "raw", "websockets", "tornado", "socketio"]
SSE_SERVERS = ["rtnb-sse", "sse-starlette"]
LATENCY_SERVERS = ["rtnb", "raw", "websockets", "tornado", "socketio", "rtnb-sse", "sse-starlette"]
MEMORY_SERVERS = ["rtnb", "websockets", "tornado", "raw"]
#: memory is measured --runs times for these (the target pair), once for the others
MEMORY_TARGETS = {"rtnb", "websockets"}
RESULTS = ROOT / "results"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class QuietWaiter:
    """Waits, within a total budget, for other jobs on a shared machine to calm down."""

    def __init__(self, budget: float, threshold: float = 0.3) -> None:
        self.budget = budget
        self.threshold = threshold
        self.waited = 0.0

    def __call__(self, max_wait: float = 8.0) -> float:
        """Block until the machine is nearly idle (or the budget is spent); returns its load."""
        deadline = time.monotonic() + min(max_wait, max(0.0, self.budget - self.waited))
        start = time.monotonic()
        while True:
            before = machine_busy_seconds()
            time.sleep(0.3)
            load = (machine_busy_seconds() - before) / 0.3
            if load < self.threshold or time.monotonic() >= deadline:
                self.waited += time.monotonic() - start
                return load


def attempt(label: str, measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """One measurement; a failure is recorded (and shown) instead of ending the whole run."""
    try:
        return measure()
    except (RuntimeError, OSError) as error:
        log(f"  {label}: FAILED: {error}")
        return {"error": str(error)}


def describe_machine(loop: str) -> dict[str, Any]:
    def version(package: str) -> str | None:
        from importlib import metadata

        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    cpu_model = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as meminfo:
        memory_kib = int(meminfo.readline().split()[1])
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    ws_version = json.loads((LOADGEN / "node_modules" / "ws" / "package.json").read_text())["version"]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout
    changed = subprocess.run(
        ["git", "status", "--porcelain", "--", "rtnb"], capture_output=True, text=True, cwd=ROOT.parent
    ).stdout.strip()
    if changed:
        commit = commit.strip() + " + uncommitted changes in rtnb/"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_model,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kib / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": node,
        "event_loop": loop,
        "git_commit": commit.strip(),
        "packages": {
            name: version(name)
            for name in (
                "rtnb",
                "tornado",
                "websockets",
                "python-socketio",
                "aiohttp",
                "sse-starlette",
                "uvicorn",
                "starlette",
                "uvloop",
                "orjson",
            )
        }
        | {"ws (npm)": ws_version},
    }


def spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def collect(runs: list[dict[str, Any]], key: str) -> dict[str, float] | None:
    return spread([run[key] for run in runs if key in run and run[key] is not None])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs of every measurement (default: 3)")
    parser.add_argument("--subscribers", type=int, nargs="+", default=[100, 1000], help="N values (default: 100 1000)")
    parser.add_argument("--duration", type=float, default=3.0, help="measured seconds per throughput point")
    parser.add_argument("--window", type=int, default=200, help="messages in flight in the closed loop")
    parser.add_argument("--idle-connections", type=int, default=10_000, help="connections of the memory test")
    parser.add_argument(
        "--loop", choices=("asyncio", "uvloop"), default=default_loop(), help="event loop of every server"
    )
    parser.add_argument("--quick", action="store_true", help="1 run, N=100, 1 s points, 1000 idle connections")
    parser.add_argument("--skip-memory", action="store_true", help="leave out the idle-connection test")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where results go (default: benchmarks/results)")
    parser.add_argument(
        "--render", type=Path, metavar="RESULTS_JSON", help="only redo summary.md and the plot from a results.json"
    )
    arguments = parser.parse_args(argv)
    if arguments.render is not None:
        results = json.loads(arguments.render.read_text())
        results["summary"] = summarize(results)
        summary = render_summary(results)
        (arguments.render.parent / "summary.md").write_text(summary)
        plot(results, arguments.render.parent / "fanout.png")
        print(summary)
        return 0
    if arguments.quick:
        arguments.runs, arguments.subscribers, arguments.duration, arguments.idle_connections = 1, [100], 1.0, 1000
    ensure_loadgen()
    raise_open_file_limit(arguments.idle_connections + 1000)
    started = time.monotonic()
    quiet = QuietWaiter(budget=60.0 if not arguments.quick else 5.0)
    loop = arguments.loop
    results: dict[str, Any] = {
        "machine": describe_machine(loop),
        "settings": {
            "runs": arguments.runs,
            "subscribers": arguments.subscribers,
            "duration_seconds": arguments.duration,
            "window": arguments.window,
            "payload_bytes": PAYLOAD_BYTES,
            "latency_rate": 200,
            "latency_subscribers": 100,
            "idle_connections": arguments.idle_connections,
        },
        "throughput": {name: {str(n): [] for n in arguments.subscribers} for name in WS_SERVERS + SSE_SERVERS},
        "latency": {name: [] for name in LATENCY_SERVERS},
        "memory": {name: [] for name in MEMORY_SERVERS},
    }
    for run in range(1, arguments.runs + 1):
        log(f"== run {run}/{arguments.runs} ({time.monotonic() - started:.0f}s elapsed)")
        for subscribers in arguments.subscribers:
            for name in WS_SERVERS + SSE_SERVERS:
                load = quiet()
                result = attempt(
                    f"{name} N={subscribers}",
                    lambda name=name, subscribers=subscribers: measure_throughput(
                        SERVERS[name], subscribers, loop=loop, duration=arguments.duration, window=arguments.window
                    ),
                )
                result["load_before"] = load
                results["throughput"][name][str(subscribers)].append(result)
                if "delivered_per_second" in result:
                    log(
                        f"  {name:<14} N={subscribers:<5} {result['delivered_per_second']:>12,.0f} msg/s  "
                        f"server {result.get('server_cpu', 0):.0%} loadgen {result['loadgen_cpu']:.0%} "
                        f"other {result.get('other_cpu', 0):.0%}"
                    )
        for name in LATENCY_SERVERS:
            quiet()
            result = attempt(
                f"{name} latency", lambda name=name: measure_latency(SERVERS[name], 100, loop=loop, rate=200.0)
            )
            results["latency"][name].append(result)
            if "p99_ms" in result:
                log(f"  {name:<14} latency p50 {result['p50_ms']:.2f} ms  p99 {result['p99_ms']:.2f} ms")
        if not arguments.skip_memory:
            for name in MEMORY_SERVERS:
                if run > 1 and name not in MEMORY_TARGETS:
                    continue
                quiet()
                result = attempt(
                    f"{name} memory",
                    lambda name=name: measure_idle_memory(SERVERS[name], arguments.idle_connections, loop=loop),
                )
                results["memory"][name].append(result)
                if "bytes_per_connection" in result:
                    log(f"  {name:<14} {result['bytes_per_connection'] / 1024:.1f} KiB per idle connection")
    results["elapsed_seconds"] = round(time.monotonic() - started, 1)
    results["quiet_wait_seconds"] = round(quiet.waited, 1)
    results["summary"] = summarize(results)
    arguments.output.mkdir(parents=True, exist_ok=True)
    (arguments.output / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    summary = render_summary(results)
    (arguments.output / "summary.md").write_text(summary)
    plot(results, arguments.output / "fanout.png")
    print(summary)
    log(f"wrote {arguments.output}/results.json, summary.md, fanout.png in {results['elapsed_seconds']:.0f}s")
    return 0


# -- summary ---------------------------------------------------------------------------------


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    summary: dict[str, Any] = {"throughput": {}, "latency": {}, "memory": {}}
    summary["cpu_per_message"] = {}
    for name, by_n in results["throughput"].items():
        summary["throughput"][name] = {n: collect(runs, "delivered_per_second") for n, runs in by_n.items()}
        summary["cpu_per_message"][name] = {
            n: spread([server_nanoseconds_per_message(run) for run in runs if run.get("server_cpu")])
            for n, runs in by_n.items()
        }
    for name, runs in results["latency"].items():
        summary["latency"][name] = {"p50_ms": collect(runs, "p50_ms"), "p99_ms": collect(runs, "p99_ms")}
    for name, runs in results["memory"].items():
        summary["memory"][name] = collect(runs, "bytes_per_connection")
    return summary


def _median(value: dict[str, float] | None) -> float | None:
    return None if value is None else value["median"]


def _ratio(numerator: float | None, denominator: float | None) -> str:
    if numerator is None or not denominator:
        return "n/a"
    return f"{numerator / denominator:.2f}x"


def _cell(value: dict[str, float] | None, scale: float = 1.0, digits: int = 0) -> str:
    if value is None:
        return "failed"
    return (
        f"{value['median'] / scale:,.{digits}f} ({value['min'] / scale:,.{digits}f}-{value['max'] / scale:,.{digits}f})"
    )


def _median_other_cpu(results: dict[str, Any]) -> float:
    values = [
        point["other_cpu"]
        for by_n in results["throughput"].values()
        for runs in by_n.values()
        for point in runs
        if "other_cpu" in point
    ]
    return statistics.median(values) if values else 0.0


def render_summary(results: dict[str, Any]) -> str:
    summary = results["summary"]
    machine = results["machine"]
    settings = results["settings"]
    ns = [str(n) for n in settings["subscribers"]]
    lines = [
        "# rtnb fan-out benchmark",
        "",
        f"{machine['date']}: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB, "
        f"Linux {machine['kernel']}, Python {machine['python']}, Node {machine['node']}, "
        f"event loop {machine['event_loop']} for every Python server, git {machine['git_commit']}.",
        f"Server pinned to one core, Node load generator (ws {machine['packages']['ws (npm)']}) to the other; "
        f"{settings['payload_bytes']}-byte JSON payloads; closed loop with {settings['window']} messages in flight; "
        f"median (min-max) of {settings['runs']} runs.",
        "",
        f"Other processes on the machine used a median of {_median_other_cpu(results):.2f} cores during the "
        "measured windows (0 on a quiet machine; more depresses every server's absolute numbers).",
        *([machine["note"]] if machine.get("note") else []),
        "",
        "## WebSocket fan-out: delivered messages/s",
        "",
        "| server | "
        + " | ".join(f"N={n}" for n in ns)
        + " | p50 / p99 ms at 200 msg/s, N=100 | KiB per idle connection |",
        "|---" * (len(ns) + 3) + "|",
    ]
    for name in WS_SERVERS:
        latency = summary["latency"].get(name, {})
        memory = summary["memory"].get(name)
        lines.append(
            f"| {SERVERS[name].label} | "
            + " | ".join(_cell(summary["throughput"][name][n]) for n in ns)
            + f" | {_cell(latency.get('p50_ms'), digits=2)} / {_cell(latency.get('p99_ms'), digits=2)} | "
            + ("-" if memory is None else _cell(memory, 1024, 1))
            + " |"
        )
    lines += [
        "",
        "### rtnb compared",
        "",
        "Ratios of medians, > 1 favours rtnb: throughput rtnb / peer; latency and memory peer / rtnb.",
        "",
        "| peer | " + " | ".join(f"N={n}" for n in ns) + " | p99 latency | memory per connection |",
        "|---" * (len(ns) + 3) + "|",
    ]
    hub_latency = _median(summary["latency"]["rtnb"]["p99_ms"])
    hub_memory = _median(summary["memory"].get("rtnb"))
    for name in WS_SERVERS[1:]:
        lines.append(
            f"| {SERVERS[name].label} | "
            + " | ".join(
                _ratio(_median(summary["throughput"]["rtnb"][n]), _median(summary["throughput"][name][n])) for n in ns
            )
            + f" | {_ratio(_median(summary['latency'][name]['p99_ms']), hub_latency)} | "
            + (_ratio(_median(summary["memory"].get(name)), hub_memory) if name in summary["memory"] else "-")
            + " |"
        )
    lines += [
        "",
        "## SSE fan-out: delivered messages/s",
        "",
        "| server | " + " | ".join(f"N={n}" for n in ns) + " | p50 / p99 ms at 200 msg/s, N=100 |",
        "|---" * (len(ns) + 2) + "|",
    ]
    for name in SSE_SERVERS:
        latency = summary["latency"].get(name, {})
        lines.append(
            f"| {SERVERS[name].label} | "
            + " | ".join(_cell(summary["throughput"][name][n]) for n in ns)
            + f" | {_cell(latency.get('p50_ms'), digits=2)} / {_cell(latency.get('p99_ms'), digits=2)} |"
        )
    lines.append(
        "| ratio rtnb / sse-starlette | "
        + " | ".join(
            _ratio(_median(summary["throughput"]["rtnb-sse"][n]), _median(summary["throughput"]["sse-starlette"][n]))
            for n in ns
        )
        + " | |"
    )
    lines += [
        "",
        "## Server CPU per delivered message (ns; robust to other jobs on the machine)",
        "",
        "| server | " + " | ".join(f"N={n}" for n in ns) + " |",
        "|---" * (len(ns) + 1) + "|",
    ]
    for name in WS_SERVERS + SSE_SERVERS:
        lines.append(
            f"| {SERVERS[name].label} | " + " | ".join(_cell(summary["cpu_per_message"][name][n]) for n in ns) + " |"
        )
    lines += ["", "## Targets (issue 10)", ""]
    lines += [f"- {line}" for line in check_targets(summary, ns)]
    lines += [
        "",
        f"Loadgen CPU (fraction of its core) and the CPU other jobs used during each point are in results.json; "
        f"the whole run took {results['elapsed_seconds']:.0f} s.",
        "",
    ]
    return "\n".join(lines)


def check_targets(summary: dict[str, Any], ns: list[str]) -> list[str]:
    checks = []
    throughput = summary["throughput"]
    for n in ns:
        hub = _median(throughput["rtnb"][n])
        for peer, factor in (("socketio", 3.0), ("websockets", 1.5), ("raw", 1.0)):
            other = _median(throughput[peer][n])
            if hub is None or not other:
                checks.append(f"N={n}: rtnb >= {factor}x {SERVERS[peer].label}: not measured")
                continue
            verdict = "met" if hub >= factor * other else "NOT met"
            checks.append(f"N={n}: rtnb >= {factor}x {SERVERS[peer].label}: {verdict} ({hub / other:.2f}x)")
    hub_p99 = _median(summary["latency"]["rtnb"]["p99_ms"])
    peer_p99 = [
        (_median(summary["latency"][name]["p99_ms"]), name)
        for name in WS_SERVERS[1:]
        if _median(summary["latency"][name]["p99_ms"]) is not None
    ]
    if hub_p99 is not None and peer_p99:
        best, best_name = min(peer_p99)
        verdict = "met" if hub_p99 <= best else "NOT met"
        checks.append(
            f"p99 latency no worse than the best peer ({SERVERS[best_name].label}, {best:.2f} ms): "
            f"{verdict} (rtnb {hub_p99:.2f} ms)"
        )
    hub_memory = _median(summary["memory"].get("rtnb"))
    ws_memory = _median(summary["memory"].get("websockets"))
    if hub_memory is not None and ws_memory is not None:
        verdict = "met" if hub_memory <= ws_memory else "NOT met"
        checks.append(
            f"memory per idle connection <= websockets': {verdict} "
            f"(rtnb {hub_memory / 1024:.1f} KiB, websockets {ws_memory / 1024:.1f} KiB)"
        )
    for n in ns:
        hub = _median(throughput["rtnb-sse"][n])
        other = _median(throughput["sse-starlette"][n])
        if hub is not None and other:
            verdict = "met" if hub >= 2 * other else "NOT met"
            checks.append(f"N={n}: SSE rtnb >= 2x sse-starlette: {verdict} ({hub / other:.2f}x)")
    return checks


# -- plot ------------------------------------------------------------------------------------


def plot(results: dict[str, Any], path: Path) -> None:
    """Throughput per N (log scale, min-max whiskers), p99 latency, memory per connection."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = results["summary"]
    ns = [str(n) for n in results["settings"]["subscribers"]]
    names = WS_SERVERS + SSE_SERVERS
    colors = {
        "rtnb": "#d62728",
        "raw": "#7f7f7f",
        "websockets": "#1f77b4",
        "tornado": "#2ca02c",
        "socketio": "#9467bd",
        "rtnb-sse": "#ff9896",
        "sse-starlette": "#17becf",
    }
    figure, axes = plt.subplots(1, 3, figsize=(17, 5.5), gridspec_kw={"width_ratios": [2.2, 1.2, 1]})
    throughput_axis, latency_axis, memory_axis = axes
    width = 0.8 / len(names)
    for index, name in enumerate(names):
        medians, lower, upper = [], [], []
        for n in ns:
            value = summary["throughput"][name][n]
            median = value["median"] if value else 0.0
            medians.append(median)
            lower.append(median - value["min"] if value else 0.0)
            upper.append(value["max"] - median if value else 0.0)
        positions = [i + (index - (len(names) - 1) / 2) * width for i in range(len(ns))]
        throughput_axis.bar(
            positions, medians, width, yerr=[lower, upper], capsize=2, label=SERVERS[name].label, color=colors[name]
        )
    throughput_axis.set_yscale("log")
    throughput_axis.set_xticks(range(len(ns)), [f"N = {n} subscribers" for n in ns])
    throughput_axis.set_ylabel("delivered messages/s (log scale)")
    throughput_axis.set_title("Fan-out, 1 publisher -> N subscribers")
    throughput_axis.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=4)
    throughput_axis.grid(axis="y", which="both", alpha=0.3)

    latency_names = [name for name in LATENCY_SERVERS if summary["latency"][name]["p99_ms"]]
    p50 = [summary["latency"][name]["p50_ms"]["median"] for name in latency_names]
    p99 = [summary["latency"][name]["p99_ms"]["median"] for name in latency_names]
    positions = range(len(latency_names))
    latency_axis.barh([p - 0.2 for p in positions], p50, 0.4, label="p50", color="#aec7e8")
    latency_axis.barh([p + 0.2 for p in positions], p99, 0.4, label="p99", color="#1f77b4")
    latency_axis.set_yticks(list(positions), [SERVERS[name].label for name in latency_names], fontsize=8)
    latency_axis.set_xscale("log")
    latency_axis.set_xlabel("ms (log scale)")
    latency_axis.set_title("Publish->deliver latency, 200 msg/s, N=100")
    latency_axis.legend(fontsize=8)
    latency_axis.invert_yaxis()

    memory_names = [name for name in MEMORY_SERVERS if summary["memory"].get(name)]
    values = [summary["memory"][name]["median"] / 1024 for name in memory_names]
    memory_axis.bar(range(len(memory_names)), values, color=[colors[name] for name in memory_names])
    memory_axis.set_xticks(
        range(len(memory_names)), [SERVERS[name].label for name in memory_names], rotation=20, fontsize=8
    )
    memory_axis.set_ylabel("KiB of server RSS per idle connection")
    memory_axis.set_title(f"{results['settings']['idle_connections']:,} idle WebSocket connections")
    machine = results["machine"]
    figure.suptitle(
        f"rtnb benchmarks — {machine['cpu']}, server and generator pinned to separate cores, "
        f"{machine['event_loop']}, Python {machine['python']}, {machine['date'][:10]}",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


if __name__ == "__main__":
    sys.exit(main())
