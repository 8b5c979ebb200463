#!/usr/bin/env python3
"""Combine the engine and Optuna benchmark traces into the tables of BENCHMARKS.md.

Simple regret after k evaluations = true value of the configuration with the best OBSERVED
value among the first k, minus the optimum (on noise-free functions: the best value found).
Reported as median and interquartile range over seeds.
"""
import json
import statistics
import sys
from collections import defaultdict

METHODS = ["ollama-tuner", "optuna-gp", "optuna-tpe", "random"]


def quantile(v, q):
    v = sorted(v)
    pos = q * (len(v) - 1)
    lo, hi = int(pos), min(int(pos) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def regret(run, k):
    obs = run["observed"][:k]
    i = min(range(len(obs)), key=lambda j: obs[j])
    return run["truth"][i] - run["optimum"]


def main(paths):
    runs = defaultdict(list)
    timing = defaultdict(dict)
    for p in paths:
        for line in open(p):
            r = json.loads(line)
            if r.get("timing"):
                timing[r["method"]][r["observations"]] = r
            else:
                runs[(r["problem"], r["method"])].append(r)
    problems = sorted({p for p, _ in runs}, key=lambda p: ["branin", "hartmann6", "ackley5_mixed", "hartmann6_noisy"].index(p) if p in ["branin", "hartmann6", "ackley5_mixed", "hartmann6_noisy"] else 99)
    print("| function | method | seeds | regret@25 median [IQR] | regret@50 median [IQR] | mean s/ask |")
    print("|---|---|---|---|---|---|")
    for prob in problems:
        for m in METHODS:
            rs = runs.get((prob, m))
            if not rs:
                continue
            cells = []
            for k in (25, 50):
                v = [regret(r, k) for r in rs]
                cells.append(f"{statistics.median(v):.4g} [{quantile(v, 0.25):.3g}, {quantile(v, 0.75):.3g}]")
            t = statistics.mean(x for r in rs for x in r["ask_seconds"])
            name = f"**{m}**" if m == "ollama-tuner" else m
            print(f"| {prob} | {name} | {len(rs)} | {cells[0]} | {cells[1]} | {t:.4f} |")
    if timing:
        print()
        print("| observations | ollama-tuner ask, refit (ms) | ollama-tuner ask, typical (ms) | optuna-gp trial (ms) |")
        print("|---|---|---|---|")
        for n in sorted({n for t in timing.values() for n in t}):
            e = timing.get("ollama-tuner", {}).get(n)
            o = timing.get("optuna-gp", {}).get(n)
            fmt = lambda r, k: f"{r[k]*1e3:.1f}" if r else "-"
            print(f"| {n} | {fmt(e, 'cold_s')} | {fmt(e, 'warm_s')} | {fmt(o, 'warm_s')} |")


if __name__ == "__main__":
    main(sys.argv[1:])
