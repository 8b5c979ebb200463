import sys
# Split a bench_sim OT_TRACE into runs (each ends with a "recommended" line) and count how many are identical.
def runs(p):
    out, cur = [], []
    for l in open(p):
        cur.append(l)
        if ' recommended ' in l:
            out.append(''.join(cur)); cur = []
    return out
a, b = runs(sys.argv[1]), runs(sys.argv[2])
same = sum(x == y for x, y in zip(a, b))
print(f"{same} of {len(a)} runs identical")
