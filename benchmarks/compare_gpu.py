"""numlstm's CUDA kernels against PyTorch's cuDNN LSTM/GRU on one GPU (issue 5).

    python benchmarks/compare_gpu.py                  # table, plain text
    python benchmarks/compare_gpu.py --markdown       # the same as Markdown for docs/performance.md
    python benchmarks/compare_gpu.py --sizes 100x64x512x512 --cells lstm

Method (see docs/performance.md):
- both libraries get the same weights (torch's state_dict loaded into a ``device="cuda"``
  numlstm layer) and the same float32 input, already on the GPU: numlstm takes the Numba
  device arrays, torch the CUDA tensors, so no host transfer is timed;
- cuDNN runs with TF32 off (``torch.backends.cudnn.allow_tf32 = False``), so both sides do
  float32 arithmetic;
- inference: numlstm under ``numlstm.no_grad()``, torch under ``torch.inference_mode()``;
  forward+backward: numlstm forward then ``layer.backward(grad_out)``, torch forward then
  ``out.backward(grad_out)``; both produce input and weight gradients;
- every timed call ends with a device synchronisation; samples alternate between the
  libraries and medians are reported (benchmarks/_common.py: measure_alternating);
- "max |diff|" is the largest difference between the two inference outputs, a sanity check.

Without torch, or with a torch that has no CUDA, only numlstm's times are printed. Under
``NUMBA_ENABLE_CUDASIM=1`` the script runs too (use tiny --sizes): a smoke test, not a timing.
"""

import argparse
import datetime
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import _common as C  # noqa: E402
else:
    from . import _common as C

# issue 4's grid, then the sizes of issue 5's GPU targets
SIZES = C.SIZES + [(100, 1, 512, 512), (100, 8, 512, 512), (100, 64, 512, 512)]


def cuda_torch():
    """torch when it is importable and sees a GPU, else None."""
    torch = C.import_torch()
    if torch is None or not torch.cuda.is_available():
        return None
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    return torch


def measure(cells, sizes, torch, repeats, min_time, log):
    rows = []
    for cell in cells:
        for size in sizes:
            w = C.Workload(cell, size, with_torch=torch is not None, device="cuda")
            fns = {"nl_inf": w.nl_inference, "nl_fb": w.nl_fwd_bwd}
            if torch is not None:
                fns.update(pt_inf=w.pt_inference, pt_fb=w.pt_fwd_bwd)
            t = C.measure_alternating(fns, repeats=repeats, min_time=min_time, pause=0.0)
            row = {"cell": cell, "size": size, **t}
            if torch is not None:
                row["diff"] = w.max_abs_diff()
            rows.append(row)
            log(f"{cell} {C.size_label(size)}: " + ", ".join(f"{k} {v * 1e3:.3f} ms" for k, v in t.items()))
    return rows


def report(rows, device, versions, markdown, have_torch):
    headers = ["cell", "T x B x I x H", "numlstm fwd ms", "numlstm fwd+bwd ms"]
    if have_torch:
        headers += ["cuDNN fwd ms", "cuDNN fwd+bwd ms", "ratio fwd", "ratio fwd+bwd", "max |diff|"]
    body = []
    for r in rows:
        line = [r["cell"].upper(), C.size_label(r["size"]), f"{r['nl_inf'] * 1e3:.3f}", f"{r['nl_fb'] * 1e3:.3f}"]
        if have_torch:
            line += [f"{r['pt_inf'] * 1e3:.3f}", f"{r['pt_fb'] * 1e3:.3f}",
                     f"{r['nl_inf'] / r['pt_inf']:.2f}", f"{r['nl_fb'] / r['pt_fb']:.2f}", f"{r['diff']:.1e}"]
        body.append(line)
    out = [f"date: {datetime.date.today().isoformat()}", f"device: {device}", f"versions: {versions}", ""]
    if markdown:
        out.append("| " + " | ".join(headers) + " |")
        out.append("|" + "---|" * len(headers))
        out += ["| " + " | ".join(line) + " |" for line in body]
    else:
        widths = [max(len(h), *(len(line[i]) for line in body)) for i, h in enumerate(headers)]
        out.append("  ".join(h.rjust(w) for h, w in zip(headers, widths)))
        out += ["  ".join(v.rjust(w) for v, w in zip(line, widths)) for line in body]
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", help="comma-separated TxBxIxH list (default: issue 4's grid and issue 5's sizes)")
    ap.add_argument("--cells", default="lstm,gru")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--min-time", type=float, default=0.1, help="seconds per sample")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    sizes = [C.parse_size(s) for s in args.sizes.split(",")] if args.sizes else SIZES
    cells = [c.strip() for c in args.cells.split(",")]

    import numba
    from numba import cuda

    torch = cuda_torch()
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        device = "CUDA simulator"
    else:
        device = cuda.get_current_device().name
        device = device.decode() if isinstance(device, bytes) else device
    versions = f"numba {numba.__version__}"
    if torch is not None:
        versions += f", torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}"
    rows = measure(cells, sizes, torch, args.repeats, args.min_time, lambda m: print(m, file=sys.stderr))
    print(report(rows, device, versions, args.markdown, torch is not None))


if __name__ == "__main__":
    main()
