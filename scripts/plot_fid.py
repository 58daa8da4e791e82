#!/usr/bin/python3
"""Plot FID against generator steps and wall time from RUN_DIR/fid.tsv.

  scripts/plot_fid.py RUN_DIR OUT.png [MODEL_NAME]   (needs python3-matplotlib)
"""
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    run, out = sys.argv[1], sys.argv[2]
    name = sys.argv[3] if len(sys.argv) > 3 else "fmnist-small"
    rows = [l.rstrip("\n").split("\t") for l in open(f"{run}/fid.tsv")][1:]
    g = [int(r[1]) for r in rows]
    t = [float(r[2]) / 60 for r in rows]
    fid = [float(r[3]) for r in rows]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.4))
    ax[0].plot(g, fid, "o-")
    ax[0].set_xlabel("generator steps")
    ax[1].plot(t, fid, "o-", color="C1")
    ax[1].set_xlabel("wall time (minutes, 2 cores)")
    for a in ax:
        a.set_ylabel("FID (bench/fid Fashion-MNIST CNN)")
        a.set_yscale("log")
        a.grid(True, which="both", alpha=0.3)
    fig.suptitle("%s trained by examples/train, FID of 10,000 EMA samples" % name)
    fig.tight_layout()
    fig.savefig(out, dpi=100)


if __name__ == "__main__":
    main()
