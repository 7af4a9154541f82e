#!/usr/bin/env python3
"""PyTorch fp32 baseline for the H2OVL vision encoder, side by side with `h2ovl bench vision`.

Why: issue 6 sets our ViT speed targets as ratios to PyTorch fp32 (oneDNN) on the same machine, so
the baseline must be measured in the same run, same threads, same full-size weights. The model below
is a plain re-statement of the math in h2ovl-model-spec.md §3 (patch conv, CLS first, positions,
24 pre-norm blocks with layer scales, pixel shuffle v2, LayerNorm → Linear → GELU → Linear projector),
written against the HF checkpoint's tensor names. Before timing, `--check-golden` proves it against
the golden fixtures' reference embeddings (an independent transformers implementation).

Optional dependency: torch (+ numpy, safetensors, pillow). Without torch the script prints one line
saying so and exits 0, so it can sit in any workflow.

Usage:
  python3 quant-tests/scripts/torch_vit_bench.py --hf-dir MODEL_DIR [--mmproj F.gguf --h2ovl BIN]
         [-t 2] [--runs 3] [--rounds 1] [--check-golden]
With --mmproj and --h2ovl it also runs `h2ovl bench vision --json` right after (same threads) and
prints the ratio PyTorch time / ours (> 1 means ours is faster).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "..", "fixtures", "golden")

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
    from safetensors import safe_open
except ImportError as e:  # optional dependency
    print(f"skipped: PyTorch baseline needs torch, numpy and safetensors ({e}); pip install torch numpy safetensors pillow")
    sys.exit(0)

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class Vit:
    """InternViT + pixel shuffle + mlp1 projector in fp32, weights taken from a HF H2OVL folder."""

    def __init__(self, hf_dir):
        cfg = json.load(open(os.path.join(hf_dir, "config.json")))
        vc = cfg["vision_config"]
        self.d = vc["hidden_size"]
        self.heads = vc["num_attention_heads"]
        self.layers = vc["num_hidden_layers"]
        self.patch = vc["patch_size"]
        self.eps = vc.get("layer_norm_eps", 1e-6)
        self.ds = cfg.get("downsample_ratio", 0.5)
        sel = cfg.get("select_layer", -1)
        self.run_layers = self.layers + sel + 1 if sel < 0 else sel
        files = [f for f in os.listdir(hf_dir) if f.endswith(".safetensors")]
        self.w = {}
        for f in sorted(files):
            with safe_open(os.path.join(hf_dir, f), framework="pt") as st:
                for k in st.keys():
                    if k.startswith("vision_model.") or k.startswith("mlp1."):
                        self.w[k] = st.get_tensor(k).float().contiguous()

    def t(self, name):
        return self.w[name]

    @torch.inference_mode()
    def forward(self, pixels):
        """pixels: [T, 3, 448, 448] normalized → image embeddings [T·256, H]."""
        p = "vision_model."
        x = F.conv2d(pixels, self.t(p + "embeddings.patch_embedding.weight"), self.t(p + "embeddings.patch_embedding.bias"), stride=self.patch)
        tiles, d, gh, gw = x.shape
        x = x.flatten(2).transpose(1, 2)
        cls = self.t(p + "embeddings.class_embedding").reshape(1, 1, d).expand(tiles, 1, d)
        x = torch.cat([cls, x], dim=1) + self.t(p + "embeddings.position_embedding").reshape(1, -1, d)
        hd = d // self.heads
        for i in range(self.run_layers):
            q = f"{p}encoder.layers.{i}."
            h = F.layer_norm(x, (d,), self.t(q + "norm1.weight"), self.t(q + "norm1.bias"), self.eps)
            qkv = F.linear(h, self.t(q + "attn.qkv.weight"), self.t(q + "attn.qkv.bias"))
            qkv = qkv.reshape(tiles, -1, 3, self.heads, hd).permute(2, 0, 3, 1, 4)
            a = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
            a = a.transpose(1, 2).reshape(tiles, -1, d)
            x = x + self.t(q + "ls1") * F.linear(a, self.t(q + "attn.proj.weight"), self.t(q + "attn.proj.bias"))
            h = F.layer_norm(x, (d,), self.t(q + "norm2.weight"), self.t(q + "norm2.bias"), self.eps)
            h = F.gelu(F.linear(h, self.t(q + "mlp.fc1.weight"), self.t(q + "mlp.fc1.bias")))
            x = x + self.t(q + "ls2") * F.linear(h, self.t(q + "mlp.fc2.weight"), self.t(q + "mlp.fc2.bias"))
        x = x[:, 1:, :].reshape(tiles, gh, gw, d)
        # Pixel shuffle v2 (spec §3.7): token (i, j) = patches (2i,2j), (2i,2j+1), (2i+1,2j), (2i+1,2j+1).
        f = int(round(1 / self.ds))
        x = x.reshape(tiles, gh // f, f, gw // f, f, d).permute(0, 1, 3, 2, 4, 5).reshape(tiles, (gh // f) * (gw // f), f * f * d)
        x = F.layer_norm(x, (x.shape[-1],), self.t("mlp1.0.weight"), self.t("mlp1.0.bias"), 1e-5)
        x = F.gelu(F.linear(x, self.t("mlp1.1.weight"), self.t("mlp1.1.bias")))
        x = F.linear(x, self.t("mlp1.3.weight"), self.t("mlp1.3.bias"))
        return x.reshape(-1, x.shape[-1])


def tile_from_png(path):
    from PIL import Image

    a = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    a = (a - np.array(MEAN, dtype=np.float32)) / np.array(STD, dtype=np.float32)
    return torch.from_numpy(a.transpose(2, 0, 1).copy())


def check_golden():
    """Our torch model vs the reference embeddings of one golden case (README tolerance 1e-4 f32)."""
    case = os.path.join(GOLDEN, "cases", "tiny_single_640x480")
    tiles_dir = os.path.join(case, "tiles_img0")
    tiles = torch.stack([tile_from_png(os.path.join(tiles_dir, f)) for f in sorted(os.listdir(tiles_dir))])
    got = Vit(os.path.join(GOLDEN, "checkpoints", "tiny")).forward(tiles).numpy()
    want = np.load(os.path.join(case, "image_embeds.npy")).reshape(got.shape)
    err = float(np.abs(got - want).max())
    print(f"golden check (tiny_single_640x480, {tiles.shape[0]} tiles): max |torch - reference| = {err:.2e}")
    return err


def bench_torch(hf_dir, threads, runs):
    torch.set_num_threads(threads)
    m = Vit(hf_dir)
    g = torch.Generator().manual_seed(0)
    tile = torch.randn(1, 3, 448, 448, generator=g)
    m.forward(tile)  # warm-up (oneDNN primitive creation, page-in)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        m.forward(tile)
        times.append(time.perf_counter() - t0)
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hf-dir", help="HF H2OVL folder (full-size synthetic: `h2ovl gen-model --preset 800m`)")
    ap.add_argument("--mmproj", help="vision GGUF of the same checkpoint, for the side-by-side run")
    ap.add_argument("--h2ovl", default="target/release/h2ovl", help="h2ovl binary")
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--check-golden", action="store_true", help="prove the torch model on the golden fixtures first")
    ap.add_argument("--rounds", type=int, default=1, help="alternate PyTorch and h2ovl this many times (ratios per round)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    out = {"torch": torch.__version__, "threads": a.threads, "mkldnn": torch.backends.mkldnn.is_available()}
    if a.check_golden:
        out["golden_max_abs"] = check_golden()
        if out["golden_max_abs"] > 1e-4:
            print("error: the torch baseline disagrees with the golden reference", file=sys.stderr)
            sys.exit(1)
    if not a.hf_dir:
        if not a.check_golden:
            ap.error("--hf-dir is required (or --check-golden alone)")
        return
    out["rounds"] = []
    for rnd in range(a.rounds):
        t = bench_torch(a.hf_dir, a.threads, a.runs)
        rec = {"torch_s_per_tile": t, "torch_s_per_tile_median": statistics.median(t)}
        out["rounds"].append(rec)
        out["torch_s_per_tile"] = t
        out["torch_s_per_tile_median"] = statistics.median(t)
        print(f"[round {rnd + 1}] PyTorch {torch.__version__} fp32, {a.threads} threads: {statistics.median(t):.3f} s/tile (median of {a.runs}; {', '.join(f'{x:.3f}' for x in t)})")
        if not a.mmproj:
            continue
        cmd = [a.h2ovl, "bench", "vision", "--mmproj", a.mmproj, "-t", str(a.threads), "--runs", str(a.runs), "--json"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            print(f"error: {' '.join(cmd)} failed: {r.stderr.strip()}", file=sys.stderr)
            sys.exit(1)
        ours = json.loads(r.stdout)
        out["h2ovl"] = ours
        rec["h2ovl"] = ours
        t = out["torch_s_per_tile_median"]
        ours_s = ours["wall_s_per_tile_median"]
        out["ratio_torch_over_ours_f32"] = rec["ratio_torch_over_ours_f32"] = t / ours_s
        print(f"h2ovl f32 arithmetic ({os.path.basename(a.mmproj)}, {ours['encoder_isa']}): {ours_s:.3f} s/tile -> PyTorch/h2ovl = {t / ours_s:.2f}x")
        i8 = ours.get("int8")
        if i8:
            out["ratio_torch_over_ours_int8"] = rec["ratio_torch_over_ours_int8"] = t / i8["wall_s_per_tile_median"]
            print(f"h2ovl int8 arithmetic ({i8['math']}): {i8['wall_s_per_tile_median']:.3f} s/tile -> PyTorch/h2ovl = "
                  f"{out['ratio_torch_over_ours_int8']:.2f}x (per-token cosine vs f32: min {i8['cosine_min']:.5f})")
        # Every kernel path of the same h2ovl run (bench vision runs them alternately).
        for p in ours.get("paths", []):
            extra = f", cosine min {p['cosine_min']:.5f}" if p.get("cosine_min") is not None else ""
            print(f"  {p['math']:<22} {p['wall_s_per_tile_median']:.3f} s/tile -> PyTorch/h2ovl = {t / p['wall_s_per_tile_median']:.2f}x{extra}")
        print(f"load average after the run: {ours.get('load_average', '?')}")
    if a.json:
        print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
