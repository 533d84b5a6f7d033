"""The toy profile's multilingual BERT: a WordPiece tokenizer and masked-LM pretraining on the
synthetic monolingual corpora, reproducible from a recipe (seed, sizes, steps)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import BertForMaskedLM, PreTrainedTokenizerFast

from .batching import length_grouped_batches
from .data.synthetic import ToyCorpusSpec, cache_dir, pretraining_files
from .files import sha256_file
from .models import MODEL_LOAD_KW, SPECIAL_TOKENS, load_tokenizer, tiny_bert_config
from .precision import autocast, hardware_precision, normalize
from .training import make_optimizer, set_seed

ASSET_DIR = Path(__file__).parent / "assets" / "toy-mbert"


@dataclass(frozen=True)
class PretrainRecipe:
    """Everything that determines the toy BERT's weights."""

    seed: int = 0
    # fresh sentences: 6,000 steps x 128 sentences see each of the 770,000 at most once
    corpus: ToyCorpusSpec = ToyCorpusSpec(n_pretrain=110_000)
    layers: int = 12  # as mBERT, so that the paper's layer numbers read literally
    hidden: int = 128
    heads: int = 4
    intermediate: int = 512
    vocab_size: int = 3000
    steps: int = 6000
    batch_size: int = 128
    lr: float = 7e-4
    warmup: int = 300
    mask_prob: float = 0.15
    threads: int = 1
    length_bucket: int = 50  # batches per length-sorted bucket (see training.length_grouped_batches)

    def architecture(self) -> dict:
        """The BertConfig fields this recipe sets (see models.tiny_bert_config)."""
        return dict(num_hidden_layers=self.layers, hidden_size=self.hidden, num_attention_heads=self.heads,
                    intermediate_size=self.intermediate)

    def to_dict(self) -> dict:
        return asdict(self)


def train_tokenizer(files: list[Path], vocab_size: int) -> PreTrainedTokenizerFast:
    """A cased BERT WordPiece tokenizer trained on the given plain-text files."""
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False, clean_text=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                        special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    tok.train([str(f) for f in sorted(files)], trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=128, **SPECIAL_TOKENS)


def mask_tokens(ids: torch.Tensor, special: torch.Tensor, tok, prob: float, gen: torch.Generator):
    """BERT's masking: choose `prob` of the real tokens; 80% [MASK], 10% random, 10% unchanged."""
    labels = ids.clone()
    choose = (torch.rand(ids.shape, generator=gen) < prob) & ~special
    labels[~choose] = -100
    ids = ids.clone()
    r = torch.rand(ids.shape, generator=gen)
    ids[choose & (r < 0.8)] = tok.mask_token_id
    rand = choose & (r >= 0.8) & (r < 0.9)
    ids[rand] = torch.randint(5, len(tok), ids.shape, generator=gen)[rand]
    return ids, labels


def pretrain(recipe: PretrainRecipe, out_dir: Path, progress: bool = True, tokenizer=None,
             precision: str = "auto", snapshots: tuple[int, ...] = ()) -> Path:
    """Train the masked LM from the recipe (and the tokenizer, unless one is given); save both.

    The `tokenizers` WordPiece trainer breaks frequency ties in hash-map order, which changes from
    process to process: two trainings agree on about 95% of the vocabulary, not all of it. The
    shipped checkpoint therefore records its tokenizer's hash, and re-running the recipe with that
    tokenizer reproduces the weights bit for bit, on hardware with fast bf16 (the shipped weights
    were trained under bf16 autocast on a CPU with AVX-512 BF16).

    `precision="auto"` uses bf16 autocast where the CPU runs it fast, else fp32: a CPU without native
    bf16 emulates it hundreds of times slower ("bf16" or "fp32" force one). fp32 weights differ from the shipped ones (another
    precision), and the record says which precision made them.

    `snapshots`: steps after which the weights so far are also saved, in `out_dir/step-N` (for
    studying how transfer grows with pretraining; they do not change the training).
    """
    from tqdm.auto import tqdm

    torch.set_num_threads(recipe.threads)
    set_seed(recipe.seed)
    precision = normalize(precision)
    precision = hardware_precision("cpu") if precision == "auto" else precision
    files = pretraining_files(recipe.corpus)
    tok = tokenizer or train_tokenizer(list(files.values()), recipe.vocab_size)
    lines = [ln for f in files.values() for ln in f.read_text(encoding="utf-8").splitlines() if ln.strip()]
    enc = [e for e in tok(lines, add_special_tokens=True, truncation=True, max_length=128)["input_ids"]]
    model = BertForMaskedLM(tiny_bert_config(len(tok), **recipe.architecture()))
    opt = make_optimizer(model.parameters(), recipe.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / recipe.warmup, 0.5 * (1 + math.cos(math.pi * s / recipe.steps))))
    gen = torch.Generator().manual_seed(recipe.seed)
    special_ids = torch.tensor([tok.cls_token_id, tok.sep_token_id, tok.pad_token_id])
    step, losses = 0, []
    model.train()
    bar = tqdm(total=recipe.steps, desc="pretraining toy BERT", disable=not progress)
    while step < recipe.steps:
        for idx in length_grouped_batches([len(e) for e in enc], recipe.batch_size, gen, recipe.length_bucket):
            if step >= recipe.steps:
                break
            width = max(len(enc[i]) for i in idx)
            ids = torch.full((len(idx), width), tok.pad_token_id)
            for r, i in enumerate(idx):
                ids[r, :len(enc[i])] = torch.tensor(enc[i])
            attn = (ids != tok.pad_token_id).long()
            inp, labels = mask_tokens(ids, torch.isin(ids, special_ids), tok, recipe.mask_prob, gen)
            with autocast(precision, "cpu"):
                loss = model(input_ids=inp, attention_mask=attn, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step(), sched.step(), opt.zero_grad(set_to_none=True)
            losses.append(loss.item())
            step += 1
            bar.update(1)
            if step in snapshots:
                model.save_pretrained(out_dir / f"step-{step}")
                tok.save_pretrained(out_dir / f"step-{step}")
            if step % 100 == 0:
                bar.set_postfix(loss=f"{sum(losses[-100:]) / 100:.3f}")
    bar.close()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)  # safetensors; BertModel.from_pretrained reads the encoder from it
    tok.save_pretrained(out_dir)
    curve = [round(sum(losses[i:i + 100]) / len(losses[i:i + 100]), 4) for i in range(0, len(losses), 100)]
    record = {"recipe": recipe.to_dict(), "final_loss": round(sum(losses[-100:]) / len(losses[-100:]), 4),
              "loss_per_100_steps": curve,
              "sha256": sha256_file(out_dir / "model.safetensors"),
              "tokenizer_sha256": sha256_file(out_dir / "tokenizer.json"), "precision": precision}
    (out_dir / "recipe.json").write_text(json.dumps(record, indent=1))
    return out_dir


def verify(model_dir: Path, recipe: PretrainRecipe = PretrainRecipe()) -> bool:
    """True when the directory holds weights made by exactly this recipe, with their recorded hash."""
    meta = model_dir / "recipe.json"
    if not (meta.is_file() and (model_dir / "model.safetensors").is_file()):
        return False
    record = json.loads(meta.read_text())
    return record["recipe"] == json.loads(json.dumps(recipe.to_dict())) and \
        record["sha256"] == sha256_file(model_dir / "model.safetensors")


def shipped_tokenizer(recipe: PretrainRecipe = PretrainRecipe()):
    """The tokenizer shipped with the checkpoint, if it belongs to this recipe and is intact."""
    meta = ASSET_DIR / "recipe.json"
    if not meta.is_file():
        return None
    record = json.loads(meta.read_text())
    if record["recipe"] != json.loads(json.dumps(recipe.to_dict())) or \
            record.get("tokenizer_sha256") != sha256_file(ASSET_DIR / "tokenizer.json"):
        return None
    return load_tokenizer(ASSET_DIR)


REBUILD_COMMAND = "python -m xlt_utils.pretraining"


class CheckpointError(RuntimeError):
    """The toy BERT's checkpoint is missing or does not verify against its recipe and sha256."""


def _cache_target(recipe: PretrainRecipe) -> Path:
    key = hashlib.sha256(json.dumps(recipe.to_dict(), sort_keys=True).encode()).hexdigest()[:12]
    return cache_dir() / "toy-mbert" / key


def toy_model_dir(recipe: PretrainRecipe = PretrainRecipe()) -> Path:
    """The toy BERT's directory: the committed checkpoint, else one rebuilt into the cache.

    Never pretrains silently: when neither verifies (weights made by exactly this recipe, with their
    recorded sha256), it raises `CheckpointError` naming the command that rebuilds the checkpoint.
    """
    if verify(ASSET_DIR, recipe):
        return ASSET_DIR
    target = _cache_target(recipe)
    if verify(target, recipe):
        return target
    raise CheckpointError(
        f"the toy BERT checkpoint in {ASSET_DIR.relative_to(ASSET_DIR.parents[2])} does not match its recipe "
        f"and sha256 (modified, truncated or from another recipe), and no verified rebuild is in the cache. "
        f"Restore the file (git checkout xlt_utils/assets/toy-mbert) or rebuild it with `{REBUILD_COMMAND}` "
        f"(about {recipe.steps // 150}-{recipe.steps // 100} minutes on 2 CPU cores; the rebuild lands in the cache).")


def rebuild(recipe: PretrainRecipe = PretrainRecipe(), out_dir: Path | None = None, progress: bool = True) -> Path:
    """Pretrain the recipe into `out_dir` (default: the cache folder `toy_model_dir` looks in),
    atomically, with the shipped tokenizer when it belongs to this recipe."""
    target = Path(out_dir) if out_dir else _cache_target(recipe)
    target.parent.mkdir(parents=True, exist_ok=True)
    # a new folder with a random name (mkdir: never a planted folder or symlink); the old name
    # `<target>.tmp<pid>` could be planted beforehand
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        pretrain(recipe, tmp, progress=progress, tokenizer=shipped_tokenizer(recipe))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return target


def load_mlm(path: Path | None = None):
    """The toy BERT with its masked-LM head, and its tokenizer (for fill-in-the-blank demos)."""
    path = Path(path or toy_model_dir())
    return BertForMaskedLM.from_pretrained(path, **MODEL_LOAD_KW), load_tokenizer(path)


@torch.inference_mode()
def masked_word_accuracy(sentences: list[list[str]], seed: int = 0, path: Path | None = None) -> float:
    """Share of sentences whose one randomly masked subword is the MLM's top prediction."""
    model, tok = load_mlm(path)
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    enc = tok([list(s) for s in sentences], is_split_into_words=True, padding=True, return_tensors="pt")
    ids, attn = enc["input_ids"], enc["attention_mask"]
    lengths = attn.sum(1)
    pos = 1 + (torch.rand(len(ids), generator=gen) * (lengths - 2)).long()  # never [CLS]/[SEP]
    rows = torch.arange(len(ids))
    gold = ids[rows, pos].clone()
    ids = ids.clone()
    ids[rows, pos] = tok.mask_token_id
    logits = model(input_ids=ids, attention_mask=attn).logits[rows, pos]
    return (logits.argmax(-1) == gold).float().mean().item()


def main(argv=None) -> int:
    """`python -m xlt_utils.pretraining [--out DIR]`: rebuild the toy BERT from its recipe."""
    import argparse

    ap = argparse.ArgumentParser(description="Pretrain the toy BERT from the shipped recipe.")
    ap.add_argument("--out", type=Path, default=None,
                    help="where to write it (default: the cache folder that load_encoder looks in)")
    args = ap.parse_args(argv)
    recipe = PretrainRecipe()
    print(f"pretraining the toy BERT ({recipe.layers} layers, {recipe.steps} steps); about "
          f"{recipe.steps // 150}-{recipe.steps // 100} minutes on 2 CPU cores", flush=True)
    out = rebuild(recipe, args.out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
