"""The book's training loop from a terminal: a small GPT on the toy world's stories.

    python -m lmbook_utils.cli train --steps 300 --batch-size 32
    python -m lmbook_utils.cli train --steps 300 --checkpoint-dir runs/a --checkpoint-every 100
    python -m lmbook_utils.cli train --steps 300 --checkpoint-dir runs/a --resume runs/a
    torchrun --nproc_per_node=2 -m lmbook_utils.cli train --steps 300 --parallel fsdp

It is `train` itself (see `lmbook_utils.train`), with the data of chapter 06_gpt: stories of
`toyworld.generate_corpus`, one word per token, <bos> story <eos>, right-padded batches of
`data.batches`; the held-out loss is on the valid split. Under torchrun each process takes
rows rank::N of every batch, so that N processes train the model one process trains (tested:
tests/test_distributed.py runs this entry point). One line per evaluation, printed by rank 0.
Errors in the arguments name the argument.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .distributed import PARALLEL_MODES, torchrun_env

__all__ = ["main", "build_parser"]


def _number(kind: type, low: float, strict: bool = False) -> Callable[[str], float]:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            what = "an int" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if value < low or (strict and value == low) or value != value:
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {low}, got {text}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lmbook_utils.cli",
                                     description="The LLM Book's training loop from a terminal.")
    commands = parser.add_subparsers(dest="command", required=True)
    t = commands.add_parser("train", help="train a small GPT on the toy world's stories",
                            description="Train a small GPT on the toy world's stories with lmbook_utils.train; "
                                        "under torchrun, on several processes.")
    t.add_argument("--steps", type=_number(int, 1), default=300, help="optimizer updates (default 300)")
    t.add_argument("--batch-size", type=_number(int, 1), default=32, help="stories per micro-batch (default 32)")
    t.add_argument("--grad-accum", type=_number(int, 1), default=1, help="micro-batches per update (default 1)")
    t.add_argument("--lr", type=_number(float, 0.0, strict=True), default=3e-3, help="peak learning rate")
    t.add_argument("--warmup", type=_number(int, 0), default=None, help="warmup steps (default steps // 10)")
    t.add_argument("--eval-every", type=_number(int, 1), default=100, help="steps between held-out evaluations")
    t.add_argument("--n-chars", type=_number(int, 1000), default=200_000, help="size of the generated corpus")
    t.add_argument("--d-model", type=_number(int, 1), default=32, help="width of the GPT (default 32)")
    t.add_argument("--n-layers", type=_number(int, 1), default=2, help="Transformer blocks (default 2)")
    t.add_argument("--n-heads", type=_number(int, 1), default=2, help="attention heads (default 2)")
    t.add_argument("--dropout", type=_number(float, 0.0), default=0.0, help="dropout probability (default 0)")
    t.add_argument("--checkpoint-dir", default=None, help="write checkpoints (step-NNNNNN folders) here")
    t.add_argument("--checkpoint-every", type=_number(int, 1), default=None,
                   help="steps between checkpoints (default: only after the last step)")
    t.add_argument("--resume", default=None, help="a checkpoint folder, or a --checkpoint-dir, to continue from")
    t.add_argument("--parallel", choices=PARALLEL_MODES, default="ddp",
                   help="under torchrun: ddp (a copy per process) or fsdp (FSDP2 shards)")
    t.add_argument("--device", default=None, help="cpu, cuda or mps (default: cuda, then mps, then cpu)")
    t.add_argument("--seed", type=_number(int, 0), default=0, help="seeds the model, dropout and data order")
    t.add_argument("--threads", type=_number(int, 1), default=2,
                   help="torch's CPU threads in one process (default 2, as the book's outputs were computed); "
                        "under torchrun each process takes cores // processes")
    t.set_defaults(command_parser=t)  # errors found later read "train: error: argument --x: ..."
    return parser


def _data(n_chars: int, batch_size: int, seed: int):
    from . import toyworld as tw
    from .data import SequenceDataset, batches
    from .tokenizers import Tokenizer

    corpus = tw.generate_corpus(n_chars=n_chars, seed=0)
    words = {t for rules in tw.RULES.values() for rule in rules for kind, x in rule.en if kind == "T"
             for t in tw.tokenize_en(" ".join(x))}  # every word the grammar can write: a fixed vocabulary
    words |= {t for story in corpus.tokens("all") for t in story}
    tok = Tokenizer(sorted(words), unk=None)
    stories = {name: [[tok.bos_id, *(tok.token_to_id(t) for t in s), tok.eos_id] for s in corpus.tokens(name)]
               for name in ("train", "valid")}
    train_data = batches(SequenceDataset(stories["train"], tok.pad_id), batch_size=batch_size, seed=seed)
    valid_data = batches(SequenceDataset(stories["valid"], tok.pad_id), batch_size=256, shuffle=False)
    longest = max(len(s) for split in stories.values() for s in split) - 1
    return tok, train_data, valid_data, longest, {k: len(v) for k, v in stories.items()}


def _train(args: argparse.Namespace) -> int:
    from .checkpoint import load_weights, read_checkpoint
    from .gpt import GPT, GPTConfig
    from .repro import _parse_device, get_device, set_seed
    from .train import TrainConfig, train

    t = args.command_parser
    if args.d_model % args.n_heads:
        t.error(f"argument --n-heads: must divide --d-model={args.d_model}, got {args.n_heads}")
    if args.dropout >= 1:
        t.error(f"argument --dropout: must be < 1, got {args.dropout}")
    if args.checkpoint_every is not None and args.checkpoint_dir is None:
        t.error("argument --checkpoint-every: needs --checkpoint-dir (where to write them)")
    try:
        device = str(get_device() if args.device is None else _parse_device(args.device, "the device"))
    except (ValueError, RuntimeError) as error:
        t.error(f"argument --device: {error}")
    env = torchrun_env()
    world = env["world_size"] if env else 1
    if args.batch_size < world:
        t.error(f"argument --batch-size: must be >= the {world} processes (each takes rows of every batch), "
                f"got {args.batch_size}")
    tok, train_data, valid_data, longest, sizes = _data(args.n_chars, args.batch_size, args.seed)
    set_seed(args.seed, threads=args.threads)  # under torchrun, train() pins the threads of each process
    model = GPT(GPTConfig(tok.vocab_size, d_model=args.d_model, n_layers=args.n_layers, n_heads=args.n_heads,
                          max_len=longest, dropout=args.dropout, pad_id=tok.pad_id))
    if args.resume is not None:  # check here, so the error names --resume, not train's resume_from
        try:
            ckpt = read_checkpoint(args.resume, "--resume")
            load_weights(GPT(model.config), ckpt.weights, "--resume")
        except (FileNotFoundError, ValueError, TypeError) as error:
            t.error(f"argument {error}")
        if ckpt.step >= args.steps:
            t.error(f"argument --resume: the checkpoint is at step {ckpt.step}, --steps is {args.steps}: "
                    "nothing is left to train")
    warmup = args.steps // 10 if args.warmup is None else args.warmup
    if warmup > args.steps:
        t.error(f"argument --warmup: must be <= --steps={args.steps}, got {warmup}")
    config = TrainConfig(max_steps=args.steps, lr=args.lr, min_lr=args.lr / 10, warmup_steps=warmup,
                         eval_every=args.eval_every, eval_batches=None, seed=args.seed, device=device,
                         grad_accum_steps=args.grad_accum, checkpoint_dir=args.checkpoint_dir,
                         checkpoint_every=args.checkpoint_every, parallel=args.parallel)
    if env is None or env["rank"] == 0:
        n_params = sum(p.numel() for p in model.parameters())
        how = f"{world} processes ({args.parallel})" if world > 1 else "1 process"
        layers = f"{args.n_layers} layer{'s' if args.n_layers > 1 else ''}"
        print(f"GPT d_model={args.d_model}, {layers}, {n_params:,} parameters · "
              f"{sizes['train']:,} training stories, {sizes['valid']:,} held out · {how} on {device}", flush=True)
    train(model, train_data, config, eval_data=valid_data, resume_from=args.resume)
    sys.stdout.flush()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line `argv` (default sys.argv[1:]); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "train":
        return _train(args)
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover (argparse checks the choices)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
