"""numlstm against PyTorch's CPU LSTM/GRU, side by side in one process (issue 4).

    python benchmarks/compare.py                 # full table + targets, plain text
    python benchmarks/compare.py --markdown      # the same as Markdown for docs/performance.md
    python benchmarks/compare.py --quick         # fewer/shorter repeats, smoke run
    python benchmarks/compare.py --sizes 100x8x32x128,50x128x256x512 --cells lstm

Method (see docs/performance.md):
- both libraries run with 2 threads: numba.set_num_threads(2) and threadpoolctl's
  threadpool_limits(2) for numlstm (Numba + the BLAS under scipy), torch.set_num_threads(2);
- same weights in both (torch's state_dict is loaded into numlstm), float32, input (T, B, I);
- inference: numlstm under numlstm.no_grad(), torch under torch.inference_mode();
- forward+backward: numlstm forward then layer.backward(grad_out); torch forward with
  x.requires_grad, then out.backward(grad_out) (both produce input and weight gradients);
- every callable is warmed up, then samples alternate numlstm / torch (order rotating),
  each sample loops long enough to last >= --min-time seconds; medians are reported;
- GFLOPS count only the GEMMs: forward 2*T*B*G*H*(I+H) with G = 4 (LSTM) or 3 (GRU),
  forward+backward 3x that; the sgemm ceiling is the best of a 2048^3 float32 matmul
  through numpy's and scipy's BLAS under the same 2-thread limit, measured before and
  after the layer timings.
- start-up costs are measured in fresh subprocesses.

torch is optional: without it the torch columns and ratio targets are reported as n/a.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import _common as C  # noqa: E402
else:
    from . import _common as C

# ---------------------------------------------------------------- targets (issue 4)

TARGETS_TEXT = [
    ("inference <= 0.5 where B <= 8 and H <= 128", "ratio numlstm/torch, float32, 2 threads"),
    ("inference <= 1.0 at every size", ""),
    ("forward+backward <= 1.0 at every size", ""),
    (">= 60 % of sgemm GFLOPS at the two largest sizes", "checked for inference and for fwd+bwd"),
    ("import numlstm <= 0.5 s", "fresh process, warm cache"),
    ("first forward in a fresh process, warm cache, <= 1 s", "LSTM 100x8x32x128, inference"),
    ("cold compile of one cell <= 20 s", "import + first forward, empty NUMBA_CACHE_DIR"),
    ("estimator epoch <= hand-written PyTorch loop", "same batch size, Adam"),
]


# ---------------------------------------------------------------- start-up (subprocesses)

_CHILD = r"""
import json, sys, time
sys.path.append(%(repo)r)
t0 = time.perf_counter()
import numlstm
t1 = time.perf_counter()
res = {"import": t1 - t0}
if %(forward)r:
    import numpy as np
    layer = numlstm.%(cls)s(32, 128, seed=0)
    x = np.random.default_rng(0).standard_normal((100, 8, 32)).astype(np.float32)
    t2 = time.perf_counter()
    with numlstm.no_grad():
        layer(x)
    t3 = time.perf_counter()
    res["first_forward"] = t3 - t2
    if %(backward)r:
        t4 = time.perf_counter()
        out, _ = layer(x)
        layer.backward(np.ones_like(out))
        res["first_fwd_bwd"] = time.perf_counter() - t4
print("RESULT" + json.dumps(res))
"""


def run_child(cls="LSTM", forward=True, backward=False, cache_dir=None):
    code = _CHILD % {"repo": C.REPO, "cls": cls, "forward": forward, "backward": backward}
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "child failed")
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")][-1]
    return json.loads(line[len("RESULT"):])


def measure_startup(repeats, log):
    res = {}
    try:
        import_only = [run_child(forward=False)["import"] for _ in range(repeats)]
        res["import"] = statistics.median(import_only)
    except Exception as exc:  # pragma: no cover - reported, not fatal
        log(f"import numlstm failed: {exc}")
        return res
    if not C.have_layers():
        return res
    for cls in ("LSTM", "GRU"):
        try:
            run_child(cls, backward=True)  # warm the on-disk cache
            warm = [run_child(cls) for _ in range(repeats)]
            res[f"{cls}_warm_import"] = statistics.median(r["import"] for r in warm)
            res[f"{cls}_warm_first_forward"] = statistics.median(r["first_forward"] for r in warm)
            with tempfile.TemporaryDirectory(prefix="numlstm-cold-") as d:
                cold = run_child(cls, backward=True, cache_dir=d)
            res[f"{cls}_cold_import"] = cold["import"]
            res[f"{cls}_cold_first_forward"] = cold["first_forward"]
            res[f"{cls}_cold_first_fwd_bwd"] = cold["first_fwd_bwd"]
        except Exception as exc:  # pragma: no cover
            log(f"start-up measurement for {cls} failed: {exc}")
    return res


# ---------------------------------------------------------------- estimators vs a torch loop


def torch_epoch_fn(torch, kind, X, y, hidden, batch, cell, seed=0):
    """One epoch of the hand-written PyTorch equivalent: cell -> last step -> Linear, Adam."""
    torch.manual_seed(seed)
    rnn = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](X.shape[2], hidden, batch_first=True)
    n_out = 1 if kind == "regressor" else int(y.max()) + 1
    head = torch.nn.Linear(hidden, n_out)
    params = list(rnn.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    Xt = torch.from_numpy(X)
    if kind == "regressor":
        yt = torch.from_numpy(y.reshape(-1, 1))
        loss_fn = torch.nn.MSELoss()
    else:
        yt = torch.from_numpy(y)
        loss_fn = torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)

    def epoch():
        perm = torch.randperm(Xt.shape[0], generator=gen)
        for start in range(0, Xt.shape[0], batch):
            idx = perm[start:start + batch]
            opt.zero_grad(set_to_none=True)
            out, _ = rnn(Xt[idx])
            loss = loss_fn(head(out[:, -1]), yt[idx])
            loss.backward()
            opt.step()

    return epoch


def measure_estimators(torch, repeats, log):
    import warnings

    E = C
    rows = []
    for kind in ("regressor", "classifier"):
        X, y = E.estimator_data(kind)
        try:
            est = E.make_estimator(kind, "lstm")
        except (NotImplementedError, ImportError) as exc:
            log(f"estimator {kind}: skipped ({exc})")
            continue

        def fit_once(est=est, X=X, y=y):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est.fit(X, y)

        fns = {"numlstm": fit_once}
        if torch is not None:
            fns["torch"] = torch_epoch_fn(torch, kind, X, y, E.HIDDEN, E.BATCH, "lstm")
        try:
            res = C.measure_alternating(fns, repeats=repeats, min_time=0.0, warmup=1, pause=0.02)
        except Exception as exc:
            log(f"estimator {kind}: failed ({type(exc).__name__}: {exc})")
            continue
        rows.append({"kind": kind, "numlstm": res["numlstm"], "torch": res.get("torch")})
    return rows


# ---------------------------------------------------------------- layers


def measure_layers(cells, sizes, torch, repeats, min_time, sgemm, log, max_load=None, retries=0):
    rows = []
    for cell in cells:
        for size in sizes:
            for attempt in range(retries + 1):
                row = measure_row(cell, size, torch, repeats, min_time, sgemm, log)
                if max_load is None or row["load"] is None or row["load"] <= max_load or attempt == retries:
                    break
                log(f"  {cell} {C.size_label(size)}: other load {row['load']:.2f} > {max_load}, measuring again")
                C.probe_foreign_load(5.0)
            rows.append(row)
    return rows


def measure_row(cell, size, torch, repeats, min_time, sgemm, log):
    t0 = time.perf_counter()
    load = C.ForeignLoad().start()
    w = C.Workload(cell, size, with_torch=torch is not None)
    row = {"cell": cell, "size": size}
    if torch is not None:
        row["maxdiff"] = w.max_abs_diff()
    for mode in ("inference", "fwd_bwd"):
        fns = {"numlstm": w.fn("numlstm", mode)}
        if torch is not None:
            fns["torch"] = w.fn("torch", mode)
        res = C.measure_alternating(fns, repeats=repeats, min_time=min_time, warmup=2, pause=0.02)
        flops = C.gemm_flops(cell, size, mode)
        row[mode] = {
            "numlstm": res["numlstm"],
            "torch": res.get("torch"),
            "ratio": res["numlstm"] / res["torch"] if "torch" in res else None,
            "gflops": flops / res["numlstm"] / 1e9,
            "torch_gflops": flops / res["torch"] / 1e9 if "torch" in res else None,
            "sgemm_frac": flops / res["numlstm"] / 1e9 / sgemm,
        }
    row["load"] = load.stop()
    log(f"  {cell} {C.size_label(size)} done in {time.perf_counter() - t0:.1f} s"
        + ("" if row["load"] is None else f" (other load {row['load']:.2f})"))
    return row


# ---------------------------------------------------------------- targets


def evaluate_targets(rows, startup, est_rows, sizes, have_torch):
    out = []

    def ratio_check(label, mode, pred, limit):
        sel = [r for r in rows if pred(r["size"])]
        if not have_torch or not sel:
            out.append((label, "n/a", "no torch" if not have_torch else "no such size run"))
            return
        worst = max(sel, key=lambda r: r[mode]["ratio"])
        ok = worst[mode]["ratio"] <= limit
        where = f"{worst['cell']} {C.size_label(worst['size'])}"
        out.append((label, "PASS" if ok else "FAIL", f"worst {worst[mode]['ratio']:.2f} ({where})"))

    ratio_check(TARGETS_TEXT[0][0], "inference", lambda s: s[1] <= 8 and s[3] <= 128, 0.5)
    ratio_check(TARGETS_TEXT[1][0], "inference", lambda s: True, 1.0)
    ratio_check(TARGETS_TEXT[2][0], "fwd_bwd", lambda s: True, 1.0)

    largest = sorted(C.SIZES, key=lambda s: C.gemm_flops("lstm", s, "inference"))[-2:]
    sel = [r for r in rows if r["size"] in largest]
    if sel:
        parts, ok = [], True
        for mode in ("inference", "fwd_bwd"):
            worst = min(sel, key=lambda r: r[mode]["sgemm_frac"])
            ok &= worst[mode]["sgemm_frac"] >= 0.6
            where = f"{worst['cell']} {C.size_label(worst['size'])}"
            parts.append(f"{mode} worst {100 * worst[mode]['sgemm_frac']:.0f} % ({where})")
        out.append((TARGETS_TEXT[3][0], "PASS" if ok else "FAIL", "; ".join(parts)))
    else:
        out.append((TARGETS_TEXT[3][0], "n/a", "largest sizes not run"))

    def limit_check(label, keys, limit):
        vals = [startup[k] for k in keys if k in startup]
        if not vals:
            out.append((label, "n/a", "not measured"))
            return
        worst = max(vals)
        out.append((label, "PASS" if worst <= limit else "FAIL", f"worst {worst:.2f} s"))

    limit_check(TARGETS_TEXT[4][0], ["import"], 0.5)
    limit_check(TARGETS_TEXT[5][0], ["LSTM_warm_first_forward", "GRU_warm_first_forward"], 1.0)
    cold = {}
    for cls in ("LSTM", "GRU"):
        if f"{cls}_cold_first_forward" in startup:
            cold[f"{cls}_cold"] = startup[f"{cls}_cold_import"] + startup[f"{cls}_cold_first_forward"]
    if cold:
        worst = max(cold.values())
        out.append((TARGETS_TEXT[6][0], "PASS" if worst <= 20.0 else "FAIL",
                    f"worst {worst:.1f} s (import + inference forward)"))
    else:
        out.append((TARGETS_TEXT[6][0], "n/a", "not measured"))

    if not est_rows:
        out.append((TARGETS_TEXT[7][0], "n/a", "estimators not available"))
    elif not have_torch:
        out.append((TARGETS_TEXT[7][0], "n/a", "no torch"))
    else:
        worst = max(est_rows, key=lambda r: r["numlstm"] / r["torch"])
        ratio = worst["numlstm"] / worst["torch"]
        out.append((TARGETS_TEXT[7][0], "PASS" if ratio <= 1.0 else "FAIL",
                    f"worst ratio {ratio:.2f} ({worst['kind']})"))
    return out


# ---------------------------------------------------------------- output


def fmt_ms(sec):
    return "n/a" if sec is None else (f"{sec * 1e3:.3g}" if sec * 1e3 < 100 else f"{sec * 1e3:.0f}")


def fmt(v, spec):
    return "n/a" if v is None else format(v, spec)


def table(headers, rows, markdown):
    rows = [[str(c) for c in r] for r in rows]
    if markdown:
        rule = "|" + "|".join("---:" if i else "---" for i in range(len(headers))) + "|"
        lines = ["| " + " | ".join(headers) + " |", rule]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


def environment(torch):
    import numba
    import numpy as np
    import scipy
    from threadpoolctl import threadpool_info

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    blas = sorted({f"{i['internal_api']} {i.get('version')}" for i in threadpool_info() if i["user_api"] == "blas"})
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            fl = next((ln for ln in f if ln.startswith("flags")), "").split()
        flags = ",".join(x for x in ("avx2", "fma", "avx512f") if x in fl)
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "isa": flags,
        "python": platform.python_version(),
        "numlstm": getattr(C.import_numlstm(), "__version__", "checkout"),
        "numba": numba.__version__,
        "threading layer": _threading_layer(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "blas": "; ".join(blas),
        "torch": torch.__version__ if torch is not None else "not installed",
    }


def _threading_layer():
    import numba
    import numpy as np

    @numba.njit(parallel=True)
    def _touch(a):
        s = 0.0
        for i in numba.prange(a.size):
            s += a[i]
        return s

    try:
        _touch(np.ones(4))
        return numba.threading_layer()
    except Exception:  # pragma: no cover
        return "unknown"


def report(args, env, sgemm, rows, startup, est_rows, targets, wall):
    md = args.markdown
    p = print
    h = (lambda s: p(f"\n### {s}\n")) if md else (lambda s: p(f"\n== {s} =="))
    if md:
        p(f"<!-- generated by: python benchmarks/compare.py {' '.join(sys.argv[1:])} ; {time.strftime('%Y-%m-%d')} -->")
    h("Machine and versions")
    sgemm_row = ["sgemm GFLOPS (2 threads)",
                 f"numpy {sgemm['numpy']:.1f}, scipy {sgemm['scipy']:.1f}; ceiling {sgemm['best']:.1f}"]
    p(table(["item", "value"], [[k, v] for k, v in env.items()] + [sgemm_row], md))

    h("Layers: float32, 2 threads, median seconds per call (ms), ratio = numlstm / torch")
    headers = ["cell", "T x B x I x H", "inf numlstm", "inf torch", "inf ratio", "f+b numlstm", "f+b torch",
               "f+b ratio", "inf GFLOPS", "f+b GFLOPS", "inf %sgemm", "f+b %sgemm", "torch inf/f+b GFLOPS",
               "max|diff|", "other load"]
    body = []
    for r in rows:
        i, b = r["inference"], r["fwd_bwd"]
        body.append([
            r["cell"], C.size_label(r["size"]),
            fmt_ms(i["numlstm"]), fmt_ms(i["torch"]), fmt(i["ratio"], ".2f"),
            fmt_ms(b["numlstm"]), fmt_ms(b["torch"]), fmt(b["ratio"], ".2f"),
            f"{i['gflops']:.1f}", f"{b['gflops']:.1f}",
            f"{100 * i['sgemm_frac']:.0f}", f"{100 * b['sgemm_frac']:.0f}",
            "n/a" if i["torch_gflops"] is None else f"{i['torch_gflops']:.1f} / {b['torch_gflops']:.1f}",
            fmt(r.get("maxdiff"), ".1e"),
            fmt(r.get("load"), ".2f"),
        ])
    p(table(headers, body, md))
    if rows and rows[0]["inference"]["ratio"] is not None:
        wi = max(rows, key=lambda r: r["inference"]["ratio"])
        wb = max(rows, key=lambda r: r["fwd_bwd"]["ratio"])
        p(("\n" if md else "")
          + f"Worst inference ratio {wi['inference']['ratio']:.2f} ({wi['cell']} {C.size_label(wi['size'])}); "
          f"worst forward+backward ratio {wb['fwd_bwd']['ratio']:.2f} ({wb['cell']} {C.size_label(wb['size'])}).")

    if startup:
        h("Start-up (fresh processes)")
        srows = [["import numlstm (median)", f"{startup['import']:.3f}"]] if "import" in startup else []
        for cls in ("LSTM", "GRU"):
            if f"{cls}_warm_first_forward" in startup:
                srows.append([f"{cls} first forward, warm cache (median; import {startup[f'{cls}_warm_import']:.3f} s)",
                              f"{startup[f'{cls}_warm_first_forward']:.3f}"])
                srows.append([f"{cls} cold cache: import", f"{startup[f'{cls}_cold_import']:.2f}"])
                srows.append([f"{cls} cold cache: first forward (inference compile)",
                              f"{startup[f'{cls}_cold_first_forward']:.2f}"])
                srows.append([f"{cls} cold cache: then first forward+backward",
                              f"{startup[f'{cls}_cold_first_fwd_bwd']:.2f}"])
        p(table(["what", "seconds"], srows, md))

    if est_rows:
        h("Estimators: one epoch (fit, max_iter=1), 512 x 50 x 8, hidden 64, batch 32, Adam")
        p(table(["estimator", "numlstm s", "torch loop s", "ratio"],
                [[r["kind"], f"{r['numlstm']:.3f}", fmt(r["torch"], ".3f"),
                  "n/a" if r["torch"] is None else f"{r['numlstm'] / r['torch']:.2f}"] for r in est_rows], md))

    h("Targets (issue 4)")
    p(table(["target", "result", "detail"], targets, md))
    if not md:
        p(f"\n(total wall time {wall:.0f} s)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 repeats, 20 ms samples, fewer start-up runs")
    ap.add_argument("--sizes", help="comma-separated TxBxIxH list (default: the six sizes of issue 4)")
    ap.add_argument("--cells", default="lstm,gru", help="comma-separated: lstm,gru")
    ap.add_argument("--repeats", type=int, help="alternating samples per library (default 7, --quick 3)")
    ap.add_argument("--min-time", type=float, help="seconds per sample (default 0.1, --quick 0.02)")
    ap.add_argument("--threads", type=int, default=C.THREADS)
    ap.add_argument("--no-torch", action="store_true", help="time numlstm only")
    ap.add_argument("--no-startup", action="store_true", help="skip the subprocess start-up measurements")
    ap.add_argument("--no-estimators", action="store_true", help="skip the estimator epoch comparison")
    ap.add_argument("--markdown", action="store_true", help="print Markdown tables (for docs/performance.md)")
    ap.add_argument("--json", metavar="PATH", help="also write all numbers as JSON")
    ap.add_argument("--max-load", type=float, default=0.2, metavar="CORES",
                    help="re-measure a row (up to --retries times) when other processes kept more "
                         "than CORES cores busy during it (default 0.2)")
    ap.add_argument("--retries", type=int, default=2)
    ap.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                    help="first wait up to SECONDS for other processes to use < 0.1 core (shared machines)")
    args = ap.parse_args(argv)

    repeats = args.repeats or (3 if args.quick else 7)
    min_time = args.min_time if args.min_time is not None else (0.02 if args.quick else 0.1)
    sizes = [C.parse_size(s) for s in args.sizes.split(",")] if args.sizes else list(C.SIZES)
    cells = [c.strip() for c in args.cells.split(",") if c.strip()]

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    if not C.have_layers():
        sys.exit("numlstm.LSTM / numlstm.GRU are not available in this checkout yet")
    torch = None if args.no_torch else C.import_torch()
    if torch is None and not args.no_torch:
        log("torch is not installed: numlstm timings only")
    if args.wait_quiet > 0:
        deadline = time.perf_counter() + args.wait_quiet
        while True:
            load = C.probe_foreign_load(3.0)
            if load is None or load < 0.1 or time.perf_counter() > deadline:
                break
            log(f"waiting for a quiet machine: other processes keep {load:.2f} cores busy")
    wall0 = time.perf_counter()
    idle_load = C.probe_foreign_load(1.0)
    if idle_load is not None and idle_load > 0.1:
        log(f"warning: other processes keep {idle_load:.2f} cores busy; timings will be noisy")
    run_load = C.ForeignLoad().start()

    # Start-up first, before this process imports numba kernels and warms caches
    # (the children warm the cache themselves).
    startup = {}
    if not args.no_startup:
        log("start-up (subprocesses) ...")
        startup = measure_startup(3 if args.quick else 5, log)

    with C.limited_threads(args.threads, torch):
        env = environment(torch)
        log("sgemm ceiling ...")
        sgemm = C.measure_sgemm(repeats=3 if args.quick else 5)
        sgemm["best"] = max(sgemm["numpy"], sgemm["scipy"])
        log("layers ...")
        rows = measure_layers(cells, sizes, torch, repeats, min_time, sgemm["best"], log,
                              args.max_load, args.retries)
        # a second sgemm measurement, in case the first one met a busy machine
        again = C.measure_sgemm(repeats=3 if args.quick else 5)
        sgemm = {k: max(sgemm[k], again[k]) for k in again}
        sgemm["best"] = max(sgemm["numpy"], sgemm["scipy"])
        for r in rows:
            for mode in ("inference", "fwd_bwd"):
                r[mode]["sgemm_frac"] = r[mode]["gflops"] / sgemm["best"]
        est_rows = []
        if not args.no_estimators:
            log("estimators ...")
            est_rows = measure_estimators(torch, 3 if args.quick else 5, log)

    foreign = run_load.stop()
    env["other load (cores busy)"] = (
        "n/a" if foreign is None else f"{idle_load:.2f} before the run, {foreign:.2f} during it"
    )
    targets = evaluate_targets(rows, startup, est_rows, sizes, torch is not None)
    report(args, env, sgemm, rows, startup, est_rows, targets, time.perf_counter() - wall0)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"env": env, "sgemm": sgemm, "layers": rows, "startup": startup,
                       "estimators": est_rows, "targets": targets, "argv": sys.argv[1:]}, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
