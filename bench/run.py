#!/usr/bin/python3
"""Benchmark libtransgan against PyTorch (the project's oracle), side by side.

  bench/run.py [--bench build/bench/bench] [--threads 1,2] [--seconds 3] [--runs 5]
               [--train-runs R] [--batches 1,16,64] [--peak-seconds 1]
               [--peer-runs 3] [--peer-train-calls K] [--no-peer] [--precision f32]
               [--out bench/results]
               DESC.json [DESC.json ...]

For every descriptor:
  1. runs build/bench/bench with each thread count (1 and 2: the scaling);
  2. cross-checks bench's FLOPs per image against `tests/reference/oracle.py flops DESC`;
  3. runs the PyTorch peer benchmark (bench/peer_bench.py, which times
     tests/reference/oracle.py) with the same batches and the largest thread
     count, with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset for that command
     only: --peer-runs times sampling-only (--no-train: images/s and the sampling
     memory peak), then --peer-runs times training (--batches 1: train_step
     seconds and the training memory peak). Skipped when /usr/bin/python3
     cannot import torch;
  4. writes bench/results/NAME.json (everything) and NAME.md (the table),
     NAME being the descriptor's "name" (else its file name).
Prints every table at the end. Exits 1 if anything failed (the FLOPs check too).
"""
import argparse
import datetime
import json
import math
import os
import platform
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = "/usr/bin/python3"
PEER = os.path.join(ROOT, "bench", "peer_bench.py")
ORACLE = os.path.join(ROOT, "tests", "reference", "oracle.py")


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def run_json(cmd, env=None):
    """Run cmd, pass its stderr through, return the JSON of its last stdout line."""
    log("$ " + " ".join(cmd))
    p = subprocess.run(cmd, stdout=subprocess.PIPE, env=env, text=True, cwd=ROOT)
    if p.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed with status {p.returncode}")
    lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
    if not lines:
        raise RuntimeError(f"{cmd[0]} printed nothing")
    return json.loads(lines[-1])


def torch_importable():
    try:
        p = subprocess.run([PY, "-c", "import torch"], capture_output=True, timeout=300)
        return p.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def machine():
    m = {"model_name": platform.processor() or "unknown", "cpus": os.cpu_count()}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        kv = dict(re.split(r":\s*", ln, maxsplit=1) for ln in out.splitlines() if ":" in ln)
        m["model_name"] = kv.get("Model name", m["model_name"]).strip()
        cores = int(kv.get("Core(s) per socket", "0")) * int(kv.get("Socket(s)", "1") or 1)
        if cores:
            m["cores"] = cores
        m["threads_per_core"] = int(kv.get("Thread(s) per core", "1"))
        for k in ("L2 cache", "L3 cache"):
            if k in kv:
                m[k.lower().replace(" ", "_")] = kv[k].strip()
    except (OSError, ValueError):
        pass
    m["kernel"] = platform.release()
    m["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    m["loadavg_1min_at_start"] = round(os.getloadavg()[0], 2)
    return m


def spread_of(values, digits):
    """median/min/max of a list, like bench.c's."""
    s = sorted(values)
    n = len(s)
    med = s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])
    return {"median": round(med, digits), "min": round(s[0], digits), "max": round(s[-1], digits)}


def peer_bench(desc, batches, threads, runs, train_calls):
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    base = [PY, PEER, desc, "--threads", str(threads)]
    gen_runs = [run_json(base + ["--batches", batches, "--no-train"], env) for _ in range(runs)]
    train_runs = [run_json(base + ["--batches", "1", "--train-calls", str(train_calls)], env)
                  for _ in range(runs)]
    out = {"threads": threads, "torch": gen_runs[0].get("torch"), "runs": runs,
           "train_calls": train_calls, "generate": {}}
    for b in batches.split(","):
        vals = [r["generate_img_per_s"][b] for r in gen_runs]
        out["generate"][b] = {"img_per_s": spread_of(vals, 2)}
    out["train_step_s"] = spread_of([r["train_step_s"] for r in train_runs], 5)
    out["sample_peak_rss_mib"] = max(r["peak_rss_mb"] for r in gen_runs)
    out["train_peak_rss_mib"] = max(r["peak_rss_mb"] for r in train_runs)
    out["raw"] = {"sampling": gen_runs, "training": train_runs}
    return out


def ref_flops(desc):
    p = subprocess.run([PY, ORACLE, "flops", desc], capture_output=True, text=True, cwd=ROOT)
    if p.returncode != 0:
        raise RuntimeError("oracle.py flops failed: " + p.stderr.strip()[-500:])
    return json.loads(p.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- the table

def fmt(x, digits=None):
    if x is None:
        return "—"
    if digits is None:
        a = abs(x)
        digits = 0 if a >= 1000 else 1 if a >= 100 else 2 if a >= 1 else 4
    return f"{x:,.{digits}f}"


def cell(s, digits=None):
    """median (min–max); a single measurement alone"""
    if not s:
        return "—"
    if s.get("single"):
        return fmt(s["median"], digits)
    return f"{fmt(s['median'], digits)} ({fmt(s['min'], digits)}–{fmt(s['max'], digits)})"


def ratio(a, b, digits=2):
    if a is None or b is None or not b:
        return "—"
    return f"{a / b:.{digits}f}×"


def speed(a, b):
    """a / b as 'r× (faster|slower)'"""
    if a is None or b is None or not b:
        return "—"
    return f"{a / b:.2f}× ({'faster' if a >= b else 'slower'})"


def med(s):
    return s["median"] if s else None


def scale(s, k):
    return {key: s[key] * k for key in ("median", "min", "max")} if s else None


def table(res):
    m, mach, lib = res["model"], res["machine"], res["library"]
    tks = sorted(lib, key=int)
    t_hi = tks[-1]
    hi, peer = lib[t_hi], res.get("peer")
    batches = list(hi.get("generate", {}))
    gf = m["generator_flops"]
    L = []
    L.append(f"# libtransgan vs PyTorch: {m['name'] or res['descriptor']}")
    L.append("")
    cores = mach.get("cores", mach.get("cpus"))
    torch_v = peer["torch"] if peer else "not measured"
    L.append(f"- machine: {mach['model_name']}, {cores} cores / {mach['cpus']} CPUs, "
             f"oneDNN {hi['onednn']}, PyTorch {torch_v}, libtransgan {hi['version']}, "
             f"{mach['date']}, 1-min load average at start {mach['loadavg_1min_at_start']}")
    L.append(f"- model: `{res['descriptor']}`: generator {fmt(gf / 1e6, 1)} MFLOP/image, "
             f"discriminator {fmt(m['discriminator_flops'] / 1e6, 1)} MFLOP/image "
             f"(FLOPs check against oracle.py: {res['flops_check']}), "
             f"train batches d {m['d_batch']} / g {m['g_batch']}, n_critic {m['n_critic']}")
    s = res["settings"]
    L.append(f"- library: median of {s['runs']} run(s) of ≥ {s['seconds']} s (training: "
             f"{s['train_runs']} run(s) of whole G/D iterations), spread = (min–max); "
             f"PyTorch: {'median of %d peer_bench.py run(s)' % peer['runs'] if peer else 'skipped'}")
    L.append("")
    head = "| measure | " + " | ".join(f"libtransgan {t} thr" for t in tks)
    head += f" | PyTorch {peer['threads']} thr | library vs PyTorch |" if peer else " |"
    L.append(head)
    L.append("|---" * (1 + len(tks) + (2 if peer else 0)) + "|")

    def row(name, key_fn, digits=None, cmp=None):
        cells = [cell(key_fn(lib[t]), digits) for t in tks]
        line = f"| {name} | " + " | ".join(cells)
        if peer:
            pv = key_fn(peer)
            line += f" | {cell(pv, digits)} | {cmp(med(key_fn(hi)), med(pv)) if cmp else '—'}"
        L.append(line + " |")

    def gen(b):
        return lambda r: r.get("generate", {}).get(b, {}).get("img_per_s")

    for b in batches:
        row(f"generate b={b} (img/s)", gen(b), cmp=lambda a, p: speed(a, p))
    row("train_step (s/call)", lambda r: r.get("train_step_s"), cmp=lambda a, p: speed(p, a))
    row("peak RSS, sampling (MiB)", lambda r: _pt(r.get("sample_peak_rss_mib")), 1,
        cmp=lambda a, p: ratio(a, p) + " of PyTorch's")
    row("peak RSS, training (MiB)", lambda r: _pt(r.get("train_peak_rss_mib")), 1,
        cmp=lambda a, p: ratio(a, p) + " of PyTorch's")
    bmax = str(max(int(b) for b in batches))
    row(f"GFLOP/s, generate b={bmax}", lambda r: scale(gen(bmax)(r), gf * 1e-9), 2,
        cmp=lambda a, p: speed(a, p))

    def pct(r, t):
        pk = lib[t].get("peak", {}).get("gflops")
        g = scale(gen(bmax)(r), gf * 1e-9)
        return scale(g, 100.0 / pk) if g and pk else None
    cells = [cell(pct(lib[t], t), 1) for t in tks]
    line = f"| % of measured FP32 peak, b={bmax} | " + " | ".join(cells)
    if peer:
        line += f" | {cell(pct(peer, t_hi), 1)} | —"
    L.append(line + " |")
    cells = [f"{fmt(lib[t]['peak']['gflops'], 1)} ({lib[t]['peak']['isa']}, best of trials)"
             if "peak" in lib[t] else "—" for t in tks]
    line = "| measured FP32 FMA peak (GFLOP/s) | " + " | ".join(cells)
    L.append(line + (" | same machine | — |" if peer else " |"))
    L.append("")
    if len(tks) > 1:
        lo = lib[tks[0]]
        parts = []
        for b in batches:
            parts.append(f"generate b={b} {ratio(med(gen(b)(hi)), med(gen(b)(lo)))}")
        if lo.get("train_step_s") and hi.get("train_step_s"):
            parts.append(f"train_step {ratio(med(lo['train_step_s']), med(hi['train_step_s']))}")
        L.append(f"Library speed-up {tks[0]} → {t_hi} threads (ratio of medians): "
                 + ", ".join(parts) + ".")
        L.append("")
    L.append("Ratios compare medians at the largest thread count: images/s and GFLOP/s are "
             "library ÷ PyTorch, train_step is PyTorch ÷ library (so > 1× means the library is "
             "faster), memory is library ÷ PyTorch (< 1× means the library needs less). Peak RSS "
             "is getrusage ru_maxrss of a process that only samples or only trains (the library: "
             "forked children; PyTorch: peer_bench.py --no-train, and a run that samples only "
             "at batch 1 before training), the maximum over runs.")
    return "\n".join(L) + "\n"


def _pt(v):
    """a single number as a spread"""
    return None if v is None else {"median": v, "min": v, "max": v, "single": True}


# ---------------------------------------------------------------- main

def one(desc, a, have_torch):
    res = {"descriptor": os.path.relpath(desc, ROOT), "machine": machine(),
           "settings": {"threads": a.threads, "seconds": a.seconds, "runs": a.runs,
                        "train_runs": a.train_runs or a.runs, "batches": a.batches,
                        "peak_seconds": a.peak_seconds}}
    if res["machine"]["loadavg_1min_at_start"] > 0.5:
        log(f"warning: load average {res['machine']['loadavg_1min_at_start']}: "
            "the machine is not quiet, numbers will be low and noisy")
    lib = {}
    for t in [int(x) for x in a.threads.split(",")]:
        cmd = [a.bench, desc, "--threads", str(t), "--seconds", str(a.seconds), "--runs",
               str(a.runs), "--batches", a.batches, "--peak-seconds", str(a.peak_seconds),
               "--precision", a.precision]
        if a.train_runs:
            cmd += ["--train-runs", str(a.train_runs)]
        lib[str(t)] = run_json(cmd)
    res["library"] = lib
    model = next(iter(lib.values()))["model"]
    res["model"] = model
    ok = True
    if have_torch:
        ref = ref_flops(desc)
        keys = ("generator_flops", "discriminator_flops", "generator_params",
                "discriminator_params")
        bad = [k for k in keys if int(ref[k]) != int(model[k])]
        res["flops_reference"] = ref
        res["flops_check"] = "match" if not bad else "MISMATCH in " + ", ".join(bad)
        if bad:
            ok = False
            log("error: FLOPs/params differ from oracle.py: "
                + ", ".join(f"{k} {model[k]} vs {ref[k]}" for k in bad))
        if not a.no_peer:
            nc = max(1, int(model["n_critic"]))
            calls = a.peer_train_calls or nc * math.ceil(8 / nc)
            threads = max(int(x) for x in a.threads.split(","))
            res["peer"] = peer_bench(desc, a.batches, threads, a.peer_runs, calls)
    else:
        res["flops_check"] = "not run (no torch)"
        log("warning: /usr/bin/python3 cannot import torch: PyTorch peer and FLOPs check skipped")
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", model.get("name") or "") or \
        os.path.splitext(os.path.basename(desc))[0]
    os.makedirs(a.out, exist_ok=True)
    md = table(res)
    jpath, mpath = os.path.join(a.out, name + ".json"), os.path.join(a.out, name + ".md")
    with open(jpath, "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    with open(mpath, "w") as f:
        f.write(md)
    log(f"wrote {jpath} and {mpath}")
    return ok, md


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("descriptors", nargs="+")
    ap.add_argument("--bench", default=os.path.join(ROOT, "build", "bench", "bench"))
    ap.add_argument("--threads", default="1,2", help="thread counts for the library")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--train-runs", type=int, default=0, help="default: --runs")
    ap.add_argument("--batches", default="1,16,64")
    ap.add_argument("--peak-seconds", type=float, default=1.0)
    ap.add_argument("--peer-runs", type=int, default=3)
    ap.add_argument("--peer-train-calls", type=int, default=0,
                    help="default: the multiple of n_critic >= 8")
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--precision", default="f32",
                    help="the library's compute precision (bench --precision)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    a = ap.parse_args()
    a.bench = os.path.abspath(a.bench)
    a.out = os.path.abspath(a.out)
    have_torch = torch_importable()
    tables, ok = [], True
    for d in a.descriptors:
        try:
            good, md = one(os.path.abspath(d), a, have_torch)
            ok &= good
            tables.append(md)
        except (RuntimeError, OSError, ValueError, KeyError) as e:
            log(f"{d}: {e}")
            ok = False
    for md in tables:
        print(md)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
