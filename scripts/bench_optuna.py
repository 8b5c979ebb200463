#!/usr/bin/env python3
"""Optuna side of the engine benchmark: GPSampler and TPESampler on the same functions,
same domains, same budgets and seeds as examples/bench_bo.rs. Writes JSON lines.

python3 scripts/bench_optuna.py --seeds 20 --evals 50 --out bench-out/optuna.jsonl
"""
import argparse
import json
import math
import random
import sys
import time

import optuna

optuna.logging.set_verbosity(optuna.logging.WARNING)


def branin(x):
    x1, x2 = x
    b = 5.1 / (4 * math.pi**2)
    c = 5 / math.pi
    t = 1 / (8 * math.pi)
    return (x2 - b * x1 * x1 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


H6_ALPHA = [1.0, 1.2, 3.0, 3.2]
H6_A = [
    [10, 3, 17, 3.5, 1.7, 8],
    [0.05, 10, 17, 0.1, 8, 14],
    [3, 3.5, 1.7, 10, 17, 8],
    [17, 8, 0.05, 10, 0.1, 14],
]
H6_P = [
    [1312, 1696, 5569, 124, 8283, 5886],
    [2329, 4135, 8307, 3736, 1004, 9991],
    [2348, 1451, 3522, 2883, 3047, 6650],
    [4047, 8828, 8732, 5743, 1091, 381],
]


def hartmann6(x):
    s = 0.0
    for i in range(4):
        inner = sum(H6_A[i][j] * (x[j] - 1e-4 * H6_P[i][j]) ** 2 for j in range(6))
        s += H6_ALPHA[i] * math.exp(-inner)
    return -s


def ackley(x):
    d = len(x)
    sq = sum(v * v for v in x) / d
    cs = sum(math.cos(2 * math.pi * v) for v in x) / d
    return -20 * math.exp(-0.2 * math.sqrt(sq)) - math.exp(cs) + 20 + math.e


def float_space(bounds):
    return [("float", f"x{i+1}", lo, hi) for i, (lo, hi) in enumerate(bounds)]


PROBLEMS = {
    "branin": (float_space([(-5, 10), (0, 15)]), branin, 0.397887, 0.0),
    "hartmann6": (float_space([(0, 1)] * 6), hartmann6, -3.32237, 0.0),
    "ackley5_mixed": (
        [("int", "x1", -5, 10), ("int", "x2", -5, 10), ("int", "x3", -5, 10),
         ("float", "x4", -5.0, 10.0), ("float", "x5", -5.0, 10.0)],
        ackley, 0.0, 0.0,
    ),
    "hartmann6_noisy": (float_space([(0, 1)] * 6), hartmann6, -3.32237, 0.1),
}


def make_sampler(name, seed):
    if name == "optuna-gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "optuna-tpe":
        return optuna.samplers.TPESampler(seed=seed)
    raise ValueError(name)


def run(problem, sampler_name, seed, evals):
    space, f, _, noise = PROBLEMS[problem]
    rng = random.Random(seed ^ 0xBEEF)
    truth, observed, times = [], [], []

    def objective(trial):
        x = []
        for kind, name, lo, hi in space:
            if kind == "int":
                x.append(float(trial.suggest_int(name, lo, hi)))
            else:
                x.append(trial.suggest_float(name, lo, hi))
        v = f(x)
        y = v + noise * rng.gauss(0, 1)
        truth.append(v)
        observed.append(y)
        return y

    study = optuna.create_study(direction="minimize", sampler=make_sampler(sampler_name, seed))
    last = time.perf_counter()
    for _ in range(evals):
        t0 = time.perf_counter()
        study.optimize(objective, n_trials=1)
        times.append(time.perf_counter() - t0)
    return truth, observed, times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--evals", type=int, default=50)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed+seeds-1 (held-out checks)")
    ap.add_argument("--out", default="bench-out/optuna.jsonl")
    ap.add_argument("--only", default="")
    ap.add_argument("--samplers", default="optuna-gp,optuna-tpe")
    ap.add_argument("--timing", default="50,200,500", help="GPSampler seconds per trial at these trial counts (one run on hartmann6)")
    a = ap.parse_args()
    with open(a.out, "w") as out:
        for problem in PROBLEMS:
            if a.only and problem not in a.only.split(","):
                continue
            for s in a.samplers.split(","):
                t0 = time.perf_counter()
                for seed in range(a.first_seed, a.first_seed + a.seeds):
                    truth, observed, times = run(problem, s, seed, a.evals)
                    out.write(json.dumps({"method": s, "problem": problem, "seed": seed,
                                          "optimum": PROBLEMS[problem][2], "truth": truth,
                                          "observed": observed, "ask_seconds": times}) + "\n")
                    out.flush()
                print(f"{problem:<16} {s:<11} {a.seeds} seeds in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        marks = sorted(int(m) for m in a.timing.split(",") if m)
        if marks:
            truth, observed, times = run("hartmann6", "optuna-gp", 99, max(marks) + 3)
            for m in marks:
                window = sorted(times[m:m + 3])
                out.write(json.dumps({"timing": True, "method": "optuna-gp", "observations": m,
                                      "cold_s": times[m], "warm_s": window[len(window) // 2]}) + "\n")
                print(f"optuna-gp trial at {m} observations: {window[len(window)//2]*1e3:.1f} ms", file=sys.stderr)


if __name__ == "__main__":
    main()
