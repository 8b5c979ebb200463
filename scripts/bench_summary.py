#!/usr/bin/env python3
"""Combine the engine and Optuna benchmark traces into the tables of BENCHMARKS.md.

Simple regret after k evaluations = true value of the configuration with the best OBSERVED
value among the first k, minus the optimum (on noise-free functions: the best value found).
Reported as median and interquartile range over seeds.

Recommended regret after k evaluations = true value of what the method hands its user, minus the
optimum: `Optimizer::recommend()` for this engine (best posterior mean at a measured point), the
best observed trial for the others (Optuna's `study.best_trial`, random search's best sample).

The comparison table gives, per function, the difference of the median regret@50 between this
engine and each other method with a 95% bootstrap interval (runs resampled with replacement
within each method, 4000 resamples, fixed seed), and the probability that a run of this engine
ends with lower regret than a run of the other (the Mann-Whitney common-language effect size).
"""
import random
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


def recommended(run, k):
    for r in run.get("recommended", []):
        if r["evals"] == k:
            return r["truth"] - run["optimum"]
    return regret(run, k)


def median_difference(a, b, resamples=4000, seed=0):
    """median(a) - median(b) with a 95% percentile bootstrap interval."""
    rng = random.Random(seed)
    diffs = sorted(
        statistics.median(rng.choices(a, k=len(a))) - statistics.median(rng.choices(b, k=len(b)))
        for _ in range(resamples)
    )
    return statistics.median(a) - statistics.median(b), quantile(diffs, 0.025), quantile(diffs, 0.975)


def p_better(a, b):
    """P(a run from a has lower regret than a run from b), ties counted half."""
    wins = sum((x < y) + 0.5 * (x == y) for x in a for y in b)
    return wins / (len(a) * len(b))


def blocks(runs, problems, size):
    """Median regret@50 per block of `size` consecutive seeds: how much a median over that many
    seeds moves with the seed range."""
    methods = [m for m in METHODS if m != "random"]
    print(f"| function | seeds | " + " | ".join(methods) + " |")
    print("|---|---|" + "---|" * len(methods))
    for prob in problems:
        seeds = sorted({r["seed"] for m in methods for r in runs.get((prob, m), [])})
        for lo in range(seeds[0] if seeds else 0, (seeds[-1] + 1) if seeds else 0, size):
            cells = []
            for m in methods:
                v = [regret(r, 50) for r in runs.get((prob, m), []) if lo <= r["seed"] < lo + size]
                cells.append(f"{statistics.median(v):.3g}" if v else "-")
            print(f"| {prob} | {lo}-{lo + size - 1} | " + " | ".join(cells) + " |")


def main(paths):
    block = None
    if "--blocks" in paths:
        i = paths.index("--blocks")
        block = int(paths[i + 1])
        paths = paths[:i] + paths[i + 2:]
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
    if block:
        blocks(runs, problems, block)
        return
    print("| function | method | seeds | regret@25 median [IQR] | regret@50 median [IQR] | recommended@50 median [IQR] | mean s/ask |")
    print("|---|---|---|---|---|---|---|")
    for prob in problems:
        for m in METHODS:
            rs = runs.get((prob, m))
            if not rs:
                continue
            cells = []
            for v in ([regret(r, 25) for r in rs], [regret(r, 50) for r in rs], [recommended(r, 50) for r in rs]):
                cells.append(f"{statistics.median(v):.4g} [{quantile(v, 0.25):.3g}, {quantile(v, 0.75):.3g}]")
            t = statistics.mean(x for r in rs for x in r["ask_seconds"])
            name = f"**{m}**" if m == "ollama-tuner" else m
            print(f"| {prob} | {name} | {len(rs)} | {cells[0]} | {cells[1]} | {cells[2]} | {t:.4f} |")
    print()
    print("| function | ollama-tuner against | median regret@50 difference [95% bootstrap interval] | P(ollama-tuner run better) |")
    print("|---|---|---|---|")
    for prob in problems:
        ours = [regret(r, 50) for r in runs.get((prob, "ollama-tuner"), [])]
        if not ours:
            continue
        for m in METHODS[1:]:
            rs = runs.get((prob, m))
            if not rs:
                continue
            theirs = [regret(r, 50) for r in rs]
            d, lo, hi = median_difference(ours, theirs)
            print(f"| {prob} | {m} | {d:+.3g} [{lo:+.3g}, {hi:+.3g}] | {p_better(ours, theirs):.2f} |")
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
