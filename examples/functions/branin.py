#!/usr/bin/env python3
"""Branin-Hoo test function for the command backend (minimum 0.397887 at three points).

Reads the configuration from the environment (TUNE_X1, TUNE_X2) like any command-backend
program may; the same values also arrive as a JSON object on stdin.
"""
import json
import math
import os
import sys

cfg = json.load(sys.stdin)
x1 = float(os.environ.get("TUNE_X1", cfg["x1"]))
x2 = float(os.environ.get("TUNE_X2", cfg["x2"]))
a, b, c = 1.0, 5.1 / (4 * math.pi**2), 5 / math.pi
r, s, t = 6.0, 10.0, 1 / (8 * math.pi)
value = a * (x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s
print(json.dumps({"value": value}))
