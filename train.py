"""
Train a small byte-level GPT for a fixed wall-clock budget and hand the model over for scoring.

This is the one file the experiment loop edits. Everything fixed (data, loaders, the hand-over, the metric) lives in
prepare.py. The run never sees the validation bytes: at the end it writes model.pt2 with prepare.export_model, and
`python prepare.py --evaluate` (run by the harness afterwards, apart from this run) computes val_bpb from it.

Usage:
    python prepare.py                             # once, before any run: builds data/
    python train.py                               # budget from $AUTORESEARCH_BUDGET seconds, default 300
    AUTORESEARCH_BUDGET=60 python train.py        # a one-minute run; works on a laptop CPU
    AUTORESEARCH_CORPUS=input.txt python train.py # train on a custom corpus (see prepare.py)
    python prepare.py --evaluate                  # score out/model.pt2 by hand (the harness does it after a run)

Time: the training loop alone uses the budget. Start-up (imports, data, model, any torch.compile) and the export at
the end (a few seconds) come on top, and must fit in the harness's grace (60 s by default) or the run is killed.
The model must stay exportable with torch.export: tensor operations only, causal, one int64 input (B, T).
The run ends with a `---` summary; it prints no val_bpb line, because only the evaluator's number counts.
"""

from __future__ import annotations

import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from prepare import VOCAB_SIZE, export_model, get_batch, load_split

# ---------------------------------------------------------------------------
# Hyperparameters

# fmt: off
LEARNING_RATE = 3e-3    # peak AdamW lr, reached at the end of warmup
WEIGHT_DECAY = 0.1      # AdamW decoupled decay, on matrices only
BETA1 = 0.9             # AdamW first-moment decay
BETA2 = 0.99            # AdamW second-moment decay; a bit lower than 0.999 because runs are short
GRAD_CLIP = 1.0         # max global grad norm; 0 disables
WARMUP_FRAC = 0.05      # fraction of the time budget spent warming the lr up from 0
FINAL_LR_FRAC = 0.05    # lr at the end of the budget, as a fraction of LEARNING_RATE
DEPTH = 4               # transformer blocks
WIDTH = 128             # model dimension (residual stream)
HEADS = 4               # attention heads; WIDTH must divide by it
MLP_RATIO = 4           # hidden units in each MLP, as a multiple of WIDTH
DROPOUT = 0.0           # dropout prob; short runs rarely overfit, so off by default
BATCH_SIZE = 16         # sequences per optimizer step; small, because on a CPU more updates beat bigger ones
BLOCK_SIZE = 64         # context length in bytes; also the context the model gets at evaluation
SEED = 1337             # seeds weights and batch order
LOG_EVERY = 10.0        # seconds between progress lines

DEFAULT_BUDGET = 300.0  # seconds of training when $AUTORESEARCH_BUDGET is unset
# fmt: on

# ---------------------------------------------------------------------------
# Model


class CausalSelfAttention(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        assert width % heads == 0, "WIDTH must be divisible by HEADS"
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.proj = nn.Linear(width, width, bias=False)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        # (B, T, C) -> (B, heads, T, head_dim) for the fused attention kernel
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).contiguous().view(b, t, c))


class MLP(nn.Module):
    def __init__(self, width: int, ratio: int, dropout: float) -> None:
        super().__init__()
        self.fc = nn.Linear(width, ratio * width, bias=False)
        self.proj = nn.Linear(ratio * width, width, bias=False)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    # pre-norm residual block: the residual stream stays un-normalised, which keeps deep stacks trainable
    def __init__(self, width: int, heads: int, ratio: int, dropout: float) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(width)
        self.attn = CausalSelfAttention(width, heads, dropout)
        self.ln2 = nn.LayerNorm(width)
        self.mlp = MLP(width, ratio, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, depth: int, width: int, heads: int, block_size: int, ratio: int, dropout: float) -> None:
        super().__init__()
        self.block_size = block_size
        self.tok = nn.Embedding(VOCAB_SIZE, width)
        self.pos = nn.Embedding(block_size, width)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(width, heads, ratio, dropout) for _ in range(depth))
        self.ln_f = nn.LayerNorm(width)
        self.head = nn.Linear(width, VOCAB_SIZE, bias=False)
        self.head.weight = self.tok.weight  # tied embeddings: fewer parameters, and it helps a small model
        self.apply(self._init)
        # scale the residual projections down with depth so the stream's variance does not grow per block
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * depth))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) byte ids -> (B, T, 256) logits; the contract the evaluator in prepare.py relies on."""
        t = idx.shape[1]
        assert t <= self.block_size, f"sequence of {t} is longer than block_size {self.block_size}"
        x = self.drop(self.tok(idx) + self.pos(torch.arange(t, device=idx.device)))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


# ---------------------------------------------------------------------------
# Optimizer and schedule


def make_optimizer(model: nn.Module, device: torch.device) -> torch.optim.Optimizer:
    # decay only matrices; biases, norms and the like are few parameters and decaying them hurts
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=LEARNING_RATE, betas=(BETA1, BETA2), fused=device.type == "cuda")


def lr_at(frac: float) -> float:
    """Learning rate at a fraction of the time budget: linear warmup, then cosine down to FINAL_LR_FRAC."""
    if frac < WARMUP_FRAC:
        return LEARNING_RATE * (frac + 1e-3) / WARMUP_FRAC  # never exactly 0, so the first step moves
    progress = min(1.0, (frac - WARMUP_FRAC) / max(1e-8, 1.0 - WARMUP_FRAC))
    scale = FINAL_LR_FRAC + (1.0 - FINAL_LR_FRAC) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return LEARNING_RATE * scale


# ---------------------------------------------------------------------------
# Training


def main() -> None:
    t_start = time.perf_counter()
    budget = float(os.environ.get("AUTORESEARCH_BUDGET", DEFAULT_BUDGET))

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        # intra-op threads on every core we may use; the default can be lower inside containers
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        torch.set_num_threads(max(1, cores))
    else:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    # bf16 autocast on GPU roughly doubles throughput; on CPU plain fp32 is faster for a model this small
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    train_bytes = len(load_split("train"))  # one clear line when the data is missing: `python prepare.py` builds it

    model = GPT(DEPTH, WIDTH, HEADS, BLOCK_SIZE, MLP_RATIO, DROPOUT).to(device)
    params = sum(p.numel() for p in model.parameters())
    optimizer = make_optimizer(model, device)
    print(f"device {device} | params {params:,} | budget {budget:.0f}s | corpus {train_bytes:,} train bytes")

    # the clock covers training only; start-up before it and the export after it must fit in the harness's grace
    step = 0
    tokens_seen = 0
    loss_ema = float("nan")
    t_train = time.perf_counter()
    next_log = LOG_EVERY
    while True:
        elapsed = time.perf_counter() - t_train
        if elapsed >= budget and step > 0:
            break
        lr = lr_at(elapsed / budget if budget > 0 else 1.0)
        for group in optimizer.param_groups:
            group["lr"] = lr

        x, y = get_batch("train", BATCH_SIZE, BLOCK_SIZE, device, gen)
        with autocast:
            logits = model(x)
        loss = F.cross_entropy(logits.float().view(-1, VOCAB_SIZE), y.view(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if GRAD_CLIP > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        optimizer.step()

        # .item() syncs with the GPU each step, which also keeps the wall clock honest
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"training loss is {loss_value} at step {step}")
        loss_ema = loss_value if step == 0 else 0.95 * loss_ema + 0.05 * loss_value
        step += 1
        tokens_seen += x.numel()
        elapsed = time.perf_counter() - t_train
        if elapsed >= next_log:
            next_log += LOG_EVERY
            bpb = loss_ema / math.log(2)
            pct = 100 * min(1.0, elapsed / budget) if budget > 0 else 100.0
            rate = tokens_seen / elapsed
            print(f"step {step:6d} | {pct:5.1f}% | train_bpb {bpb:.4f} | lr {lr:.2e} | {rate:,.0f} tok/s", flush=True)
    training_seconds = time.perf_counter() - t_train

    # ---------------------------------------------------------------------------
    # Hand-over and summary

    # the evaluator rebuilds the model from this file alone (weights and an ATen graph), in a process of its own
    t_export = time.perf_counter()
    model_path = export_model(model, BLOCK_SIZE)
    export_seconds = time.perf_counter() - t_export

    print("---")
    print(f"training_seconds: {training_seconds:.1f}")
    print(f"export_seconds:   {export_seconds:.1f}")
    print(f"total_seconds:    {time.perf_counter() - t_start:.1f}")
    print(f"steps:            {step}")
    print(f"tokens_seen:      {tokens_seen}")
    print(f"params:           {params}")
    print(f"depth:            {DEPTH}")
    print(f"width:            {WIDTH}")
    print(f"device:           {device.type}")
    if device.type == "cuda":
        print(f"peak_memory_mb:   {torch.cuda.max_memory_allocated() / 2**20:.0f}")
    print(f"model:            {model_path}")
    print(f"train_bpb:        {loss_ema / math.log(2):.6f}", flush=True)


if __name__ == "__main__":
    main()
