#!/usr/bin/env python3
"""Turns a `cargo bench -p benches --bench peers` run into BENCHMARKS.md tables
and two PNG plots.

Reads criterion's output (target/criterion/<scenario>/<queue>/<bytes>/new/
{benchmark,estimates}.json: the median time per iteration) and what the
benches record beside it (target/bench-extra/loss.csv, rtt_samples.csv,
goals.csv, machine.txt). Writes:

- the tables between `<!-- bench-tables:begin -->` and
  `<!-- bench-tables:end -->` in BENCHMARKS.md (the prose around them is
  kept);
- <out>/throughput.png: throughput by scenario, 64 and 256 bytes;
- <out>/rtt.png: the round-trip latency distribution (64 bytes).

Usage: plot_benches.py [--target DIR] [--out DIR] [--md FILE] [--no-plots]
       plot_benches.py --self-test
"""

import argparse
import csv
import json
import os
import sys
import tempfile

BEGIN = "<!-- bench-tables:begin -->"
END = "<!-- bench-tables:end -->"
SIZES = (64, 256)

# Scenario -> (title, unit, the evqueue row the ratios are taken against).
SCENARIOS = {
    "s1_push": ("1. Push only, no consumer (one thread)", "ns", "evqueue"),
    "s2_one_to_one": ("2. One producer, one consumer (2 threads)", "M/s", "evqueue"),
    "s3_two_workers": ("3. Two workers draining a pre-filled queue (2 threads)", "M/s", "evqueue"),
    "s4_broadcast4": ("4. Four broadcast subscribers, per subscriber (2 threads)", "M/s", "evqueue"),
    "s5_round_trip": ("5. Round trip between two threads", "rtt", "evqueue_subscriber"),
    "s6_batch": ("6. Batch against single operations (2 threads)", "batch", None),
    "s7_two_producers": ("7. Two producers, no consumer (2 threads)", "M/s", "evqueue_mp"),
}


# Goal pairs timed interleaved (goals.csv), in table order: goal id -> (what
# the goal asks, the unit shown, the least evqueue/peer speed ratio that
# meets it).
GOAL_PAIRS = {
    "push_vs_floor": ("single-producer push within 1.5× of the floor", "ns", 1 / 1.5),
    "push_vs_force_push": ("push at least 2× faster than `ArrayQueue::force_push`", "ns", 2.0),
    "push_vs_photon_ring": ("push no slower than `photon-ring`", "ns", 1.0),
    "one_to_one_vs_disruptor": ("one producer to one worker: at least 1.2× `disruptor`", "M/s", 1.2),
    "one_to_one_batch32_vs_disruptor":
        ("one producer to one worker, batch claims of 32: at least 1.2× `disruptor`", "M/s", 1.2),
    "broadcast_vs_disruptor": ("four subscribers: at least `disruptor` per subscriber", "M/s", 1.0),
    "broadcast_vs_tokio": ("four subscribers: at least 5× `tokio::sync::broadcast`", "M/s", 5.0),
    "broadcast_batch32_vs_disruptor":
        ("four subscribers, batch reads of 32: at least `disruptor` per subscriber", "M/s", 1.0),
    "broadcast_batch32_vs_tokio":
        ("four subscribers, batch reads of 32: at least 5× `tokio::sync::broadcast`", "M/s", 5.0),
    "round_trip_vs_cacheline": ("round trip within 1.3× of the cache-line round trip", "ns", 1 / 1.3),
}


class InputError(Exception):
    """A missing or malformed input file, with a message that says which."""


def load_criterion(target):
    """{(scenario, queue, bytes): ns per event} from criterion's median."""
    root = os.path.join(target, "criterion")
    if not os.path.isdir(root):
        raise InputError(f"{root} does not exist: run `cargo bench -p benches --bench peers` first")
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        if os.path.basename(dirpath) != "new" or "benchmark.json" not in files:
            continue
        try:
            with open(os.path.join(dirpath, "benchmark.json")) as f:
                bench = json.load(f)
            with open(os.path.join(dirpath, "estimates.json")) as f:
                est = json.load(f)
            scenario = bench["group_id"]
            if scenario not in SCENARIOS:
                continue
            elements = (bench.get("throughput") or {}).get("Elements", 1)
            ns = est["median"]["point_estimate"] / elements
            out[(scenario, bench["function_id"], int(bench["value_str"]))] = ns
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise InputError(f"{dirpath}: unreadable criterion output ({e})") from e
    if not out:
        raise InputError(f"no peers-bench results under {root}")
    return out


def read_csv(path, header):
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0] != header:
        raise InputError(f"{path}: expected header {','.join(header)}")
    return rows[1:]


def load_loss(target):
    rows = read_csv(os.path.join(target, "bench-extra", "loss.csv"),
                    ["scenario", "queue", "bytes", "pushed", "delivered", "reported_lost"])
    out = {}
    for r in rows:
        try:
            out[(r[0], r[1], int(r[2]))] = (int(r[3]), int(r[4]), int(r[5]))
        except (ValueError, IndexError) as e:
            raise InputError(f"loss.csv: bad row {r}") from e
    return out


def load_rtt(target):
    """({(queue, bytes): sorted ns samples}, timer overhead ns)."""
    rows = read_csv(os.path.join(target, "bench-extra", "rtt_samples.csv"), ["queue", "bytes", "ns"])
    samples = {}
    for r in rows:
        try:
            samples.setdefault((r[0], int(r[1])), []).append(float(r[2]))
        except (ValueError, IndexError) as e:
            raise InputError(f"rtt_samples.csv: bad row {r}") from e
    overhead = samples.pop(("timer_overhead", 0), None)
    overhead = quantile(sorted(overhead), 0.5) if overhead else 0
    return {k: sorted(max(0, s - overhead) for s in v) for k, v in samples.items()}, overhead


def load_goals(target):
    """{(goal, bytes): [(evqueue ops/s, peer ops/s) per round]}."""
    rows = read_csv(os.path.join(target, "bench-extra", "goals.csv"),
                    ["goal", "bytes", "round", "evqueue", "peer"])
    out = {}
    for r in rows:
        try:
            pair = (float(r[3]), float(r[4]))
            key = (r[0], int(r[1]))
        except (ValueError, IndexError) as e:
            raise InputError(f"goals.csv: bad row {r}") from e
        if key[0] not in GOAL_PAIRS or min(pair) <= 0:
            raise InputError(f"goals.csv: bad row {r}")
        out.setdefault(key, []).append(pair)
    return out


def median(values):
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def table_goals_interleaved(goal_rounds):
    """The goals from goals.csv: per-round speed ratios, evqueue over the peer."""
    if not goal_rounds:
        return []
    lines = ["### Goals, evqueue and the peer interleaved", "",
             "Each goal timed as rounds that alternate evqueue and its peer "
             "(`goals` in `benches/benches/peers.rs`), so both sides of a ratio "
             "see the same machine; the ratio is evqueue's speed over the peer's "
             "per round: the median and the range over the rounds.", "",
             "| goal | bytes | evqueue | peer | speed ratio, median [range] | needs | met |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for goal, (text, unit, needs) in GOAL_PAIRS.items():
        for b in SIZES:
            rounds = goal_rounds.get((goal, b))
            if not rounds:
                continue
            ratios = sorted(e / p for e, p in rounds)
            m = median(ratios)

            def show(rate):
                return fmt_ns(1e9 / rate) if unit == "ns" else f"{rate / 1e6:.1f} M/s"

            lines.append(
                f"| {text} | {b} | {show(median(e for e, _ in rounds))} | "
                f"{show(median(p for _, p in rounds))} | {m:.2f} [{ratios[0]:.2f}–{ratios[-1]:.2f}] "
                f"({len(ratios)} rounds) | ≥ {needs:.2f} | {'yes' if m >= needs else '**no**'} |")
    return lines + [""]


def quantile(sorted_values, q):
    return sorted_values[round((len(sorted_values) - 1) * q)]


def fmt_ns(ns):
    if ns < 10:
        return f"{ns:.2f} ns"
    return f"{ns:.1f} ns" if ns < 100 else f"{ns:.0f} ns"


def fmt_rate(ns):
    return f"{1e3 / ns:.1f}"


def fmt_ratio(x):
    return f"{x:.2f}×"


def delivered_only(results, loss):
    """Per-event times for events *delivered*: a lossy row's criterion time
    counts every event pushed, so divide it by the share delivered."""
    out = dict(results)
    for key, (pushed, delivered, _lost) in loss.items():
        if key in out and pushed:
            out[key] = out[key] * pushed / delivered if delivered else float("inf")
    return out


def queues_of(results, scenario):
    seen = []
    for (s, q, _b) in sorted(results, key=lambda k: k[1]):
        if s == scenario and q not in seen:
            seen.append(q)
    # evqueue rows first, then the peers, then the floors.
    return sorted(seen, key=lambda q: (not q.startswith("evqueue"), q in ("floor", "cacheline"), q))


def table_throughput(results, scenario, loss):
    title, unit, ref = SCENARIOS[scenario]
    lines = [f"### {title}", ""]
    if unit == "ns":
        head = "| queue | 64 B | evqueue vs it | 256 B | evqueue vs it |"
    else:
        head = "| queue | 64 B (M/s) | evqueue vs it | 256 B (M/s) | evqueue vs it |"
    has_loss = any(k[0] == scenario for k in loss)
    if has_loss:
        head += " delivered (64 B / 256 B) |"
    lines += [head, "|" + " --- |" * (head.count("|") - 1)]
    for q in queues_of(results, scenario):
        cells = [f"`{q}`"]
        for b in SIZES:
            ns = results.get((scenario, q, b))
            ref_ns = results.get((scenario, ref, b))
            if ns is None:
                cells += ["n/a", ""]
                continue
            cells.append(fmt_ns(ns) if unit == "ns" else fmt_rate(ns) if ns != float("inf") else "0")
            # evqueue's speed over the peer's: > 1 means evqueue is faster.
            cells.append("" if q == ref or ref_ns is None else fmt_ratio(ns / ref_ns))
        if has_loss:
            parts = []
            for b in SIZES:
                l = loss.get((scenario, q, b))
                parts.append("–" if l is None else f"{100.0 * l[1] / l[0]:.1f} %" if l[0] else "–")
            cells.append(" / ".join(parts))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def table_batch(results):
    title = SCENARIOS["s6_batch"][0]
    lines = [f"### {title}", "",
             "| queue | 64 B single (M/s) | 64 B batch of 32 (M/s) | gain | 256 B single (M/s) | 256 B batch of 32 (M/s) | gain |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    bases = []
    for q in queues_of(results, "s6_batch"):
        base = q.rsplit("_", 1)[0]
        if base not in bases:
            bases.append(base)
    for base in bases:
        cells = [f"`{base}`"]
        for b in SIZES:
            single = results.get(("s6_batch", f"{base}_single", b))
            batch = results.get(("s6_batch", f"{base}_batch32", b))
            cells.append(fmt_rate(single) if single else "n/a")
            cells.append(fmt_rate(batch) if batch else "n/a")
            cells.append(fmt_ratio(single / batch) if single and batch else "")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def table_rtt(results, rtt, overhead):
    title, _unit, ref = SCENARIOS["s5_round_trip"]
    lines = [f"### {title}", "",
             f"`criterion`: criterion's median time per round trip over batches of round trips. "
             f"Median, p99 and p99.9: 20000 round trips timed one by one, less the timer's own "
             f"median cost ({overhead:.1f} ns). Ratio: the queue's median over `{ref}`'s "
             f"(> 1: evqueue is faster); for `cacheline`, evqueue's over the floor's.", "",
             "| queue | bytes | criterion | median | p99 | p99.9 | vs evqueue |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for b in SIZES:
        ref_s = rtt.get((ref, b))
        for q in queues_of(results, "s5_round_trip"):
            mean = results.get(("s5_round_trip", q, b))
            s = rtt.get((q, b))
            if mean is None:
                continue
            cells = [f"`{q}`", str(b), fmt_ns(mean)]
            if s:
                cells += [fmt_ns(quantile(s, 0.5)), fmt_ns(quantile(s, 0.99)), fmt_ns(quantile(s, 0.999))]
            else:
                cells += ["–", "–", "–"]
            ratio = ""
            if s and ref_s and q != ref:
                m, rm = quantile(s, 0.5), quantile(ref_s, 0.5)
                if q == "cacheline":
                    ratio = f"evqueue {fmt_ratio(rm / m)} the floor" if m else ""
                else:
                    ratio = fmt_ratio(m / rm) if rm else ""
            cells.append(ratio)
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def goals(results, rtt):
    """[(goal, bytes, measured text, met: bool or None)]."""
    r = results.get
    out = []

    def add(goal, b, a, bb, cmp_text, ok_fn):
        if a is None or bb is None:
            out.append((goal, b, "not measured", None))
        else:
            out.append((goal, b, cmp_text(a, bb), ok_fn(a, bb)))

    for b in SIZES:
        ev = r(("s1_push", "evqueue", b))
        add("single-producer push within 1.5× of the floor", b, ev, r(("s1_push", "floor", b)),
            lambda a, f: f"{a / f:.2f}× the floor", lambda a, f: a <= 1.5 * f)
        add("push at least 2× faster than `ArrayQueue::force_push`", b, ev,
            r(("s1_push", "arrayqueue_force_push", b)),
            lambda a, p: f"{p / a:.2f}× faster", lambda a, p: p >= 2 * a)
        add("push no slower than `photon-ring`", b, ev, r(("s1_push", "photon_ring", b)),
            lambda a, p: f"{p / a:.2f}× photon-ring's speed", lambda a, p: a <= p)
        add("one producer to one worker: at least 1.2× `disruptor`", b,
            r(("s2_one_to_one", "evqueue", b)), r(("s2_one_to_one", "disruptor", b)),
            lambda a, d: f"{d / a:.2f}× (worker claims, one at a time)", lambda a, d: d >= 1.2 * a)
        add("one producer to one worker, batch claims: at least 1.2× `disruptor`", b,
            r(("s2_one_to_one", "evqueue_batch32", b)), r(("s2_one_to_one", "disruptor", b)),
            lambda a, d: f"{d / a:.2f}× (claims of 32)", lambda a, d: d >= 1.2 * a)
        add("four subscribers: at least `disruptor` per subscriber", b,
            r(("s4_broadcast4", "evqueue", b)), r(("s4_broadcast4", "disruptor", b)),
            lambda a, d: f"{d / a:.2f}×", lambda a, d: a <= d)
        add("four subscribers: at least 5× `tokio::sync::broadcast`", b,
            r(("s4_broadcast4", "evqueue", b)), r(("s4_broadcast4", "tokio_broadcast", b)),
            lambda a, t: f"{t / a:.2f}×", lambda a, t: t >= 5 * a)
        add("four subscribers, batch reads of 32: at least `disruptor` per subscriber", b,
            r(("s4_broadcast4", "evqueue_batch32", b)), r(("s4_broadcast4", "disruptor", b)),
            lambda a, d: f"{d / a:.2f}×", lambda a, d: a <= d)
        add("four subscribers, batch reads of 32: at least 5× `tokio::sync::broadcast`", b,
            r(("s4_broadcast4", "evqueue_batch32", b)), r(("s4_broadcast4", "tokio_broadcast", b)),
            lambda a, t: f"{t / a:.2f}×", lambda a, t: t >= 5 * a)
        ev_rtt, floor_rtt = rtt.get(("evqueue_subscriber", b)), rtt.get(("cacheline", b))
        add("round trip within 1.3× of the cache-line round trip (medians of timed trips)", b,
            quantile(ev_rtt, 0.5) if ev_rtt else None, quantile(floor_rtt, 0.5) if floor_rtt else None,
            lambda a, f: f"{a / f:.2f}× ({a:.1f} ns against {f:.1f} ns)" if f else "floor of 0 ns",
            lambda a, f: f > 0 and a <= 1.3 * f)
        add("round trip within 1.3× of the cache-line round trip (criterion)", b,
            r(("s5_round_trip", "evqueue_subscriber", b)), r(("s5_round_trip", "cacheline", b)),
            lambda a, f: f"{a / f:.2f}× ({a:.1f} ns against {f:.1f} ns)",
            lambda a, f: a <= 1.3 * f)
    return out


def render(results, loss, rtt, overhead, machine, goal_rounds=None):
    lines = [BEGIN, "", "<!-- Generated by scripts/plot_benches.py from target/criterion and "
             "target/bench-extra; edit the script, not this block. -->", ""]
    if machine:
        lines += ["**This run:**", ""] + [f"- {m}" for m in machine] + [""]
    lines += table_goals_interleaved(goal_rounds or {})
    lines += ["### Goals, from the criterion rows below", "",
              "| goal | bytes | measured | met |", "| --- | --- | --- | --- |"]
    for goal, b, text, ok in goals(results, rtt):
        lines.append(f"| {goal} | {b} | {text} | {'–' if ok is None else 'yes' if ok else '**no**'} |")
    lines.append("")
    for s in SCENARIOS:
        if s == "s5_round_trip":
            lines += table_rtt(results, rtt, overhead)
        elif s == "s6_batch":
            lines += table_batch(results)
        else:
            lines += table_throughput(results, s, loss)
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def update_md(path, block):
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise InputError(f"{path}: {e}") from e
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise InputError(f"{path}: needs exactly one {BEGIN} ... {END} block")
    new = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    with open(path, "w") as f:
        f.write(new)


def plot(results, rtt, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    def log_axis(axis):
        # Labelled ticks at 1, 2, 5 per decade, so a range inside one decade
        # still has labels.
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())

    os.makedirs(out, exist_ok=True)
    scen = [s for s in SCENARIOS if s not in ("s5_round_trip",)]
    fig, axes = plt.subplots(2, 3, figsize=(16, 10))
    for ax, s in zip(axes.flat, scen):
        qs = queues_of(results, s)
        y = range(len(qs))
        for k, (b, color_ev, color) in enumerate([(64, "#d62728", "#1f77b4"), (256, "#ff9896", "#aec7e8")]):
            vals = [1e3 / results[(s, q, b)] if (s, q, b) in results else 0 for q in qs]
            colors = [color_ev if q.startswith("evqueue") else color for q in qs]
            ax.barh([i + 0.4 * k for i in y], vals, height=0.4, color=colors, label=f"{b} B")
        ax.set_yticks([i + 0.2 for i in y])
        ax.set_yticklabels(qs, fontsize=8)
        ax.invert_yaxis()
        ax.set_xscale("log")
        log_axis(ax.xaxis)
        ax.set_xlabel("million events per second (log)" + (" per subscriber" if s == "s4_broadcast4" else ""))
        ax.set_title(SCENARIOS[s][0], fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle("evqueue (red) against peer queues (blue): throughput by scenario, dark 64 B, light 256 B")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "throughput.png"), dpi=80)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(10, 6))
    keys = sorted((k for k in rtt if k[1] == 64), key=lambda k: quantile(rtt[k], 0.5))
    for q, b in keys:
        s = rtt[(q, b)]
        n = len(s)
        style = "-" if q.startswith("evqueue") else "--" if q == "cacheline" else ":"
        width = 2.5 if q.startswith("evqueue") or q == "cacheline" else 1.5
        ax.plot(s, [i / n for i in range(n)], style, linewidth=width,
                label=f"{q} (median {quantile(s, 0.5):.1f} ns)")
    ax.set_xscale("log")
    # Far past the slowest queue's p99 are scheduler preemptions: cut at 3×.
    if keys:
        lo = min(max(1, rtt[k][0]) for k in keys)
        hi = max(quantile(rtt[k], 0.99) for k in keys)
        ax.set_xlim(lo * 0.8, hi * 3)
    log_axis(ax.xaxis)
    ax.set_xlabel("round trip, ns (log; cut at 3× the slowest p99)")
    ax.set_ylabel("fraction of round trips at most this")
    ax.set_title("Round-trip latency between two threads, 64 B payload")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "rtt.png"), dpi=80)
    plt.close(fig)


def read_machine(target):
    path = os.path.join(target, "bench-extra", "machine.txt")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [l.strip() for l in f if l.strip()]


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--target", default="target", help="cargo's target directory")
    p.add_argument("--out", default="benches/results", help="where the PNGs go")
    p.add_argument("--md", default="BENCHMARKS.md", help="the file whose table block is replaced")
    p.add_argument("--no-plots", action="store_true", help="tables only (no matplotlib needed)")
    p.add_argument("--self-test", action="store_true", help="check the script on synthetic data")
    args = p.parse_args(argv)
    if args.self_test:
        return self_test()
    try:
        loss = load_loss(args.target)
        results = delivered_only(load_criterion(args.target), loss)
        rtt, overhead = load_rtt(args.target)
        goal_rounds = load_goals(args.target)
        update_md(args.md, render(results, loss, rtt, overhead, read_machine(args.target), goal_rounds))
        if not args.no_plots:
            plot(results, rtt, args.out)
    except InputError as e:
        print(f"plot_benches: {e}", file=sys.stderr)
        return 1
    print(f"plot_benches: {len(results)} results -> {args.md}" +
          ("" if args.no_plots else f", {args.out}/throughput.png, {args.out}/rtt.png"))
    return 0


def self_test():
    """Synthetic criterion output: the tables, ratios, goals and errors."""
    with tempfile.TemporaryDirectory() as tmp:
        target = os.path.join(tmp, "target")

        def bench(s, q, b, ns):
            d = os.path.join(target, "criterion", s, q, str(b), "new")
            os.makedirs(d)
            with open(os.path.join(d, "benchmark.json"), "w") as f:
                json.dump({"group_id": s, "function_id": q, "value_str": str(b),
                           "throughput": {"Elements": 1}}, f)
            with open(os.path.join(d, "estimates.json"), "w") as f:
                json.dump({"median": {"point_estimate": ns}, "mean": {"point_estimate": 99 * ns}}, f)

        md = os.path.join(tmp, "B.md")
        with open(md, "w") as f:
            f.write("intro\n" + BEGIN + "\nold\n" + END + "\noutro\n")
        assert main(["--target", target, "--md", md, "--no-plots"]) == 1, "no results must fail"
        for b in SIZES:
            bench("s1_push", "floor", b, 2.0)
            bench("s1_push", "evqueue", b, 2.5)
            bench("s1_push", "arrayqueue_force_push", b, 10.0)
            bench("s1_push", "photon_ring", b, 2.0)
            bench("s2_one_to_one", "evqueue", b, 5.0)
            bench("s2_one_to_one", "disruptor", b, 10.0)
            bench("s5_round_trip", "cacheline", b, 100.0)
            bench("s5_round_trip", "evqueue_subscriber", b, 120.0)
            bench("s6_batch", "evqueue_single", b, 8.0)
            bench("s6_batch", "evqueue_batch32", b, 4.0)
        bench("other_group", "x", 64, 1.0)  # not a scenario: ignored
        extra = os.path.join(target, "bench-extra")
        os.makedirs(extra)
        with open(os.path.join(extra, "loss.csv"), "w") as f:
            f.write("scenario,queue,bytes,pushed,delivered,reported_lost\n"
                    "s2_one_to_one,evqueue,64,1000,750,250\n")
        with open(os.path.join(extra, "rtt_samples.csv"), "w") as f:
            f.write("queue,bytes,ns\n" + "".join(f"timer_overhead,0,{10}\n" for _ in range(3)) +
                    "".join(f"cacheline,64,{100 + i}\n" for i in range(101)) +
                    "".join(f"evqueue_subscriber,64,{150 + i}\n" for i in range(101)))
        assert main(["--target", target, "--md", md, "--no-plots"]) == 0
        text = open(md).read()
        assert text.startswith("intro\n" + BEGIN) and text.endswith(END + "\noutro\n"), text
        assert "old" not in text
        # Push: 2.5 ns against the floor's 2.0 is 1.25× (met); 4× ArrayQueue (met);
        # slower than photon-ring (not met).
        assert "| single-producer push within 1.5× of the floor | 64 | 1.25× the floor | yes |" in text, text
        assert "| push at least 2× faster than `ArrayQueue::force_push` | 64 | 4.00× faster | yes |" in text
        assert "| push no slower than `photon-ring` | 64 | 0.80× photon-ring's speed | **no** |" in text
        assert "| `arrayqueue_force_push` | 10.0 ns | 4.00× |" in text
        # 5 ns per pushed event with 75 % delivered = 150 M/s delivered at 64 B
        # (1.5× the disruptor's 100 M/s); 200 M/s at 256 B (no loss record).
        assert "| `evqueue` | 150.0 |  | 200.0 |  | 75.0 % / – |" in text, text
        assert "| `disruptor` | 100.0 | 1.50× | 100.0 | 2.00× | – / – |" in text
        # Round trip: medians 150 and 200 less the 10 ns timer: 140 / 190 = 1.36× (not met).
        assert "1.36× (190.0 ns against 140.0 ns) | **no** |" in text, text
        # criterion: 120 ns against 100 ns = 1.20× (met).
        assert "(criterion) | 64 | 1.20× (120.0 ns against 100.0 ns) | yes |" in text, text
        assert "| `evqueue` | 125.0 | 250.0 | 2.00× |" in text
        assert "| four subscribers: at least `disruptor` per subscriber | 64 | not measured | – |" in text
        assert "interleaved" not in text  # no goals.csv: no such table
        # Interleaved goals: ratios 0.5, 0.8 and 0.7 (median 0.7, needs ≥ 0.67: met);
        # tokio: 4 and 6 (median 5.0, needs ≥ 5: met); the disruptor 0.9 (not met).
        with open(os.path.join(extra, "goals.csv"), "w") as f:
            f.write("goal,bytes,round,evqueue,peer\n"
                    "push_vs_floor,64,0,100e6,200e6\npush_vs_floor,64,1,160e6,200e6\n"
                    "push_vs_floor,64,2,140e6,200e6\n"
                    "broadcast_vs_tokio,256,0,40e6,10e6\nbroadcast_vs_tokio,256,1,60e6,10e6\n"
                    "broadcast_vs_disruptor,64,0,90e6,100e6\n")
        assert main(["--target", target, "--md", md, "--no-plots"]) == 0
        text = open(md).read()
        assert ("| single-producer push within 1.5× of the floor | 64 | 7.14 ns | 5.00 ns | "
                "0.70 [0.50–0.80] (3 rounds) | ≥ 0.67 | yes |") in text, text
        assert ("| four subscribers: at least 5× `tokio::sync::broadcast` | 256 | 50.0 M/s | 10.0 M/s | "
                "5.00 [4.00–6.00] (2 rounds) | ≥ 5.00 | yes |") in text, text
        assert "| 64 | 90.0 M/s | 100.0 M/s | 0.90 [0.90–0.90] (1 rounds) | ≥ 1.00 | **no** |" in text
        for bad in ("nope,64,0,1,1\n", "push_vs_floor,64,0,0,1\n", "push_vs_floor,x,0,1,1\n"):
            with open(os.path.join(extra, "goals.csv"), "w") as f:
                f.write("goal,bytes,round,evqueue,peer\n" + bad)
            before = open(md).read()
            assert main(["--target", target, "--md", md, "--no-plots"]) == 1, bad
            assert open(md).read() == before
        os.remove(os.path.join(extra, "goals.csv"))
        # Bad inputs: a clear error, and the file is left as it was.
        with open(os.path.join(extra, "loss.csv"), "w") as f:
            f.write("wrong,header\n")
        before = open(md).read()
        assert main(["--target", target, "--md", md, "--no-plots"]) == 1
        assert open(md).read() == before
        with open(os.path.join(extra, "loss.csv"), "w") as f:
            f.write("scenario,queue,bytes,pushed,delivered,reported_lost\n")
        with open(md, "w") as f:
            f.write("no markers\n")
        assert main(["--target", target, "--md", md, "--no-plots"]) == 1
        assert open(md).read() == "no markers\n"
    print("plot_benches self-test: 1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
