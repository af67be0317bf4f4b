#!/usr/bin/env python3
"""Writes the example workload trace for `scheduler_bench --nodes --pods`.

Usage: python3 bench/scheduler/examples/gen.py [OUTDIR [SEED]]
(default: this folder and SEED below, which made the committed files)

Python standard library only; the output depends on nothing but the seed, so rerunning it
rewrites nodes.csv and pods.csv byte for byte. The workload is synthetic (no real trace
behind it): three independent Poisson arrival streams, one per kind of request, each sized
so that its mean demand is LOAD of the capacity that can serve it, with log-normal
durations. Format of both files: docs/performance.md, "Scheduler: replaying a workload
trace".
"""
import math
import os
import random
import sys

SEED = 20261207
LOAD = 0.85            # mean demand / capacity, per stream
HORIZON_S = 4 * 3600   # arrivals in [0, HORIZON_S)
DUR_MEDIAN_S = 1200.0  # log-normal durations: median 20 min, sigma 1 (mean about 33 min)
DUR_SIGMA = 1.0
DUR_MIN_S = 30.0

H100 = "NVIDIA-H100-80GB-HBM3"
A100 = "NVIDIA-A100-SXM4-80GB"
L4 = "NVIDIA-L4"
MIG_LAYOUT = "mig=1g.10gb+2g.20gb+3g.40gb+7g.80gb"

# (name prefix, count, GPU model, GPUs per node, sharing, layout)
NODE_GROUPS = [
    ("h100", 16, H100, 8, "exclusive", "-"),
    ("a100", 6, A100, 8, "exclusive", "-"),
    ("a100mig", 10, A100, 8, "mig", MIG_LAYOUT),
    ("l4ts", 18, L4, 4, "timeslicing", "slices=4"),
]

# Streams: (name, capacity in GPUs that can serve it, [(weight, gpu, gpu_model, mig_profile,
# GPUs held once mapped (see trace.h toRequest))]).
WHOLE = [  # whole GPUs on the Exclusive nodes (H100 128 + A100 48 GPUs)
    (w * m, str(n), model, "", float(n))
    for n, w in ((1, 0.50), (2, 0.25), (4, 0.15), (8, 0.10))
    for model, m in ((H100, 0.55), (A100, 0.20), ("", 0.25))
]
MIG = [  # one MIG instance on the A100 MIG nodes (80 GPUs); held = compute slices / 7
    (0.50, "143m", A100, "1g.10gb", 1 / 7),
    (0.30, "286m", A100, "2g.20gb", 2 / 7),
    (0.20, "429m", A100, "3g.40gb", 3 / 7),
]
SHARE = [  # fractions on the time-sliced L4 nodes (72 GPUs, 4 slices each)
    (0.20, "100m", L4, "", 0.25),
    (0.05, "125m", "", "", 0.25),
    (0.30, "250m", L4, "", 0.25),
    (0.10, "300m", L4, "", 0.50),
    (0.20, "500m", "", "", 0.50),
    (0.05, "750m", L4, "", 1.00),
    (0.10, "200m", L4, "", 0.25),
]
STREAMS = [("whole", 128 + 48, WHOLE), ("mig", 80, MIG), ("share", 72, SHARE)]


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else SEED
    rng = random.Random(seed)
    mean_dur = DUR_MEDIAN_S * math.exp(DUR_SIGMA ** 2 / 2)
    pods = []
    for name, capacity, mix in STREAMS:
        total_w = sum(m[0] for m in mix)
        mean_held = sum(m[0] * m[4] for m in mix) / total_w
        rate = LOAD * capacity / (mean_held * mean_dur)  # arrivals per second
        t = 0.0
        while True:
            t += rng.expovariate(rate)
            if t >= HORIZON_S:
                break
            r = rng.random() * total_w
            for m in mix:
                r -= m[0]
                if r <= 0:
                    break
            dur = max(DUR_MIN_S, rng.lognormvariate(math.log(DUR_MEDIAN_S), DUR_SIGMA))
            pods.append((round(t, 3), round(dur, 3), m[1], m[2], m[3]))
    pods.sort(key=lambda p: p[0])
    gen = "bench/scheduler/examples/gen.py"
    with open(os.path.join(out, "nodes.csv"), "w") as f:
        f.write(f"# Example cluster for scheduler_bench --nodes; written by {gen} (seed {seed}).\n")
        f.write("# " + ", ".join(f"{c} x {p} ({m}, {g} GPUs, {s}{'' if l == '-' else ' ' + l})"
                                 for p, c, m, g, s, l in NODE_GROUPS) + ".\n")
        f.write("name,gpu_model,gpus,sharing,layout\n")
        for prefix, count, model, gpus, sharing, layout in NODE_GROUPS:
            for i in range(count):
                f.write(f"{prefix}-{i:02d},{model},{gpus},{sharing},{layout}\n")
    with open(os.path.join(out, "pods.csv"), "w") as f:
        f.write(f"# Example workload for scheduler_bench --pods; written by {gen} (seed {seed}).\n")
        f.write(f"# Synthetic: Poisson arrivals over {HORIZON_S} s in three streams (whole GPUs,\n")
        f.write("# MIG instances, time-sliced fractions), each at a mean demand of "
                f"{LOAD:.0%} of the GPUs that can serve it;\n")
        f.write(f"# log-normal durations (median {DUR_MEDIAN_S:.0f} s, sigma {DUR_SIGMA}, "
                f"at least {DUR_MIN_S:.0f} s). {len(pods)} pods.\n")
        f.write("arrival_s,duration_s,gpu,gpu_model,mig_profile\n")
        for a, d, g, model, mig in pods:
            f.write(f"{a:.3f},{d:.3f},{g},{model},{mig}\n")


if __name__ == "__main__":
    main()
