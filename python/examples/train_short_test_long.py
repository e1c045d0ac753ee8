"""Train short, test long: the ALiBi paper's Figure 1 at toy scale, with this library's kernels.

Two character-level transformer language models, identical but for positions, are trained with the same
budget on 64-character sequences:

* ALiBi: no position embedding; attention (forward and backward) by ``alibi_attention.torch.attention``.
* Sinusoidal: the original Transformer's position embeddings added to the input; plain torch attention.

Both are then evaluated on held-out text cut into non-overlapping windows of 64 .. 1024 characters (the
paper's evaluation: each window is read from its start, every character predicted from the ones before it
in its window). Perplexity is per character. The script prints a Markdown table and writes a plot.

Corpus: the Debian package ``fortunes`` (``apt-get install fortunes``), the plain-text fortune-cookie
files under /usr/share/games/fortunes, read at run time; the last 10 % of the text is held out.

    .venv/bin/python python/examples/train_short_test_long.py            # about 10 minutes on 2 cores
    .venv/bin/python python/examples/train_short_test_long.py --smoke    # about 1 minute (CI)
"""

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import alibi_attention
import alibi_attention.torch as alibi_torch

CORPUS_DIR = Path("/usr/share/games/fortunes")
# Files of pictures, not prose.
SKIPPED = {"art", "ascii-art"}
TRAIN_LEN = 64
EVAL_LENS = (64, 128, 256, 512, 1024)


def load_corpus():
    if not CORPUS_DIR.is_dir():
        sys.exit(f"{CORPUS_DIR} not found: install the corpus with `sudo apt-get install -y fortunes`")
    parts = []
    for path in sorted(CORPUS_DIR.iterdir()):
        if path.is_symlink() or path.suffix in (".dat", ".u8") or path.name in SKIPPED or not path.is_file():
            continue
        parts.append(path.read_bytes().decode("utf-8", errors="replace"))
    text = "\n".join(parts)
    # Printable ASCII and newline; anything else becomes one "other" symbol.
    table = np.zeros(256, dtype=np.int64)
    alphabet = ["\n"] + [chr(c) for c in range(32, 127)]
    for i, ch in enumerate(alphabet):
        table[ord(ch)] = i + 1
    raw = np.frombuffer(text.encode("ascii", errors="replace"), dtype=np.uint8)
    tokens = table[raw]
    return torch.from_numpy(tokens), len(alphabet) + 1


def sinusoids(length, width):
    position = torch.arange(length, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(10000.0) / width))
    pe = torch.zeros(length, width)
    pe[:, 0::2] = torch.sin(position * frequency)
    pe[:, 1::2] = torch.cos(position * frequency)
    return pe


def alibi_attend(q, k, v):
    return alibi_torch.attention(q, k, v, causal=True)


def plain_attend(q, k, v):
    # [batch, seq, heads, dim] -> [batch, heads, seq, dim]; softmax(q k^T / sqrt(d) + causal mask) v.
    q, k, v = (x.transpose(1, 2) for x in (q, k, v))
    t = q.shape[2]
    logits = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    mask = torch.ones(t, t, dtype=torch.bool).triu(1)
    weights = logits.masked_fill(mask, float("-inf")).softmax(-1)
    return (weights @ v).transpose(1, 2)


class Block(nn.Module):
    def __init__(self, width, heads, attend):
        super().__init__()
        self.heads, self.attend = heads, attend
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x):
        b, t, c = x.shape
        qkv = self.qkv(self.ln1(x)).view(b, t, 3, self.heads, c // self.heads)
        q, k, v = (qkv[:, :, i].contiguous() for i in range(3))
        x = x + self.proj(self.attend(q, k, v).reshape(b, t, c))
        return x + self.mlp(self.ln2(x))


class CharLM(nn.Module):
    def __init__(self, vocab, width, heads, layers, positions):
        super().__init__()
        self.positions = positions
        self.embed = nn.Embedding(vocab, width)
        attend = alibi_attend if positions == "alibi" else plain_attend
        self.blocks = nn.ModuleList(Block(width, heads, attend) for _ in range(layers))
        self.ln = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab)

    def forward(self, tokens):
        x = self.embed(tokens)
        if self.positions == "sinusoidal":
            x = x + sinusoids(tokens.shape[1], x.shape[2])
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x))


def train(model, data, steps, batch, lr, seed):
    generator = torch.Generator().manual_seed(seed)  # the same batches for both models
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * s / steps))))
    model.train()
    start = time.perf_counter()
    for step in range(steps):
        starts = torch.randint(0, len(data) - TRAIN_LEN - 1, (batch,), generator=generator)
        chunk = torch.stack([data[s:s + TRAIN_LEN + 1] for s in starts.tolist()])
        logits = model(chunk[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), chunk[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if step % max(1, steps // 10) == 0 or step == steps - 1:
            print(f"  {model.positions:>10} step {step:5d}  loss {loss.item():.3f}  "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    return time.perf_counter() - start


@torch.no_grad()
def perplexity(model, data, length, max_chars):
    """exp(mean NLL per character) over non-overlapping windows of `length` (+1 for the last target)."""
    model.eval()
    usable = min(len(data) - 1, max_chars)
    windows = usable // length
    inputs = data[:windows * length].view(windows, length)
    targets = data[1:windows * length + 1].view(windows, length)
    total, count = 0.0, 0
    per_batch = max(1, 8192 // length)
    for i in range(0, windows, per_batch):
        logits = model(inputs[i:i + per_batch])
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets[i:i + per_batch].reshape(-1),
                                 reduction="sum").item()
        count += targets[i:i + per_batch].numel()
    return math.exp(total / count)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a short run (about 1 minute) for CI")
    parser.add_argument("--steps", type=int, help="training steps per model (default 1000, smoke 60)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--eval-chars", type=int, help="held-out characters evaluated per length "
                        "(default: all, smoke 16384)")
    parser.add_argument("--plot", help="where to write the figure (default docs/extrapolation.png; smoke: "
                        "build/extrapolation_smoke.png)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    steps = args.steps or (60 if args.smoke else 1000)
    eval_chars = args.eval_chars or (16384 if args.smoke else 1 << 40)
    root = Path(__file__).resolve().parents[2]
    plot = Path(args.plot) if args.plot else root / ("build/extrapolation_smoke.png" if args.smoke
                                                      else "docs/extrapolation.png")

    torch.manual_seed(args.seed)
    tokens, vocab = load_corpus()
    split = int(len(tokens) * 0.9)
    train_data, held_out = tokens[:split], tokens[split:]
    print(f"corpus: {CORPUS_DIR} ({len(tokens)} chars, vocab {vocab}); held out {len(held_out)}; "
          f"kernel {alibi_attention.isa_name()}, torch threads {torch.get_num_threads()}", flush=True)

    results, seconds = {}, {}
    wall, cpu = time.perf_counter(), time.process_time()
    for positions in ("alibi", "sinusoidal"):
        torch.manual_seed(args.seed)
        model = CharLM(vocab, args.width, args.heads, args.layers, positions)
        print(f"{positions}: {sum(p.numel() for p in model.parameters())} parameters, {steps} steps of "
              f"{args.batch} x {TRAIN_LEN} chars", flush=True)
        seconds[positions] = train(model, train_data, steps, args.batch, args.lr, args.seed)
        results[positions] = [perplexity(model, held_out, n, eval_chars) for n in EVAL_LENS]
        print(f"  {positions} perplexity: " + ", ".join(f"{n}: {p:.2f}" for n, p in zip(EVAL_LENS, results[positions])),
              flush=True)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu

    print()
    print("| evaluation length (chars) | " + " | ".join(str(n) for n in EVAL_LENS) + " |")
    print("|---|" + "---:|" * len(EVAL_LENS))
    for positions, name in (("alibi", "ALiBi (this library)"), ("sinusoidal", "sinusoidal")):
        row = results[positions]
        print(f"| {name} | " + " | ".join(f"{p:.2f}" for p in row) + " |")
    for positions in ("alibi", "sinusoidal"):
        ratio = results[positions][-1] / results[positions][0]
        print(f"{positions}: perplexity at {EVAL_LENS[-1]} / at {EVAL_LENS[0]} = {ratio:.2f}; "
              f"training {seconds[positions]:.0f} s")
    print(f"training and evaluation: wall time {wall:.0f} s, CPU time {cpu:.0f} s ({os.cpu_count()} CPUs, "
          f"{steps} steps per model)")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(EVAL_LENS, results["alibi"], "o-", label="ALiBi (alibi_attention)")
    ax.plot(EVAL_LENS, results["sinusoidal"], "s--", label="sinusoidal")
    ax.axvline(TRAIN_LEN, color="gray", linestyle=":", linewidth=1)
    ax.set_xscale("log", base=2)
    ax.set_ylim(bottom=0)
    ax.set_xticks(EVAL_LENS)
    ax.set_xticklabels([str(n) for n in EVAL_LENS])
    ax.set_xlabel("evaluation length (characters; trained on 64)")
    ax.set_ylabel("held-out perplexity per character")
    ax.set_title("Train short, test long: two 2-layer character LMs")
    ax.legend()
    fig.tight_layout()
    plot.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(plot, dpi=120)
    print(f"wrote {plot}")


if __name__ == "__main__":
    main()
