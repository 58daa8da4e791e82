#!/usr/bin/python3
"""FID against wall-clock training time on Fashion-MNIST (`make quality`).

  bench/quality/quality.py run DESC.json [--minutes M] [--every X] [--out DIR] ...
  bench/quality/quality.py continue DIR --minutes M [--every X] [--threads T]
                                               (train a finished run on, score again)
  bench/quality/quality.py score DIR            (score a run's checkpoints again)
  bench/quality/quality.py plot OUT.png DIR...  (several runs' curves in one plot)

`run` trains DESC with build/examples/train for a fixed wall-clock budget
(--minutes, the training loop only), saving a checkpoint every --every
minutes (`train --minutes M --every-minutes X --keep 1`). Then, with the
training finished (so scoring takes no CPU from it), each checkpoint's EMA
generator samples --samples images (build/examples/generate, seed 1) that the
repository's evaluator bench/fid/fmnist_fid.py scores against the 10,000 test
images. DIR (default bench/results/quality-NAME, NAME the descriptor file's
stem) receives:

  curve.png      FID (log scale) against training minutes, the evaluator's
                 baselines drawn as horizontal lines
  quality.md     the table (minutes, D steps, G steps, images seen by D, FID,
                 classifier score) with the command, the machine's load and
                 the baselines
  quality.json   the same as data
  samples_<d_steps>.png   64 EMA samples per checkpoint (train's grids, fixed z)
  run/           train's output: log.tsv, checkpoints, train.out

`continue` resumes a finished run from its last checkpoint (`train --resume`:
weights, EMA, optimiser state, RNG and data order continue exactly) for M more
minutes, with timed saves every X minutes (default: the run's), and scores all
its checkpoints again: the curve goes on where it stopped, the minutes summed
over the parts (log.tsv's clock). A long curve can so be measured in parts,
e.g. on a machine that is only free for an hour at a time; each part's load
and start are recorded.

A class-conditional descriptor (num_classes > 0) trains on Fashion-MNIST's
labels (`train --labels fmnist`); its checkpoints are sampled with image i of
class i mod K (`generate --class cycle`), and the table adds the class accuracy
(how many samples the evaluator's classifier puts in the class asked for),
overall and per class at the last checkpoint.

The baselines (real, noisy, blurred training images: `fmnist_fid.py
--baselines`) are computed once and cached in bench/results/quality-baselines.json.
Needs `make all examples` and the packages of bench/fid/README.md. The machine
is shared: the load average (uptime) before and after training is recorded,
since minutes under load are worth fewer steps than quiet ones.
"""
import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench", "fid"))
import fmnist_fid  # noqa: E402

BASELINE_CACHE = os.path.join(ROOT, "bench", "results", "quality-baselines.json")
# the evaluator's reference sets drawn beside the curves (fmnist_fid.baselines names)
BASELINE_ROWS = [("train 10k (real)", "real images"),
                 ("train, noise (sigma 0.2)", "noisy (sigma 0.2)"),
                 ("train, blurred (sigma 1 px)", "blurred (1 px)")]


def loadavg():
    try:
        return open("/proc/loadavg").read().split()[:3]
    except OSError:
        return ["?"] * 3


def read_log(path):
    """train's log.tsv: {d_steps: (g_steps, seconds)}"""
    rows = {}
    with open(path) as f:
        next(f)
        for line in f:
            p = line.split("\t")
            rows[int(p[0])] = (int(p[1]), float(p[2]))
    return rows


def baselines(ev, n):
    if os.path.exists(BASELINE_CACHE):
        with open(BASELINE_CACHE) as f:
            cached = json.load(f)
        if cached.get("n") == n:
            return cached["baselines"]
    b = ev.baselines(n=n)
    os.makedirs(os.path.dirname(BASELINE_CACHE), exist_ok=True)
    with open(BASELINE_CACHE, "w") as f:
        json.dump({"n": n, "baselines": {k: v["fid"] for k, v in b.items()}}, f, indent=1)
    return {k: v["fid"] for k, v in b.items()}


def metadata_of(ckpt):
    """a checkpoint's __metadata__ (descriptor, steps, ada_state, ...)"""
    with open(ckpt, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        return json.loads(f.read(n))["__metadata__"]


def aug_p(meta, desc):
    """the DiffAugment probability at a checkpoint: ADA's (ada_state) or the fixed one"""
    if "ada_state" in meta:
        return round(float.fromhex(meta["ada_state"].split()[0]), 4)
    return desc["training"].get("diffaug_p", 1.0)


def score(out, samples, bins, log=print):
    """score every run/checkpoint_<d>.safetensors; returns and writes the rows"""
    run = os.path.join(out, "run")
    steps = read_log(os.path.join(run, "log.tsv"))
    cks = sorted((int(m.group(1)), name) for name in os.listdir(run)
                 if (m := re.fullmatch(r"checkpoint_(\d+)\.safetensors", name)))
    if not cks:
        raise SystemExit("quality: no checkpoint_<d>.safetensors in %s" % run)
    desc = json.loads(metadata_of(os.path.join(run, cks[0][1]))["descriptor"])
    d_batch = desc["training"]["d_batch"]
    ev = fmnist_fid.Evaluator()
    rows = []
    npy = os.path.join(out, "samples.npy")
    # a class-conditional model is asked for each class in turn (image i of
    # class i mod K: `generate --class cycle`), so the FID is of a class-balanced
    # set and the evaluator's classifier can say how often sample i is of class i mod K
    ncls = desc.get("num_classes", 0)
    for d, name in cks:
        g = subprocess.run([bins["generate"], os.path.join(run, name), "--n", str(samples),
                            "--seed", "1", "--npy", npy] + (["--class", "cycle"] if ncls else []),
                           capture_output=True, text=True)
        if g.returncode != 0:  # its progress goes to stderr: shown only on failure
            raise SystemExit("quality: generate failed on %s:\n%s" % (name, g.stderr[-2000:]))
        x = fmnist_fid.load_samples(npy)
        r = ev.score(x)
        acc = ev.class_report(x, np.arange(len(x)) % ncls) if ncls else None
        g, secs = steps.get(d, (None, None))
        row = {"minutes": None if secs is None else round(secs / 60, 2), "d_steps": d,
               "g_steps": g, "images_seen": d * d_batch, "fid": r["fid"],
               "classifier_score": r["classifier_score"], "n": r["n"],
               "aug_p": aug_p(metadata_of(os.path.join(run, name)), desc)}
        if acc:
            row["class_accuracy"] = acc["accuracy"]
            row["per_class"] = {v["name"]: v["accuracy"] for v in acc["per_class"].values()}
        rows.append(row)
        log("quality: d_steps %d  %s min  FID %.2f  score %.2f%s" % (
            d, row["minutes"], r["fid"], r["classifier_score"],
            "  class accuracy %.1f%%" % (100 * acc["accuracy"]) if acc else ""))
        grid = os.path.join(run, "samples_%d.png" % d)
        if os.path.exists(grid):
            shutil.copy(grid, os.path.join(out, "samples_%d.png" % d))
    os.remove(npy)
    return desc, rows, baselines(ev, 10000)


# ------------------------------------------------------------------ plotting (PIL only)

COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75)]


def plot(path, curves, base, title, xlabel="training wall time (minutes)"):
    """curves: [(label, [(x, fid)])], x minutes (or steps); FID on a log axis,
    baselines dashed"""
    W, H, L, R, T, B = 760, 440, 70, 200, 34, 50
    img = Image.new("RGB", (W, H), "white")
    dr = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    pts = [p for _, c in curves for p in c if p[0] is not None and p[1] > 0]
    xmax = max([p[0] for p in pts] + [1.0]) * 1.05
    ys = [p[1] for p in pts] + [v for v in base.values() if v > 0]
    lo, hi = np.log10(max(min(ys), 0.1)) - 0.1, np.log10(max(ys)) + 0.1

    def X(m):
        return L + (W - L - R) * m / xmax

    def Y(f):
        return T + (H - T - B) * (hi - np.log10(max(f, 1e-3))) / (hi - lo)

    dr.rectangle([L, T, W - R, H - B], outline="black")
    for e in range(int(np.floor(lo)), int(np.ceil(hi)) + 1):
        for k in (1, 2, 5):
            v = k * 10.0 ** e
            if lo <= np.log10(v) <= hi:
                y = Y(v)
                dr.line([L, y, W - R, y], fill=(225, 225, 225))
                dr.text((L - 8, y - 6), "%g" % v, fill="black", font=font, anchor="ra")
    step = next(s for s in (1, 2, 5, 10, 15, 20, 30, 60, 120, 250, 500, 1000, 2000, 5000,
                            10000, 20000, 50000) if xmax / s <= 10)
    for m in np.arange(0, xmax, step):
        dr.line([X(m), H - B, X(m), H - B + 4], fill="black")
        dr.text((X(m), H - B + 6), "%g" % m, fill="black", font=font, anchor="ma")
    dr.text(((L + W - R) / 2, H - 18), xlabel, fill="black", font=font,
            anchor="ma")
    dr.text((8, T - 13), "FID (bench/fid, log scale)", fill="black", font=font)
    dr.text((L, 3), title, fill="black", font=font)
    for name, v in base.items():
        y = Y(v)
        for x0 in range(L, W - R, 10):
            dr.line([x0, y, min(x0 + 5, W - R), y], fill=(120, 120, 120))
        dr.text((W - R + 6, y - 6), "%s %.1f" % (name, v), fill=(90, 90, 90), font=font)
    for i, (label, c) in enumerate(curves):
        col = COLOURS[i % len(COLOURS)]
        xy = [(X(m), Y(f)) for m, f in c if m is not None and f > 0]
        if len(xy) > 1:
            dr.line(xy, fill=col, width=2)
        for x, y in xy:
            dr.ellipse([x - 3, y - 3, x + 3, y + 3], fill=col)
        ly, lx = T + 8 + 14 * i, W - R - 190  # top right: curves fall from the top left
        dr.line([lx, ly + 5, lx + 20, ly + 5], fill=col, width=2)
        dr.text((lx + 24, ly), label[:26], fill="black", font=font)
    img.save(path)


def base_lines(base):
    return {label: base[key] for key, label in BASELINE_ROWS if key in base}


def threads_text(n):
    """train --threads N in words (0: the library's own choice)"""
    return "%d threads" % n if n else "the library's load-following thread count"


def write(out, desc, rows, base, meta):
    name = meta["name"]
    cond = "class_accuracy" in rows[0]
    with open(os.path.join(out, "quality.json"), "w") as f:
        json.dump({**meta, "rows": rows, "baselines": base, "descriptor": desc}, f, indent=1)
    plot(os.path.join(out, "curve.png"), [(name, [(r["minutes"], r["fid"]) for r in rows])],
         base_lines(base), "%s: FID of %d EMA samples" % (name, rows[0]["n"]))
    t = desc["training"]
    lines = ["# Quality run: %s" % name, "",
             "    %s" % meta["command"], "",
             "Descriptor `%s`: d_batch %d, g_batch %d, n_critic %d, lr G %g / D %g, diffaug %s%s." % (
                 meta["descriptor_path"], t["d_batch"], t["g_batch"], t["n_critic"], t["g_lr"],
                 t["d_lr"], t["diffaug"],
                 "".join(", %s %s" % (k, json.dumps(t[k])) for k in ("diffaug_p", "ada", "precision",
                                                                 "lr_schedule", "r1_gamma", "r1_interval", "ema")
                         if k in t)),
             "Trained %g min (training loop only), %s, on %s; load average (1/5/15 min) "
             "%s before and %s after training; started %s. Figures measured under that load." % (
                 meta["minutes_budget"] - sum(c["minutes"] for c in meta.get("continued", [])),
                 threads_text(meta["threads"]), meta["host"],
                 "/".join(meta["load_before"]), "/".join(meta["load_after"]), meta["started"]),
             ] + ["Continued for %g min on %s: `%s`; load %s before and %s after; started %s." % (
                 c["minutes"], threads_text(c["threads"]), c["command"],
                 "/".join(c["load_before"]), "/".join(c["load_after"]), c["started"])
                  for c in meta.get("continued", [])] + (
             ["%g min of training in all." % meta["minutes_budget"]] if meta.get("continued") else []) + [
             "", "| minutes | D steps | G steps | images seen by D | FID | classifier score "
             "| DiffAugment p |%s" % (" class accuracy |" if cond else ""),
             "|---:|---:|---:|---:|---:|---:|---:|%s" % ("---:|" if cond else "")]
    for r in rows:
        lines.append("| %s | %d | %s | %d | %.2f | %.2f | %s |%s" % (
            r["minutes"], r["d_steps"], r["g_steps"], r["images_seen"], r["fid"],
            r["classifier_score"], r["aug_p"],
            " %.1f %% |" % (100 * r["class_accuracy"]) if cond else ""))
    if cond:
        last = rows[-1]
        lines += ["", "Class accuracy at %d D steps (samples asked for class k that the "
                  "evaluator's classifier puts in class k; the classifier is right on %s of "
                  "the real test images):" % (last["d_steps"], "90.4 %"), "",
                  "| " + " | ".join(last["per_class"]) + " |",
                  "|" + "---:|" * len(last["per_class"]),
                  "| " + " | ".join("%.1f %%" % (100 * v) for v in last["per_class"].values())
                  + " |"]
    lines += ["", "Baselines on the same evaluator (10,000 images): " +
              ", ".join("%s %.1f" % (k, v) for k, v in base_lines(base).items()) + ".", "",
              "![FID against minutes](curve.png)", ""]
    last = rows[-1]["d_steps"]
    lines.append("EMA samples at %d D steps: ![samples](samples_%d.png)" % (last, last))
    with open(os.path.join(out, "quality.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("quality: baselines " + ", ".join("%s %.1f" % kv for kv in base_lines(base).items()))
    print("quality: wrote %s/quality.md, quality.json, curve.png" % out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("descriptor")
    r.add_argument("--minutes", type=float, default=15)
    r.add_argument("--every", type=float, default=3, help="minutes between checkpoints")
    r.add_argument("--out")
    r.add_argument("--samples", type=int, default=10000, help="per checkpoint (10,000: bench/fid)")
    r.add_argument("--threads", type=int, default=0,
                   help="train --threads; 0 (default): the library's load-following count")
    r.add_argument("--seed", type=int, default=1, help="data order (train --seed)")
    r.add_argument("--limit", type=int, default=0, help="use only the first N training images")
    r.add_argument("--build", default=os.path.join(ROOT, "build"))
    c = sub.add_parser("continue")
    c.add_argument("out", help="a finished run's folder (quality.json, run/)")
    c.add_argument("--minutes", type=float, required=True, help="more minutes of training")
    c.add_argument("--every", type=float, help="minutes between checkpoints (default: the run's)")
    c.add_argument("--threads", type=int, help="train --threads (default: the run's)")
    c.add_argument("--samples", type=int, default=10000)
    c.add_argument("--build", default=os.path.join(ROOT, "build"))
    s = sub.add_parser("score")
    s.add_argument("out")
    s.add_argument("--samples", type=int, default=10000)
    s.add_argument("--build", default=os.path.join(ROOT, "build"))
    p = sub.add_parser("plot")
    p.add_argument("png")
    p.add_argument("dirs", nargs="+", help="run folders, each DIR or LABEL=DIR")
    p.add_argument("--title", default="FID against training wall time (Fashion-MNIST)")
    p.add_argument("--x", choices=["minutes", "d_steps"], default="minutes",
                   help="x axis: wall-clock minutes, or D steps (load-independent)")
    a = ap.parse_args(argv)

    if a.cmd == "plot":
        curves, base = [], {}
        for d in a.dirs:
            label, _, d = d.rpartition("=")  # LABEL=DIR names the curve; DIR: its run's name
            with open(os.path.join(d, "quality.json")) as f:
                q = json.load(f)
            curves.append((label or q["name"], [(x[a.x], x["fid"]) for x in q["rows"]]))
            base = q["baselines"]
        plot(a.png, curves, base_lines(base), a.title,
             "training wall time (minutes)" if a.x == "minutes" else "discriminator steps")
        return 0

    bins = {k: os.path.join(a.build, "examples", k) for k in ("train", "generate")}
    for b in bins.values():
        if not os.access(b, os.X_OK):
            raise SystemExit("quality: %s is missing: run `make all examples` first" % b)
    if a.cmd == "score":
        meta, _ = run_meta(a.out)
        desc, rows, base = score(a.out, a.samples, bins)
        write(a.out, desc, rows, base, meta)
        return 0

    if a.cmd == "continue":
        meta, desc = run_meta(a.out)
        conditional = desc.get("num_classes", 0)
        run = os.path.join(a.out, "run")
        ckpt = os.path.join(run, "checkpoint.safetensors")
        if not os.path.exists(ckpt):
            raise SystemExit("quality: %s is missing: `continue` needs the run folder of a "
                             "finished `run` (its run/ with the last checkpoint)" % ckpt)
        every = a.every if a.every is not None else meta.get("every")
        if every is None:  # a run made before the folder recorded it
            raise SystemExit("quality: %s does not say the run's checkpoint interval: "
                             "give --every" % os.path.join(a.out, "quality.json"))
        threads = a.threads if a.threads is not None else meta["threads"]
        part = {"minutes": a.minutes, "every": every, "threads": threads,
                "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "load_before": loadavg(),
                "command": "/usr/bin/python3 bench/quality/quality.py continue %s --minutes %g "
                           "--every %g --threads %d" % (a.out, a.minutes, every, threads)}
        # an older run's meta lacks the data options: it ran with the defaults
        train(bins, ["--resume", ckpt], a.minutes, every, threads, meta.get("seed", 1),
              meta.get("limit", 0), conditional, run)
        part["load_after"] = loadavg()
        meta["minutes_budget"] += a.minutes
        meta.setdefault("continued", []).append(part)
        desc, rows, base = score(a.out, a.samples, bins)
        write(a.out, desc, rows, base, meta)
        return 0

    name = os.path.splitext(os.path.basename(a.descriptor))[0]
    out = a.out or os.path.join(ROOT, "bench", "results", "quality-" + name)
    run = os.path.join(out, "run")
    if os.path.exists(run):
        shutil.rmtree(run)  # a new run: no checkpoints of an older one may be scored
    os.makedirs(run)
    with open(a.descriptor) as f:
        conditional = json.load(f).get("num_classes", 0)
    # the options that change the run, as QUALITY_ARGS of the recorded command
    extra = " ".join(o for o in ("--threads %d" % a.threads if a.threads else "",
                                 "--seed %d" % a.seed if a.seed != 1 else "",
                                 "--limit %d" % a.limit if a.limit else "") if o)
    meta = {"name": name, "descriptor_path": os.path.relpath(os.path.abspath(a.descriptor), ROOT),
            "minutes_budget": a.minutes, "every": a.every, "threads": a.threads,
            "seed": a.seed, "limit": a.limit, "host": platform.node(),
            "cpus": os.cpu_count(), "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "load_before": loadavg(),
            "command": "make quality QUALITY_DESC=%s QUALITY_MINUTES=%g QUALITY_EVERY=%g%s" % (
                os.path.relpath(os.path.abspath(a.descriptor), ROOT), a.minutes, a.every,
                ' QUALITY_ARGS="%s"' % extra if extra else "")}
    print("quality: training %s for %g min (checkpoint every %g min) into %s" % (
        a.descriptor, a.minutes, a.every, run), flush=True)
    train(bins, ["--model", a.descriptor], a.minutes, a.every, a.threads, a.seed, a.limit,
          conditional, run)
    meta["load_after"] = loadavg()
    desc, rows, base = score(out, a.samples, bins)
    write(out, desc, rows, base, meta)
    return 0


def run_meta(out):
    """a run folder's quality.json without what scoring writes anew (rows,
    baselines, descriptor): (meta, descriptor)"""
    with open(os.path.join(out, "quality.json")) as f:
        meta = json.load(f)
    for k in ("rows", "baselines"):
        meta.pop(k, None)
    return meta, meta.pop("descriptor", {})


def train(bins, start, minutes, every, threads, seed, limit, conditional, run):
    """train START (--model DESC or --resume CKPT) for MINUTES into RUN, a
    checkpoint kept every EVERY minutes; its output goes to run/train.out
    (appended to by a continued run)"""
    cmd = [bins["train"]] + start + ["--data", "fmnist", "--minutes", str(minutes),
                                     "--every-minutes", str(every), "--every", "0", "--keep", "1",
                                     "--threads", str(threads), "--seed", str(seed), "--out", run]
    if limit:
        cmd += ["--limit", str(limit)]
    if conditional:
        cmd += ["--labels", "fmnist"]  # a conditional model trains on the class labels
    with open(os.path.join(run, "train.out"), "a") as f:
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        sys.stdout.write(open(os.path.join(run, "train.out")).read()[-2000:])
        raise SystemExit("quality: train failed (status %d)" % rc)


if __name__ == "__main__":
    sys.exit(main())
