#!/usr/bin/env python3
"""End-to-end figures of `h2ovl run` on one image: time to first token and peak RSS vs the GGUF sizes.

Why a separate process per measurement: peak RSS (ru_maxrss of the child) and time-to-first-token
are what a user sees, model loading included; an in-process bench would hide the loader and mix the
peaks of several runs. Standard library only (runs anywhere Python 3.8+ is).

TTFT is measured from process start to the first byte of the streamed answer on stdout (model mmap,
image decode + preprocessing, vision encode, prefill and the first sampling step), and also split
with the run's own `--output json` timings in a second run. The issue's memory bound is
  peak RSS <= 1.15 x (LLM GGUF + mmproj GGUF bytes) + KV cache + one tile's activations,
with the KV cache = n_ctx x n_layers x 2 (K,V) x n_kv_heads x head_dim x 2 bytes (f16) and one tile's
activations = 1025 tokens x (5 x D + F) floats (the ViT scratch buffers) -- both printed.

Usage:
  python3 quant-tests/scripts/run_bench.py --h2ovl target/release/h2ovl \
      --model M.gguf --mmproj V.gguf --image IMG [-t 2] [--runs 3] [-n 16] [--json]
"""
import argparse
import json
import os
import resource
import statistics
import struct
import subprocess
import sys
import time


def gguf_kv(path, wanted):
    """Reads the scalar metadata values named in `wanted` from a GGUF header (no dependencies)."""
    out = {}
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise SystemExit(f"error: {path} is not a GGUF file")
        _ver, _nt, nkv = struct.unpack("<IQQ", f.read(20))
        scal = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}

        def read_str():
            (n,) = struct.unpack("<Q", f.read(8))
            return f.read(n).decode("utf-8", "replace")

        def skip_or_read(t):
            if t in scal:
                fmt = scal[t]
                return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]
            if t == 8:
                return read_str()
            if t == 9:
                et, n = struct.unpack("<IQ", f.read(12))
                if et in scal:
                    f.seek(n * struct.calcsize(scal[et]), 1)
                else:
                    for _ in range(n):
                        skip_or_read(et)
                return None
            raise SystemExit(f"error: {path}: unknown GGUF value type {t}")

        for _ in range(nkv):
            key = read_str()
            (t,) = struct.unpack("<I", f.read(4))
            v = skip_or_read(t)
            if key in wanted:
                out[key] = v
    return out


def run_once(cmd, json_mode):
    """Runs `h2ovl run` once; returns (ttft_s or None, total_s, stdout)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd + (["--output", "json"] if json_mode else []), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = p.stdout.read(1)
    ttft = time.perf_counter() - t0 if first and not json_mode else None
    rest = p.stdout.read()
    err = p.stderr.read()
    rc = p.wait()
    total = time.perf_counter() - t0
    if rc != 0:
        raise SystemExit(f"error: {' '.join(cmd)} exited {rc}: {err.decode(errors='replace').strip()}")
    return ttft, total, (first + rest).decode(errors="replace")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--h2ovl", default="target/release/h2ovl")
    ap.add_argument("--model", required=True)
    ap.add_argument("--mmproj", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("-p", "--prompt", default="Describe this image in detail.")
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("-n", "--max-new-tokens", type=int, default=16)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--extra", default="", help="extra flags for h2ovl run, e.g. '--flash-attn on'")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    for f in (a.h2ovl, a.model, a.mmproj, a.image):
        if not os.path.exists(f):
            raise SystemExit(f"error: {f} does not exist")
    cmd = [a.h2ovl, "run", "-m", a.model, "--mmproj", a.mmproj, "--image", a.image, "-p", a.prompt,
           "-n", str(a.max_new_tokens), "--temp", "0", "-t", str(a.threads), "--quiet"] + a.extra.split()

    # One JSON run first: the prompt length (for n_ctx) and the split of the time.
    _, _, out = run_once(cmd, True)
    j = json.loads(out)
    ttfts, totals = [], []
    for _ in range(a.runs):
        ttft, total, _ = run_once(cmd, False)
        ttfts.append(ttft)
        totals.append(total)
    # ru_maxrss of RUSAGE_CHILDREN (KiB on Linux) = the largest child; all children ran the same job.
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024

    arch = gguf_kv(a.model, {"general.architecture"}).get("general.architecture", "llama")
    m = gguf_kv(a.model, {f"{arch}.block_count", f"{arch}.attention.head_count_kv", f"{arch}.attention.head_count", f"{arch}.embedding_length"})
    v = gguf_kv(a.mmproj, {"clip.vision.embedding_length", "clip.vision.feed_forward_length"})
    n_layers, n_kv = m[f"{arch}.block_count"], m[f"{arch}.attention.head_count_kv"]
    head_dim = m[f"{arch}.embedding_length"] // m[f"{arch}.attention.head_count"]
    n_ctx = j["prompt_tokens"] + a.max_new_tokens  # the run's default context size
    kv_bytes = n_ctx * n_layers * 2 * n_kv * head_dim * 2
    d, ffn = v["clip.vision.embedding_length"], v["clip.vision.feed_forward_length"]
    act_bytes = 1025 * (5 * d + ffn) * 4
    gguf_bytes = os.path.getsize(a.model) + os.path.getsize(a.mmproj)
    bound = 1.15 * gguf_bytes + kv_bytes + act_bytes
    r = {
        "model": os.path.basename(a.model), "mmproj": os.path.basename(a.mmproj), "threads": a.threads,
        "image_tiles": j["image_tiles"], "prompt_tokens": j["prompt_tokens"],
        "ttft_s_median": statistics.median(ttfts), "ttft_s": ttfts, "total_s_median": statistics.median(totals),
        "split_json_run": j["timings"],
        "peak_rss_bytes": peak, "gguf_bytes": gguf_bytes, "kv_bytes": kv_bytes, "tile_activation_bytes": act_bytes,
        "rss_bound_bytes": bound, "rss_over_bound": peak / bound, "rss_over_gguf": peak / gguf_bytes,
    }
    if a.json:
        print(json.dumps(r, indent=1))
    else:
        tm = j["timings"]
        print(f"{r['model']} + {r['mmproj']}, {a.threads} threads, {sum(j['image_tiles'])} tile(s), {j['prompt_tokens']} prompt tokens")
        print(f"  TTFT (process start -> first answer byte): {r['ttft_s_median']:.2f} s median of {a.runs} "
              f"[{', '.join(f'{x:.2f}' for x in ttfts)}]; split: encode {tm['image_encode_s']:.2f} s + prefill {tm['prefill_s']:.2f} s")
        print(f"  peak RSS {peak / 1e6:.0f} MB; GGUF {gguf_bytes / 1e6:.0f} MB (x{r['rss_over_gguf']:.2f}); bound 1.15xGGUF + KV {kv_bytes / 1e6:.0f} MB"
              f" + tile {act_bytes / 1e6:.0f} MB = {bound / 1e6:.0f} MB -> {'OK' if peak <= bound else 'OVER'} ({r['rss_over_bound']:.2f} of bound)")


if __name__ == "__main__":
    sys.exit(main())
