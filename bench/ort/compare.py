#!/usr/bin/python3
"""libtransgan against ONNX Runtime, interleaved (make bench-ort).

  bench/ort/compare.py [--lib-bench build/bench/lib_bench] [--ort-dir build/ort]
                       [--threads 2] [--batches 1,16,64] [--disc-batches 64]
                       [--seconds 2] [--runs 5] [--tune-seconds 1] [--no-tune]
                       [--precisions f32,bf16] [--gen-load sampling-only|full]
                       [--out bench/results] DESC.json [DESC.json ...]

For every descriptor:
  1. bench/ort/export.py writes build/ort/NAME/: the weights (from the
     descriptor's seed; the library loads the same file), the generator and the
     discriminator as ONNX opset 17 with a dynamic batch (plain, and with the
     attention as com.microsoft.MultiHeadAttention or com.microsoft.Attention),
     and checks ONNX Runtime's output against the library's (max |diff| <= 1e-4),
     failing loudly otherwise;
  2. tuning: for each network and batch, times every ORT configuration once for
     --tune-seconds (graph with MultiHeadAttention / with Attention x intra-op
     spinning on/off x memory arena + memory pattern on/off; always --threads
     intra-op threads, 1 inter-op thread, sequential execution, graph
     optimisation level "all") and keeps the fastest: ORT's best configuration.
     The plain graph is not a candidate: it materialises every attention matrix
     and ran 2-8x slower than the fused ones (over 1.2 GiB at batch 16); it is
     timed once, with ORT's default options, at batches <= --default-max-batch,
     to show what the rewrite buys. The library is tuned the same way over
     OMP_WAIT_POLICY (unset: OpenMP's spinning default / passive);
  3. measurement: for each network and batch, --runs rounds; each round starts
     one fresh process per engine (build/bench/lib_bench once per library
     precision of --precisions; ort_bench.js with the best configuration), in
     an order that rotates every round, each timing --seconds after a warm-up
     call. Medians (min-max) of the rounds' images/s; peak RSS is the largest
     VmHWM of the engine's processes. The library loads the generator with
     TG_LOAD_SAMPLING_ONLY (--gen-load), as a tool that only samples would;
     the discriminator needs the full load. A precision other than f32 is
     probed first (lib_bench --precision P exits 3 when the build lacks it)
     and shown as "not available" when absent;
  4. writes bench/results/ort-NAME.json (everything) and ort-NAME.md (the table,
     with the ratios against issue 13's targets).
Exits 1 if an export, a check or a run failed.
"""
import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PY = "/usr/bin/python3"
EXPORT = os.path.join(ROOT, "bench", "ort", "export.py")
ORT_JS = os.path.join(ROOT, "bench", "ort", "ort_bench.js")

# issue 13's targets: library images/s / ORT-best images/s, at 2 threads
TARGETS = {("TransGAN-S", "generator"): 2.0, ("TransGAN-S", "discriminator"): 1.5,
           ("fmnist-small", "generator"): 3.0}


def log(msg):
    print(f"bench-ort: {msg}", file=sys.stderr, flush=True)


class Unavailable(Exception):
    """lib_bench exited 3: the build lacks the asked precision."""


def run_json(cmd, env=None):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       env=env, cwd=ROOT)
    if p.returncode == 3 and os.path.basename(cmd[0]) == "lib_bench":
        raise Unavailable(p.stderr.strip()[-300:])
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: status {p.returncode}: {p.stderr.strip()[-800:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def spread(v):
    s = sorted(v)
    n = len(s)
    med = s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])
    return {"median": round(med, 2), "min": round(s[0], 2), "max": round(s[-1], 2)}


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def machine():
    m = {"cpus": os.cpu_count(), "kernel": platform.release()}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for ln in out.splitlines():
            if ln.startswith("Model name:"):
                m["model_name"] = ln.split(":", 1)[1].strip()
    except OSError:
        pass
    with open("/proc/loadavg") as f:
        m["loadavg_at_start"] = f.read().strip()
    m["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return m


class Engines:
    def __init__(self, a, mdir, manifest):
        self.a, self.mdir, self.manifest = a, mdir, manifest
        self.env = dict(os.environ, NODE_PATH=os.path.join(a.ort_dir, "node_modules"))
        self.ckpt = os.path.join(mdir, manifest["checkpoint"])

    def dims(self, net):
        return ",".join(str(x) for x in self.manifest["models"][f"{net}-plain"]["input_shape"][1:])

    def lib(self, net, batch, seconds, cfg, precision="f32"):
        env = dict(os.environ)
        env.pop("OMP_WAIT_POLICY", None)
        if cfg["wait"] != "default":
            env["OMP_WAIT_POLICY"] = cfg["wait"]
        load = self.a.gen_load if net == "generator" else "full"
        r = run_json([self.a.lib_bench, self.ckpt, "--net", net, "--batch", str(batch),
                      "--seconds", str(seconds), "--threads", str(self.a.threads),
                      "--load", load, "--precision", precision], env)
        r["config"] = cfg
        return r

    def ort(self, net, batch, seconds, cfg):
        model = os.path.join(self.mdir, f"{net}-{cfg['variant']}.onnx")
        cmd = ["node", ORT_JS, "--model", model, "--dims", self.dims(net), "--batch", str(batch),
               "--seconds", str(seconds), "--threads", str(self.a.threads), "--inter", "1",
               "--mode", "sequential", "--opt", "all"]
        for k in ("spin", "arena", "mempattern"):
            cmd += [f"--{k}", str(cfg[k])]
        r = run_json(cmd, self.env)
        r["variant"] = cfg["variant"]
        return r


# The library's one option here is OpenMP's: its worker threads spin between
# parallel regions by default (OMP_WAIT_POLICY unset), which on a busy host
# takes CPU from the other threads; "passive" makes them sleep. It is tuned like
# ORT's allow_spinning.
LIB_CFGS = [{"wait": "default"}, {"wait": "passive"}]
DEFAULT_CFG = {"variant": "plain", "spin": 1, "arena": 1, "mempattern": 1}


def candidates(manifest, net):
    out = []
    for v in ("mha", "attention"):
        if f"{net}-{v}" not in manifest["models"]:
            continue
        for spin in (1, 0):
            for mem in (1, 0):
                out.append({"variant": v, "spin": spin, "arena": mem, "mempattern": mem})
    return out


def cfg_name(c):
    return (f"{c['variant']}, spinning {'on' if c['spin'] else 'off'}, "
            f"arena+mempattern {'on' if c['arena'] else 'off'}")


def one(desc, a):
    name_guess = json.load(open(desc)).get("name") or os.path.splitext(os.path.basename(desc))[0]
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name_guess)
    mdir = os.path.join(a.ort_dir, name)
    res = {"descriptor": os.path.relpath(desc, ROOT), "name": name, "machine": machine(),
           "settings": {"threads": a.threads, "seconds": a.seconds, "runs": a.runs,
                        "tune_seconds": a.tune_seconds, "batches": a.batches,
                        "disc_batches": a.disc_batches, "gen_load": a.gen_load,
                        "precisions": a.precisions}}
    log(f"{name}: load average at start {res['machine']['loadavg_at_start']}")
    log(f"$ {PY} bench/ort/export.py {res['descriptor']} --out {os.path.relpath(mdir, ROOT)}")
    p = subprocess.run([PY, EXPORT, desc, "--out", mdir, "--ort-dir", a.ort_dir, "--lib", a.lib],
                       cwd=ROOT)
    if p.returncode != 0:
        raise RuntimeError(f"export.py failed for {desc} (status {p.returncode})")
    manifest = json.load(open(os.path.join(mdir, "manifest.json")))
    res["export"] = manifest
    eng = Engines(a, mdir, manifest)
    jobs = [("generator", int(b)) for b in a.batches.split(",") if b] + \
        [("discriminator", int(b)) for b in a.disc_batches.split(",") if b]
    precs, unavailable = [], {}
    for p_ in a.precisions.split(","):
        if not p_:
            continue
        try:
            if p_ != "f32":
                eng.lib("generator", 1, 0, LIB_CFGS[0], p_)
            precs.append(p_)
        except Unavailable as e:
            unavailable[p_] = str(e)
            log(f"{name}: library precision {p_} not available: {e}")
    if "f32" not in precs:
        precs.insert(0, "f32")
    res["precisions"], res["precisions_unavailable"] = precs, unavailable
    res["cases"] = []
    for net, batch in jobs:
        case = {"net": net, "batch": batch}
        if a.no_tune:
            best = dict(DEFAULT_CFG, variant="mha")
        else:
            tune = []
            for c in candidates(manifest, net):
                r = eng.ort(net, batch, a.tune_seconds, c)
                tune.append({"config": c, "img_per_s": r["img_per_s"]["median"]})
                log(f"tune {name} {net} b={batch}: {cfg_name(c)}: {tune[-1]['img_per_s']} img/s")
            case["tuning"] = tune
            best = max(tune, key=lambda t: t["img_per_s"])["config"]
        case["ort_best_config"] = best
        lib_best = LIB_CFGS[0]
        if not a.no_tune:
            lt = []
            for lc in LIB_CFGS:
                r = eng.lib(net, batch, a.tune_seconds, lc)
                lt.append({"config": lc, "img_per_s": r["img_per_s"]["median"]})
                log(f"tune {name} {net} b={batch}: library, OMP_WAIT_POLICY {lc['wait']}: "
                    f"{lt[-1]['img_per_s']} img/s")
            case["library_tuning"] = lt
            lib_best = max(lt, key=lambda t: t["img_per_s"])["config"]
        case["library_config"] = lib_best
        engines = {lib_key(p_): (lambda p_=p_: eng.lib(net, batch, a.seconds, lib_best, p_))
                   for p_ in precs}
        engines["ort_best"] = lambda: eng.ort(net, batch, a.seconds, best)
        order = list(engines)
        raw = {k: [] for k in order}
        for r in range(a.runs):
            rot = order[r % len(order):] + order[:r % len(order)]
            for k in rot:
                raw[k].append(engines[k]())
            log(f"{name} {net} b={batch} round {r + 1}/{a.runs} (load {loadavg()}): " + ", ".join(
                f"{k} {raw[k][-1]['img_per_s']['median']}" for k in order))
        for k in order:
            case[k] = {"img_per_s": spread([x["img_per_s"]["median"] for x in raw[k]]),
                       "peak_rss_mib": max(x["peak_rss_mib"] for x in raw[k]),
                       "raw": raw[k]}
        before = [x.get("vmhwm_before_session_mib") for x in raw["ort_best"]]
        case["ort_best"]["node_baseline_rss_mib"] = max(v for v in before if v is not None)
        if batch <= a.default_max_batch:
            r = eng.ort(net, batch, a.seconds, DEFAULT_CFG)
            case["ort_default"] = {"img_per_s": r["img_per_s"], "peak_rss_mib": r["peak_rss_mib"],
                                   "raw": [r]}
            log(f"{name} {net} b={batch}: plain graph, ORT defaults: {r['img_per_s']['median']}")
        best_m = case["ort_best"]["img_per_s"]["median"]
        tgt = TARGETS.get((manifest["name"], net))
        case["target"] = tgt
        for p_ in precs:
            sfx = "" if p_ == "f32" else "_" + p_
            ratio = round(case[lib_key(p_)]["img_per_s"]["median"] / best_m, 3)
            case["ratio_vs_ort_best" + sfx] = ratio
            case["target_met" + sfx] = None if tgt is None else ratio >= tgt
        res["cases"].append(case)
    with open("/proc/loadavg") as f:
        res["machine"]["loadavg_at_end"] = f.read().strip()
    res["versions"] = {"libtransgan": res["cases"][0]["libtransgan"]["raw"][0]["version"],
                       "onnxruntime": res["cases"][0]["ort_best"]["raw"][0]["version"],
                       "torch_export": manifest["torch"], "opset": manifest["opset"]}
    os.makedirs(a.out, exist_ok=True)
    md = table(res)
    with open(os.path.join(a.out, f"ort-{name}.json"), "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    with open(os.path.join(a.out, f"ort-{name}.md"), "w") as f:
        f.write(md)
    log(f"wrote {a.out}/ort-{name}.json and .md")
    return md


def lib_key(precision):
    """The result key of the library at a precision ("libtransgan" is f32's)."""
    return "libtransgan" if precision == "f32" else "libtransgan_" + precision


def c(s):
    return f"{s['median']:,.1f} ({s['min']:,.1f}–{s['max']:,.1f})"


def dflt(k):
    d = k.get("ort_default")
    return "not run" if not d else \
        f"{d['img_per_s']['median']:,.1f} (1 run; {d['peak_rss_mib']:,.0f} MiB)"


def table(res):
    m, v, s = res["machine"], res["versions"], res["settings"]
    ex = res["export"]
    L = [f"# libtransgan vs ONNX Runtime: {res['name']}", ""]
    L.append(f"- machine: {m.get('model_name', '?')}, {m['cpus']} CPUs, {m['date']}; "
             f"/proc/loadavg at start `{m['loadavg_at_start']}`, at end `{m['loadavg_at_end']}`")
    L.append(f"- libtransgan {v['libtransgan']} (build/bench/lib_bench), ONNX Runtime "
             f"{v['onnxruntime']} (onnxruntime-node, CPU), ONNX opset {v['opset']} exported by "
             f"torch {v['torch_export']} from tests/reference/oracle.py, same weights "
             f"(`{res['descriptor']}`, training.seed)")
    checks = ", ".join(f"{k} {info['ort_vs_library']:.1e}" for k, info in ex["models"].items()
                       if "ort_vs_library" in info)
    L.append(f"- output check, ORT vs library, max |diff| at batch {ex['check_batch']} "
             f"(limit {ex['tolerance']}): {checks}")
    L.append(f"- {s['threads']} threads each (tg_model_set_threads; ORT intra-op "
             f"{s['threads']}, inter-op 1, sequential, optimisation level all); median "
             f"(min–max) of {s['runs']} interleaved rounds, each a fresh process timing "
             f"≥ {s['seconds']} s after a warm-up call; peak RSS = largest VmHWM")
    asked = res["precisions"] + sorted(res.get("precisions_unavailable", {}))
    if res.get("precisions_unavailable"):
        L.append("- library precisions not available in this build: " + ", ".join(
            sorted(res["precisions_unavailable"])))
    L.append(f"- the library's generator is loaded with "
             f"{'TG_LOAD_SAMPLING_ONLY' if s.get('gen_load') == 'sampling-only' else 'a full load'}"
             f", its discriminator with a full load")
    L.append("")
    head = ["network, batch"] + [f"library {p} img/s" for p in asked] + \
        ["ORT best img/s", "ORT best configuration", "ORT plain graph, defaults, img/s"] + \
        [f"{p} ÷ ORT best" for p in asked] + \
        ["target", "peak RSS MiB: " + " / ".join(f"library {p}" for p in asked) +
         " / ORT best (node alone)", "library configuration"]
    L.append("| " + " | ".join(head) + " |")
    L.append("|" + "---|" * len(head))
    na = "not available"
    for k in res["cases"]:
        if k["target"] is None:
            tgt = "—"
        else:
            met = [p for p in asked if k.get("target_met" + ("" if p == "f32" else "_" + p))]
            tgt = f"≥ {k['target']:.1f}× " + (f"met ({', '.join(met)})" if met else "not met")
        row = [f"{k['net']} b={k['batch']}"]
        row += [c(k[lib_key(p)]["img_per_s"]) if lib_key(p) in k else na for p in asked]
        row += [c(k["ort_best"]["img_per_s"]), cfg_name(k["ort_best_config"]), dflt(k)]
        for p in asked:
            r = k.get("ratio_vs_ort_best" + ("" if p == "f32" else "_" + p))
            row.append(na if r is None else f"{r:.2f}×")
        row.append(tgt)
        rss = [f"{k[lib_key(p)]['peak_rss_mib']:.0f}" if lib_key(p) in k else "—" for p in asked]
        row.append(" / ".join(rss) + f" / {k['ort_best']['peak_rss_mib']:.0f} "
                   f"({k['ort_best']['node_baseline_rss_mib']:.0f})")
        row.append(f"OMP_WAIT_POLICY {k['library_config']['wait']}")
        L.append("| " + " | ".join(row) + " |")
    L.append("")
    L.append("ORT's best configuration is the fastest of a tuning pass (one run per "
             "configuration: attention as com.microsoft.MultiHeadAttention / as "
             "com.microsoft.Attention, intra-op spinning on/off, memory arena and pattern "
             "on/off), and the library's likewise (OMP_WAIT_POLICY unset or passive); "
             "\"plain graph, defaults\" is the export without the rewrite under "
             "ORT's default options, one run (its attention matrices are materialised). "
             "The ORT processes' RSS includes node itself (the number in brackets: VmHWM "
             "before the session exists).")
    return "\n".join(L) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("descriptors", nargs="+")
    ap.add_argument("--lib-bench", default=os.path.join(ROOT, "build", "bench", "lib_bench"))
    ap.add_argument("--lib", default=os.path.join(ROOT, "build", "libtransgan.so.0"))
    ap.add_argument("--ort-dir", default=os.path.join(ROOT, "build", "ort"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", default="1,16,64")
    ap.add_argument("--disc-batches", default="64")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--tune-seconds", type=float, default=1.0)
    ap.add_argument("--default-max-batch", type=int, default=16,
                    help="time the plain graph (ORT defaults) up to this batch")
    ap.add_argument("--precisions", default="f32,bf16",
                    help="the library's compute precisions to time (lib_bench --precision)")
    ap.add_argument("--gen-load", default="sampling-only", choices=["sampling-only", "full"],
                    help="how the library loads the checkpoint for the generator runs")
    ap.add_argument("--no-tune", action="store_true",
                    help="skip tuning: MultiHeadAttention graph with ORT's default options")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    a = ap.parse_args()
    for k in ("lib_bench", "lib", "ort_dir", "out"):
        setattr(a, k, os.path.abspath(getattr(a, k)))
    ok, tables = True, []
    for d in a.descriptors:
        try:
            tables.append(one(os.path.abspath(d), a))
        except (RuntimeError, OSError, ValueError, KeyError) as e:
            log(f"{d}: {e}")
            ok = False
    for md in tables:
        print(md)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
