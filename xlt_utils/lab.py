"""Chapter 5's lab: what makes a BERT multilingual, measured in the toy world.

Each *variant* pretrains a toy BERT that differs from the lab's control in ONE property, chosen to
test a published finding (K et al., 2020; Dufter & Schütze, 2020; Conneau et al., 2020; Deshpande
et al., 2022), then measures it with the calibration benchmark of the toy world: POS, NER and
parsing fine-tuned on the source (3 seeds) and evaluated zero-shot, from the variant's encoder and
from a random encoder of the same shape (the gain is what pretraining brings to transfer), and
en->X retrieval of parallel test sentences at every layer.

    python -m xlt_utils.lab --list              # the variants, their hypotheses and findings
    python -m xlt_utils.lab control             # pretrain and measure one (resumable; ~1 h at 1 thread)
    python -m xlt_utils.lab control --smoke     # a tiny recipe, every code path, seconds (no claim)

The shipped toy world is never changed: every variant pretrains into the cache
(`XLT_CACHE_DIR/lab/<name>`), with the shipped tokenizer (so that segmentation is the same in every
variant), and only its results are shipped (`xlt_utils/assets/lab/<name>.json`: recipe, sha256 of
the checkpoint, wall time, measurements). The variants' properties are applied here, around the
package's code: a data transform (inverted word order), a remapping of input ids and position ids
in front of the embeddings (disjoint vocabularies, language-specific positions), or the recipe's
architecture (width).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import settings

settings.quiet_tokenizer_threads()

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from transformers import BertForMaskedLM, BertModel  # noqa: E402

# Everything this module takes from the package, in one place.
from .ablation import RANDOM_INIT, apply_ablation  # noqa: E402
from .batching import length_grouped_batches  # noqa: E402
from .data.download import cache_dir, sha256_file  # noqa: E402
from .data.records import Sentence, label_set  # noqa: E402
from .data.synthetic import TOY_LANGUAGES, ToyCorpusSpec, load_toy, pretraining_files  # noqa: E402
from .evaluation import mean_pooled_states, zero_shot_eval  # noqa: E402
from .models import MODEL_LOAD_KW, XltModel, load_tokenizer, tiny_bert_config  # noqa: E402
from .profiles import get_profile  # noqa: E402
from .training import TrainConfig, fine_tune, make_optimizer, set_seed  # noqa: E402

PACKAGE_DIR = Path(sys.modules[__package__].__file__).parent
RESULTS_DIR = PACKAGE_DIR / "assets" / "lab"
SHIPPED_DIR = PACKAGE_DIR / "assets" / "toy-mbert"  # the shipped toy BERT (its tokenizer)
TASKS = ("pos", "ner", "parse")
SEEDS = (1, 2, 3)
N_RETRIEVAL = 300
N_SPECIAL = 5  # [PAD] [UNK] [CLS] [SEP] [MASK]: ids 0-4 of the shipped tokenizer, shared by every variant
LANGUAGES = tuple(TOY_LANGUAGES)  # the order that numbers the languages (0 = en, the source)
SOURCE = "en"
MAX_POSITIONS = 128  # the shipped model's position embeddings (and its longest input)

@dataclass(frozen=True)
class PretrainRecipe:
    """What determines a lab model's weights: the fields and defaults of the shipped recipe
    (`pretraining.PretrainRecipe`, kept equal by a test), so that this module does not depend on
    that module's internals."""

    seed: int = 0
    corpus: ToyCorpusSpec = ToyCorpusSpec(n_pretrain=110_000)
    layers: int = 12
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
    length_bucket: int = 50

    def architecture(self) -> dict:
        return dict(num_hidden_layers=self.layers, hidden_size=self.hidden, num_attention_heads=self.heads,
                    intermediate_size=self.intermediate)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def mask_tokens(ids: torch.Tensor, special: torch.Tensor, tok, prob: float, gen: torch.Generator):
    """BERT's masking, as the shipped pretraining does it: `prob` of the real tokens; 80% [MASK],
    10% a random subword, 10% unchanged (a test checks it against `pretraining.mask_tokens`)."""
    labels = ids.clone()
    choose = (torch.rand(ids.shape, generator=gen) < prob) & ~special
    labels[~choose] = -100
    ids = ids.clone()
    r = torch.rand(ids.shape, generator=gen)
    ids[choose & (r < 0.8)] = tok.mask_token_id
    rand = choose & (r >= 0.8) & (r < 0.9)
    ids[rand] = torch.randint(5, len(tok), ids.shape, generator=gen)[rand]
    return ids, labels


#: The lab's control: the shipped recipe (fresh sentences, shipped tokenizer, 128 wide, batch 128)
#: at 6 layers and 3,000 steps, because the shipped 12-layer, 6,000-step recipe takes hours per run
#: in fp32 on a CPU without native bf16, and the lab runs five. Every variant changes one property
#: of THIS recipe, and is compared with it (never with the shipped world, which differs in depth and
#: length). The design study (benchmarks/README.md) found 6-layer models transfer as well as the
#: shipped one once past the masked-LM plateau (POS target mean 71.7 after 3,000 steps).
LAB_RECIPE = dataclasses.replace(PretrainRecipe(), layers=6, steps=3000, warmup=150)
#: Every code path in seconds (tests and `--smoke`): no claim.
SMOKE_RECIPE = dataclasses.replace(PretrainRecipe(), corpus=ToyCorpusSpec(n_pretrain=12_000), layers=2,
                                   hidden=32, heads=2, intermediate=64, steps=12, warmup=2, batch_size=16)


@dataclass(frozen=True)
class Variant:
    """One pretraining variant: the property it changes, why, and what the literature found."""

    name: str
    changes: str  # the one property it changes from the lab's control
    hypothesis: str  # what we expect here, written before it ran
    paper: str  # where the finding is published (paper, table or section)
    finding: str  # the published finding, in one sentence
    expect: str  # the measurable prediction: "lower" (less multilingual than the control), "kept"
    vocab: str = "shared"  # "shared" (one WordPiece vocabulary) or "disjoint" (one per language)
    positions: str = "shared"  # "shared" or "per-language" position embeddings
    inverted: tuple[str, ...] = ()  # languages whose word order is inverted (pretraining and test data)
    recipe: PretrainRecipe = LAB_RECIPE

    def lab_fields(self) -> dict:
        return {"vocab": self.vocab, "positions": self.positions, "inverted": list(self.inverted)}

    def with_recipe(self, recipe: PretrainRecipe) -> Variant:
        """The same variant with another base recipe (its own change applied on top, e.g. width)."""
        if self.recipe.hidden != LAB_RECIPE.hidden:  # the width variant keeps its ratio to the control
            recipe = dataclasses.replace(recipe, hidden=recipe.hidden * 2, intermediate=recipe.intermediate * 2)
        return dataclasses.replace(self, recipe=recipe)


_DUFTER = "Dufter & Schütze 2020 (EMNLP), Identifying Elements Essential for BERT's Multilinguality"
_K = "K et al. 2020 (ICLR), Cross-Lingual Ability of Multilingual BERT: An Empirical Study"
_CONNEAU = "Conneau et al. 2020 (ACL), Emerging Cross-lingual Structure in Pretrained Language Models"
_DESHPANDE = "Deshpande et al. 2022 (NAACL), When is BERT Multilingual?"
VARIANTS: dict[str, Variant] = {v.name: v for v in [
    Variant("control", "nothing: the lab's recipe (6 layers x 128, 3,000 steps, shared vocabulary and positions)",
            "Transfers well above a random encoder, as the shipped world does; every variant is read against it.",
            _K + ", Sec. 1-2 (bilingual BERTs trained on monolingual corpora transfer zero-shot)",
            "A BERT pretrained on unrelated monolingual corpora of several languages transfers zero-shot "
            "between them.",
            "kept"),
    Variant("disjoint-vocab",
            "no shared word pieces: each language gets its own copy of every subword id (the special tokens "
            "stay shared); the segmentation is the shipped tokenizer's",
            "Transfer and retrieval stay well above a random encoder, somewhat below the control: shared "
            "parameters and structure carry most of the transfer, the shared anchors (names, digits, "
            "punctuation, cognates) only part of it.",
            _K + ", Sec. 3.1 (word-piece overlap: Fake-English, whose characters are shifted so that no "
            "word piece is shared); " + _CONNEAU + ", Sec. 4 (no shared vocabulary, 'anchor points')",
            "Word-piece overlap is not needed: without any shared subword, cross-lingual transfer drops only "
            "a little (K et al.); shared parameters matter more than anchors (Conneau et al.).",
            "kept", vocab="disjoint"),
    Variant("language-positions",
            "language-specific position embeddings (each language its own 128 positions); vocabulary and "
            "special tokens shared",
            "Less multilingual than the control: retrieval falls and the transfer gain falls, because the "
            "languages no longer share a positional frame.",
            _DUFTER + ", Sec. 2.3 and Table 1 (modification 'lang-pos', model 1; Fig. 1)",
            "Shared position embeddings are one of the architectural elements needed for multilinguality: "
            "with language-specific positions, alignment and retrieval between the languages drop.",
            "lower", positions="per-language"),
    Variant("inverted-fr",
            "toy French's word order inverted (every sentence read right to left, in pretraining and in the "
            "test data); the other languages unchanged",
            "Transfer to French falls (parsing most), and French retrieval falls, because its structure no "
            "longer matches English; the other targets are unaffected.",
            _DUFTER + ", Sec. 2.4 and Table 1 (modification 'inv-order', model 3); " + _K
            + ", Sec. 3.2 (word order)",
            "Inverting the word order of one language harms its multilinguality: similar word order is one of "
            "the linguistic elements BERT needs (Dufter & Schütze); structural similarity matters (K et al.).",
            "lower", inverted=("fr",)),
    Variant("wider",
            "an over-parameterised model: twice as wide (256 hidden, FFN 1,024, 4 heads); depth, data and "
            "steps unchanged",
            "Less multilingual than the control (lower retrieval, a smaller transfer gain): with more capacity "
            "the model can keep the languages apart instead of sharing structure.",
            _DUFTER + ", Sec. 2.3 and Table 1 ('overparam': BERT-base size, model 15; Fig. 1)",
            "Under-parameterisation is one of the elements of multilinguality: a larger model trained on the "
            "same data is less multilingual.",
            "lower", recipe=dataclasses.replace(LAB_RECIPE, hidden=256, intermediate=1024)),
    Variant("inverted-ru",
            "toy Russian's word order inverted (as inverted-fr, for a language in another script that shares "
            "few word pieces with English)",
            "Transfer to Russian falls, by more than inverting French costs French, because Russian shares "
            "almost no word pieces with English (another script, 30% of names kept).",
            _DESHPANDE + ", Sec. 4-5 (transformations of script and word order)",
            "The absence of subword overlap significantly hurts zero-shot transfer when the languages differ "
            "in word order.",
            "lower", inverted=("ru",)),
]}


def get_variant(name: str) -> Variant:
    """The named variant; an unknown name is an error listing the valid ones."""
    if name not in VARIANTS:
        raise ValueError(f"unknown lab variant {name!r}; valid variants: {', '.join(VARIANTS)}")
    return VARIANTS[name]


# --------------------------------------------------------------------------- the variants' changes

def invert_sentence(s: Sentence) -> Sentence:
    """The sentence read right to left: words and every label reversed, dependency heads renumbered,
    and NER spans re-tagged (the first word of a reversed span gets its B- tag)."""
    n = len(s.words)
    rev = lambda xs: None if xs is None else list(reversed(xs))  # noqa: E731
    heads = None if s.heads is None else [0 if h == 0 else n + 1 - h for h in reversed(s.heads)]
    ner = None
    if s.ner is not None:
        types = [None if t == "O" else t[2:] for t in reversed(s.ner)]
        begins = [t.startswith("B-") for t in s.ner]  # a span ends (in reversed order) where it began
        ner, inside = [], False
        for i, t in enumerate(types):
            if t is None:
                ner.append("O")
                inside = False
                continue
            ner.append(("I-" if inside else "B-") + t)
            inside = not begins[n - 1 - i]  # the word that began the span closes it
    return dataclasses.replace(s, words=rev(s.words), upos=rev(s.upos), heads=heads, deprels=rev(s.deprels),
                               ner=ner, text=None)


def lab_split(variant: Variant, lang: str, split: str, task: str, limit: int | None = None) -> list[Sentence]:
    """A split of a toy language as the variant sees it (inverted where the variant says so)."""
    sents = load_toy(lang, split, task)
    sents = sents[:limit] if limit is not None else sents
    return [invert_sentence(s) for s in sents] if lang in variant.inverted else sents


class LanguageInputs:
    """Maps the shipped tokenizer's ids and positions to the variant's: with a disjoint vocabulary,
    subword id i >= 5 of language k becomes i + k * (V - 5), so no two languages share a subword
    (the special tokens stay shared); with per-language positions, position p of language k becomes
    p + k * 128. Used directly in pretraining (a language per row), and as a pre-hook on the
    embeddings for fine-tuning and evaluation (`language(code)` says whose text goes in)."""

    def __init__(self, variant: Variant, base_vocab: int):
        self.variant, self.base_vocab = variant, base_vocab
        self.current: int | None = None

    @property
    def identity(self) -> bool:
        return self.variant.vocab == "shared" and self.variant.positions == "shared"

    def vocab_size(self) -> int:
        n = self.base_vocab - N_SPECIAL
        return self.base_vocab if self.variant.vocab == "shared" else N_SPECIAL + len(LANGUAGES) * n

    def max_positions(self) -> int:
        return MAX_POSITIONS * (len(LANGUAGES) if self.variant.positions == "per-language" else 1)

    def map(self, ids: torch.Tensor, lang: torch.Tensor | int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(ids, position_ids) for a batch; `lang` is one language index or one per row."""
        lang = torch.as_tensor(lang, device=ids.device).reshape(-1, 1)
        if self.variant.vocab == "disjoint":
            ids = torch.where(ids >= N_SPECIAL, ids + lang * (self.base_vocab - N_SPECIAL), ids)
        pos = None
        if self.variant.positions == "per-language":
            pos = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0) + lang * MAX_POSITIONS
            pos = pos.expand(ids.shape[0], -1)
        return ids, pos

    def attach(self, encoder: BertModel) -> BertModel:
        if not self.identity:
            encoder.embeddings.register_forward_pre_hook(self._hook, with_kwargs=True)
        return encoder

    def _hook(self, module, args, kwargs):
        if self.current is None:
            raise RuntimeError("a lab variant's encoder runs inside `with inputs.language(code):` (whose text it reads)")
        ids = kwargs.get("input_ids")
        ids, pos = self.map(ids, self.current)
        kwargs["input_ids"] = ids
        if pos is not None:
            kwargs["position_ids"] = pos
        return args, kwargs

    @contextlib.contextmanager
    def language(self, code: str):
        old, self.current = self.current, LANGUAGES.index(code)
        try:
            yield
        finally:
            self.current = old


# --------------------------------------------------------------------------------------- pretraining

def _atomic_torch_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".part")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _corpus(variant: Variant, tok) -> tuple[list[list[int]], list[int]]:
    """The variant's pretraining corpus, tokenised with the shipped tokenizer: (ids, language index)."""
    lines, langs = [], []
    for lang, path in pretraining_files(variant.recipe.corpus).items():
        for ln in path.read_text(encoding="utf-8").splitlines():
            if ln.strip():
                lines.append(" ".join(reversed(ln.split())) if lang in variant.inverted else ln)
                langs.append(LANGUAGES.index(lang))
    enc = tok(lines, add_special_tokens=True, truncation=True, max_length=MAX_POSITIONS)["input_ids"]
    return enc, langs


def model_dir(variant: Variant, root: Path | None = None) -> Path:
    """Where the variant's checkpoint lives: the cache (never the package), one folder per variant
    and recipe (the lab's own recipe is the plain name)."""
    root = Path(root or cache_dir() / "lab")
    if variant == VARIANTS.get(variant.name):
        return root / variant.name
    key = hashlib.sha256(json.dumps(variant.recipe.to_dict(), sort_keys=True).encode()).hexdigest()[:10]
    return root / f"{variant.name}-{key}"


def pretrain_variant(variant: Variant, out_dir: Path, progress: bool = False, checkpoint_every: int = 200,
                     max_steps: int | None = None, log=print) -> dict:
    """Masked-LM pretraining of the variant, as `pretraining.pretrain` does for the shipped recipe
    (same masking, optimiser, schedule and batching), in fp32 with 1 thread, with the variant's
    change applied; the loss is computed on the masked positions only (the same loss, less work).

    Resumable: the state is saved every `checkpoint_every` steps in `out_dir/resume.pt`, and a
    restarted call continues from it. `max_steps` stops early (for timing), without saving weights.
    Returns the record written to `out_dir/lab_record.json`."""
    from tqdm.auto import tqdm

    recipe = variant.recipe
    record_path = out_dir / "lab_record.json"
    if record_path.is_file() and (out_dir / "model.safetensors").is_file():
        record = json.loads(record_path.read_text())
        if record["recipe"] == json.loads(json.dumps(recipe.to_dict())) and record["lab"] == variant.lab_fields() \
                and record["sha256"] == sha256_file(out_dir / "model.safetensors"):
            return record
    torch.set_num_threads(1)
    set_seed(recipe.seed)
    tok = load_tokenizer(SHIPPED_DIR)
    inputs = LanguageInputs(variant, len(tok))
    t_start = time.perf_counter()
    enc, langs = _corpus(variant, tok)
    log(f"{variant.name}: {len(enc)} pretraining sentences tokenised in {time.perf_counter() - t_start:.0f} s")
    model = BertForMaskedLM(tiny_bert_config(inputs.vocab_size(), max_position_embeddings=inputs.max_positions(),
                                             **recipe.architecture()))
    opt = make_optimizer(model.parameters(), recipe.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / recipe.warmup, 0.5 * (1 + math.cos(math.pi * s / recipe.steps))))
    gen = torch.Generator().manual_seed(recipe.seed)
    schedule: list[list[int]] = []
    while len(schedule) < recipe.steps:  # the batches of every epoch needed, drawn first
        schedule += length_grouped_batches([len(e) for e in enc], recipe.batch_size, gen, recipe.length_bucket)
    special_ids = torch.tensor([tok.cls_token_id, tok.sep_token_id, tok.pad_token_id])
    step, losses, elapsed, cpu = 0, [], 0.0, 0.0
    resume = out_dir / "resume.pt"
    if resume.is_file():
        state = torch.load(resume, weights_only=False)
        if state["recipe"] == recipe.to_dict() and state["lab"] == variant.lab_fields():
            model.load_state_dict(state["model"]), opt.load_state_dict(state["opt"])
            sched.load_state_dict(state["sched"]), gen.set_state(state["gen"])
            if "torch_rng" in state:  # dropout (states saved before it was recorded lack it)
                torch.set_rng_state(state["torch_rng"])
            step, losses, elapsed, cpu = state["step"], state["losses"], state["elapsed"], state.get("cpu")
            log(f"{variant.name}: resumed at step {step}")
    out_dir.mkdir(parents=True, exist_ok=True)
    model.train()
    t0, c0 = time.perf_counter() - elapsed, time.process_time() - (cpu or 0.0)
    cpu_known = cpu is not None  # a state saved before CPU time was recorded: unknown
    stop = min(recipe.steps, max_steps or recipe.steps)
    bar = tqdm(total=recipe.steps, initial=step, desc=f"pretraining {variant.name}", disable=not progress)
    while step < stop:
        idx = schedule[step]
        width = max(len(enc[i]) for i in idx)
        ids = torch.full((len(idx), width), tok.pad_token_id)
        for r, i in enumerate(idx):
            ids[r, :len(enc[i])] = torch.tensor(enc[i])
        attn = (ids != tok.pad_token_id).long()
        inp, labels = mask_tokens(ids, torch.isin(ids, special_ids), tok, recipe.mask_prob, gen)
        lang = torch.tensor([langs[i] for i in idx])
        inp, pos = inputs.map(inp, lang)
        labels = torch.where(labels >= 0, inputs.map(labels.clamp(min=0), lang)[0], labels)
        hidden = model.bert(input_ids=inp, attention_mask=attn, position_ids=pos).last_hidden_state
        chosen = labels != -100
        loss = F.cross_entropy(model.cls(hidden[chosen]), labels[chosen])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(), sched.step(), opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        step += 1
        bar.update(1)
        if step % 100 == 0:
            log(f"{variant.name}: step {step}/{recipe.steps}, loss {statistics.fmean(losses[-100:]):.3f}, "
                f"{time.perf_counter() - t0:.0f} s")
        if step % checkpoint_every == 0 and step < recipe.steps:
            _atomic_torch_save({"recipe": recipe.to_dict(), "lab": variant.lab_fields(), "model": model.state_dict(),
                                "opt": opt.state_dict(), "sched": sched.state_dict(), "gen": gen.get_state(),
                                "torch_rng": torch.get_rng_state(),
                                "step": step, "losses": losses, "elapsed": time.perf_counter() - t0,
                                "cpu": time.process_time() - c0 if cpu_known else None}, resume)
    bar.close()
    seconds = time.perf_counter() - t0
    if step < recipe.steps:  # stopped early (timing): nothing saved
        return {"steps": step, "seconds": seconds, "loss": losses[-1] if losses else None}
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    curve = [round(statistics.fmean(losses[i:i + 100]), 4) for i in range(0, len(losses), 100)]
    record = {"variant": variant.name, "recipe": recipe.to_dict(), "lab": variant.lab_fields(),
              "final_loss": round(statistics.fmean(losses[-100:]), 4), "loss_per_100_steps": curve,
              "sha256": sha256_file(out_dir / "model.safetensors"),
              "tokenizer_sha256": sha256_file(out_dir / "tokenizer.json"),
              "pretrain_s": round(seconds, 1), "pretrain_cpu_s": round(time.process_time() - c0, 1) if cpu_known else None,
              "threads": 1, "precision": "fp32",
              "n_parameters": sum(p.numel() for p in model.bert.parameters())}
    record_path.write_text(json.dumps(record, indent=1))
    resume.unlink(missing_ok=True)
    return record


# ---------------------------------------------------------------------------------------- measuring

def load_variant_encoder(variant: Variant, path: Path) -> tuple[BertModel, object, LanguageInputs]:
    """The variant's encoder (its change attached), the shipped tokenizer, and the language switch."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        encoder = BertModel.from_pretrained(path, add_pooling_layer=False, **MODEL_LOAD_KW)
    finally:
        hf_logging.set_verbosity(level)
    tok = load_tokenizer(path)
    inputs = LanguageInputs(variant, len(tok))
    return inputs.attach(encoder), tok, inputs


def _fp32(fn) -> dict:
    """The keyword that asks `fn` for fp32 (the package names it `precision`; older versions `bf16`)."""
    import inspect

    return {"precision" if "precision" in inspect.signature(fn).parameters else "bf16": "fp32"}


def transfer_run(variant: Variant, path: Path, task: str, seed: int, random_encoder: bool,
                 smoke: bool = False) -> dict[str, float]:
    """One calibration run, as `experiments.run_experiment` does it for the toy profile (same
    recipe, data, seeding, random encoder), with the variant's encoder: {language: main metric}."""
    prof = get_profile("toy")
    n_train, n_eval = (40, 20) if smoke else (prof.n_train, prof.n_eval)
    set_seed(seed)
    encoder, tok, inputs = load_variant_encoder(variant, path)
    model = XltModel(encoder, task, len(label_set(task)))
    if random_encoder:
        apply_ablation(model, RANDOM_INIT, seed=seed)
    cfg = TrainConfig(epochs=1 if smoke else prof.epochs, batch_size=prof.batch_size, lr=prof.lr,
                      head_lr=prof.head_lr, warmup=prof.warmup, seed=seed, max_length=prof.max_length, precision="fp32")
    train = lab_split(variant, prof.source, prof.train_split, task, n_train)
    with inputs.language(prof.source):
        fine_tune(model, tok, train, cfg, run_dir=None, progress=False)
    langs = (prof.source,) + tuple(prof.targets)
    data = {lang: lab_split(variant, lang, "test", task, n_eval) for lang in langs}
    groups = [langs] if inputs.identity else [(lang,) for lang in langs]  # one pass, unless ids depend on it
    metric = {"pos": "accuracy", "ner": "f1", "parse": "las"}[task]
    out = {}
    for group in groups:
        with inputs.language(group[0]):
            table = zero_shot_eval(model, tok, {lang: data[lang] for lang in group}, task, precision="fp32")
        for row in table.to_dict(orient="records"):
            if row["metric"] == metric:
                out[row["language"]] = row["value"]
    return out


@torch.inference_mode()
def retrieval(variant: Variant, path: Path, n: int = N_RETRIEVAL) -> dict[str, list[float]]:
    """en->X top-1 retrieval (%) of parallel test sentences at every layer (0 = embeddings), by the
    cosine of mean-pooled states, as the calibration benchmark measures it."""
    encoder, tok, inputs = load_variant_encoder(variant, path)
    encoder.eval()
    states = {}
    for lang in LANGUAGES:
        with inputs.language(lang):
            states[lang] = mean_pooled_states(encoder, tok, [s.words for s in lab_split(variant, lang, "test", "pos", n)])
    out = {}
    for lang in LANGUAGES:
        if lang == SOURCE:
            continue
        accs = []
        for layer in range(states[SOURCE].shape[0]):
            a = F.normalize(states[SOURCE][layer], dim=-1)
            b = F.normalize(states[lang][layer], dim=-1)
            accs.append(round(100 * (a @ b.T).argmax(1).eq(torch.arange(len(a))).float().mean().item(), 2))
        out[lang] = accs
    return out


def results_path(name: str, root: Path | None = None) -> Path:
    """The results file of a variant's lab recipe (default: the shipped ones)."""
    return Path(root or RESULTS_DIR) / f"{name}.json"


def run_variant(name: str, smoke: bool = False, seeds=SEEDS, tasks=TASKS, out: Path | None = None,
                log=print, recipe: PretrainRecipe | None = None, models: Path | None = None) -> dict:
    """Pretrain (or reuse the cached checkpoint of) a variant, measure it, and write its results.

    Measurements are written after every run into `out` (default: the shipped results,
    `xlt_utils/assets/lab/<name>.json`, for the lab's own recipe; the cache for any other), so a
    restarted command skips what is done; the checkpoint goes under `models` (default the cache). `smoke`: the tiny recipe, 1 seed, POS only, 40
    training and 20 test sentences (every code path, no claim). `recipe`: another base recipe (the
    notebook's small end-to-end run), with the variant's change on top."""
    variant = get_variant(name)
    if smoke:
        variant, seeds, tasks = variant.with_recipe(SMOKE_RECIPE), (1,), ("pos",)
    elif recipe is not None:
        variant = variant.with_recipe(recipe)
    torch.set_num_threads(1)
    path = model_dir(variant, models)
    out = Path(out or (results_path(name) if path.name == name else path / "results.json"))
    record = pretrain_variant(variant, path, log=log)
    res = json.loads(out.read_text()) if out.is_file() else {}
    if res.get("sha256") != record["sha256"]:  # measurements of other weights are not reused
        res = {}
    res.update({
        "variant": variant.name, "changes": variant.changes, "hypothesis": variant.hypothesis,
        "paper": variant.paper, "finding": variant.finding, "expect": variant.expect,
        "recipe": record["recipe"], "lab": record["lab"], "sha256": record["sha256"],
        "tokenizer_sha256": record["tokenizer_sha256"], "final_loss": record["final_loss"],
        "loss_per_100_steps": record["loss_per_100_steps"], "pretrain_s": record["pretrain_s"],
        "pretrain_cpu_s": record.get("pretrain_cpu_s"),
        "n_parameters": record["n_parameters"], "threads": 1, "precision": "fp32", "smoke": smoke,
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "cpu": platform.machine()},
    })
    res.setdefault("transfer", {})
    out.parent.mkdir(parents=True, exist_ok=True)

    def save():
        res["seeds_done"] = {task: {enc: sorted(int(s) for s in res["transfer"].get(task, {}).get(enc, {}))
                                    for enc in ("pretrained", "random")} for task in tasks}
        res["complete"] = all(len(v) == len(seeds) for t in res["seeds_done"].values() for v in t.values()) \
            and "retrieval" in res
        out.write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")

    if "retrieval" not in res:
        t = time.perf_counter()
        res["retrieval"] = {"n": 20 if smoke else N_RETRIEVAL, "per_layer": retrieval(variant, path, 20 if smoke else N_RETRIEVAL)}
        log(f"{variant.name}: retrieval measured in {time.perf_counter() - t:.0f} s")
        save()
    for seed in seeds:
        for task in tasks:
            for enc in ("pretrained", "random"):
                done = res["transfer"].setdefault(task, {}).setdefault(enc, {})
                if str(seed) in done:
                    continue
                t = time.perf_counter()
                done[str(seed)] = transfer_run(variant, path, task, seed, enc == "random", smoke)
                log(f"{variant.name}: {task} seed {seed} {enc} in {time.perf_counter() - t:.0f} s: "
                    + ", ".join(f"{k} {v:.1f}" for k, v in done[str(seed)].items()))
                save()
    save()
    return json.loads(out.read_text())  # as stored (JSON types)


# ------------------------------------------------------------------------------------------ reading

def _mean_std(values) -> tuple[float, float]:
    values = list(values)
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def gains(res: dict, task: str, languages=None) -> list[float]:
    """Per seed run for both encoders: the mean over `languages` (default the targets) of the
    zero-shot score minus the random encoder's, one value per seed."""
    langs = languages or [c for c in LANGUAGES if c != SOURCE]
    pre, rnd = res["transfer"][task].get("pretrained", {}), res["transfer"][task].get("random", {})
    return [statistics.fmean(pre[s][c] - rnd[s][c] for c in langs) for s in sorted(set(pre) & set(rnd))]


def summary(res: dict, languages=None) -> dict:
    """{task: (mean gain, std, seeds)} and the retrieval summary (best layer, mean over targets)."""
    out = {}
    for task in TASKS:
        if task in res.get("transfer", {}):
            g = gains(res, task, languages)
            if g:
                out[task] = (*_mean_std(g), len(g))
    langs = languages or [c for c in LANGUAGES if c != SOURCE]
    per_layer = res["retrieval"]["per_layer"]
    curve = [statistics.fmean(per_layer[c][layer] for c in langs) for layer in range(len(per_layer[langs[0]]))]
    out["retrieval_curve"] = curve
    out["retrieval_best"] = max(curve)
    return out


def load_results(root: Path | None = None) -> dict[str, dict]:
    """The shipped (or given folder's) results of every variant that has them."""
    root = Path(root or RESULTS_DIR)
    return {n: json.loads(p.read_text()) for n in VARIANTS if (p := results_path(n, root=root)).is_file()}


#: How a variant's measurement becomes a verdict, fixed before any variant ran.
VERDICT_RULE = (
    "d is the variant's transfer gain minus the control's (the mean over POS, NER and parsing of the "
    "gain over a random encoder, each averaged over the targets, or over the inverted language for an "
    "inversion variant), s = sqrt(std_variant^2 + std_control^2) its spread over fine-tuning seeds, and "
    "r the change of the best-layer en->X retrieval (mean over the same languages), in points. "
    "A finding that the property makes the model less multilingual ('lower') reproduces when "
    "d <= -2s and r <= -2, does not reproduce when d >= 0 and r >= 0, and is unclear otherwise. "
    "A finding that transfer is kept ('kept') reproduces when the variant's gain is above twice its "
    "own std and at least half the control's, does not reproduce when it is within twice its std of 0, "
    "and is unclear otherwise.")



def _task_means(res: dict, languages) -> list[float]:
    """Per seed: the mean over the three tasks of the gain (mean over `languages`)."""
    per_task = [gains(res, t, languages) for t in TASKS if t in res.get("transfer", {})]
    n = min(len(g) for g in per_task) if per_task else 0
    return [statistics.fmean(g[i] for g in per_task) for i in range(n)]


def verdict(res: dict, control: dict) -> dict:
    """The variant's verdict against the control, by `VERDICT_RULE`."""
    langs = list(res["lab"]["inverted"]) or None
    v, c = _task_means(res, langs), _task_means(control, langs)
    if not v or not c:
        return {"verdict": "pending", "why": "not measured yet"}
    (mv, sv), (mc, sc) = _mean_std(v), _mean_std(c)
    d, s = mv - mc, math.hypot(sv, sc)
    r = summary(res, langs)["retrieval_best"] - summary(control, langs)["retrieval_best"]
    nums = {"gain": mv, "gain_std": sv, "control_gain": mc, "control_std": sc, "d": d, "s": s,
            "retrieval_change": r, "seeds": len(v)}
    if res["expect"] == "lower":
        if d <= -2 * s and r <= -2:
            word = "reproduces"
        elif d >= 0 and r >= 0:
            word = "does not reproduce"
        else:
            word = "unclear"
    else:
        if mv > 2 * sv and mv >= 0.5 * mc:
            word = "reproduces"
        elif mv <= 2 * sv:
            word = "does not reproduce"
        else:
            word = "unclear"
    return {"verdict": word, **nums}


# ------------------------------------------------------------------------------- chapter 5's tables

def _pm(mean_std_n) -> str:
    mean, std, n = mean_std_n
    return f"{mean:+.1f} ± {std:.1f}" + ("" if n == len(SEEDS) else f" ({n} seed{'s' if n > 1 else ''})")


def load_shipped(root: Path | None = None) -> dict:
    """The shipped toy world measured as the variants are (`shipped_reference`)."""
    return json.loads((Path(root or RESULTS_DIR) / "shipped.json").read_text())


def variants_table():
    """What each variant changes, and the finding it tests: one row per variant."""
    import pandas as pd

    return pd.DataFrame([{"variant": v.name, "changes": v.changes, "prediction": v.expect}
                         for v in VARIANTS.values()]).set_index("variant")


def results_table(results: dict[str, dict], shipped: dict | None = None):
    """Per variant: pretraining wall time, final MLM loss, the transfer gain over a random encoder
    (mean over the targets; mean ± std over seeds) per task, and the best en->X retrieval (mean over
    the targets) with its layer; a variant not run yet says "pending"."""
    import pandas as pd

    rows = []
    entries = ([("shipped world", shipped)] if shipped else []) + [(n, results.get(n)) for n in VARIANTS]
    for name, res in entries:
        row = {"variant": name}
        if res is None:
            rows.append({**row, **{k: "pending" for k in ("layers x width", "pretraining (min)", "MLM loss",
                                                           *(f"{t} gain" for t in TASKS), "best retrieval")}})
            continue
        s = summary(res)
        r = res["recipe"]
        row["layers x width"] = f"{r['layers']} x {r['hidden']}"
        row["pretraining (min)"] = f"{res['pretrain_s'] / 60:.0f}" if res.get("pretrain_s") else "-"
        row["MLM loss"] = f"{res['final_loss']:.2f}"
        for t in TASKS:
            row[f"{t} gain"] = _pm(s[t]) if t in s else "pending"
        curve = s["retrieval_curve"]
        best = max(range(len(curve)), key=curve.__getitem__)
        row["best retrieval"] = f"{curve[best]:.1f} (L{best})"
        rows.append(row)
    return pd.DataFrame(rows).set_index("variant")


def verdict_table(results: dict[str, dict]):
    """Per variant: the prediction, its measured difference from the control (`VERDICT_RULE`) and
    the verdict; "pending" where the variant (or the control) has no results yet."""
    import pandas as pd

    rows = []
    control = results.get("control")
    for v in VARIANTS.values():
        if v.name == "control":
            continue
        res = results.get(v.name)
        if res is None or control is None:
            rows.append({"variant": v.name, "prediction": v.expect, "verdict": "pending"})
            continue
        d = verdict(res, control)
        if d["verdict"] == "pending":
            rows.append({"variant": v.name, "prediction": v.expect, "verdict": "pending"})
            continue
        on = " (" + ", ".join(v.inverted) + ")" if v.inverted else ""
        rows.append({"variant": v.name, "prediction": v.expect,
                     "gain": f"{d['gain']:+.1f} ± {d['gain_std']:.1f}{on}",
                     "control gain": f"{d['control_gain']:+.1f} ± {d['control_std']:.1f}",
                     "d (2s)": f"{d['d']:+.1f} ({2 * d['s']:.1f})",
                     "retrieval change": f"{d['retrieval_change']:+.1f}",
                     "seeds": str(d["seeds"]), "verdict": d["verdict"]})
    return pd.DataFrame(rows).set_index("variant").fillna("-")


def per_language_table(results: dict[str, dict], names, task: str):
    """The gain over a random encoder per target language (mean over seeds) of some variants."""
    import pandas as pd

    rows = {}
    for name in names:
        res = results.get(name)
        if res is None or task not in res.get("transfer", {}):
            rows[name] = {c: "pending" for c in LANGUAGES if c != SOURCE}
            continue
        pre, rnd = res["transfer"][task].get("pretrained", {}), res["transfer"][task].get("random", {})
        seeds = sorted(set(pre) & set(rnd))
        if not seeds:
            rows[name] = {c: "pending" for c in LANGUAGES if c != SOURCE}
            continue
        rows[name] = {c: f"{statistics.fmean(pre[s][c] - rnd[s][c] for s in seeds):+.1f}"
                      for c in LANGUAGES if c != SOURCE}
    return pd.DataFrame(rows).T


def plot_retrieval(results: dict[str, dict], shipped: dict | None = None, axes=None):
    """en->X retrieval per layer: left, the mean over the targets for every variant beside the shipped
    world; right, the languages an inversion variant inverted, against the same language in the control."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    left, right = axes
    if shipped:
        left.plot(summary(shipped)["retrieval_curve"], "k--", label="shipped world (12 layers)")
    for name in VARIANTS:
        if name in results:
            left.plot(summary(results[name])["retrieval_curve"], marker="o", ms=3, label=name)
    left.set(xlabel="layer", ylabel="top-1 retrieval (%)", title="en->X, mean over the 6 targets")
    left.legend(fontsize=7)
    for name in VARIANTS:
        res = results.get(name)
        if res is None or not res["lab"]["inverted"]:
            continue
        for lang in res["lab"]["inverted"]:
            line = right.plot(res["retrieval"]["per_layer"][lang], marker="o", ms=3, label=f"{name}: en->{lang}")
            if "control" in results:
                right.plot(results["control"]["retrieval"]["per_layer"][lang], ls=":", color=line[0].get_color(),
                           label=f"control: en->{lang}")
    right.set(xlabel="layer", title="the inverted languages")
    if right.lines:
        right.legend(fontsize=7)
    return axes


LEARNER_SIZES = ("smoke", "lab")


def learner_run(name: str, size: str = "smoke", log=print) -> dict:
    """Chapter 5's end-to-end run of one variant: "smoke" (the tiny recipe, 1 seed, POS: every step
    in about a minute, no claim) or "lab" (the variant's own recipe, 3 seeds, every task: the run
    whose results ship). The results go to the cache, never over the shipped ones."""
    if size not in LEARNER_SIZES:
        raise ValueError(f"unknown size {size!r}; valid sizes: {', '.join(LEARNER_SIZES)}")
    variant = get_variant(name)
    if size == "smoke":
        return run_variant(name, smoke=True, log=log)
    return run_variant(name, out=model_dir(variant) / "results.json", log=log)


def describe_run(res: dict) -> str:
    """One paragraph on a run: its recipe, its gains over a random encoder and its best retrieval."""
    r, s = res["recipe"], summary(res)
    size = "smoke recipe" if res["smoke"] else "lab recipe"
    lines = [f"{res['variant']} ({size}: {r['layers']} layers x {r['hidden']}, {r['steps']} steps), "
             f"final MLM loss {res['final_loss']:.2f}"]
    for t in TASKS:
        if t in s:
            lines.append(f"  {t} gain over a random encoder (target mean): {_pm(s[t])}")
    curve = s["retrieval_curve"]
    lines.append("  en->X retrieval, mean over targets, per layer: " + " ".join(f"{x:.1f}" for x in curve))
    return "\n".join(lines)


SHIPPED_GRID = PACKAGE_DIR / "assets" / "results" / "toy-paper-grid.json"


def shipped_reference(out: Path | None = None, n: int = N_RETRIEVAL) -> dict:
    """The shipped toy world measured as the variants are: its transfer gains from the shipped
    calibration records (the toy paper grid's reference and random-encoder runs, seeds 1-3), and
    its retrieval per layer, computed here; written to `assets/lab/shipped.json`."""
    record = json.loads((SHIPPED_DIR / "recipe.json").read_text())
    grid = json.loads(SHIPPED_GRID.read_text())["records"].values()
    metric = {"pos": "accuracy", "ner": "f1", "parse": "las"}
    transfer: dict = {}
    for r in grid:
        c = r["config"]
        kind = c["ablation"]["kind"]
        if c["model_sha256"] != record["sha256"] or kind not in ("reference", "random_init") or \
                c.get("n_train") != get_profile("toy").n_train:
            continue
        enc = "pretrained" if kind == "reference" else "random"
        transfer.setdefault(c["task"], {}).setdefault(enc, {})[str(c["seed"])] = {
            m["language"]: m["value"] for m in r["metrics"] if m["metric"] == metric[c["task"]]}
    torch.set_num_threads(1)
    res = {"variant": "shipped", "recipe": record["recipe"], "sha256": record["sha256"], "final_loss": record["final_loss"],
           "lab": VARIANTS["control"].lab_fields(), "transfer": transfer,
           "retrieval": {"n": n, "per_layer": retrieval(VARIANTS["control"], SHIPPED_DIR, n)}}
    out = Path(out or RESULTS_DIR / "shipped.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("variant", nargs="?", help=f"one of: {', '.join(VARIANTS)}")
    ap.add_argument("--list", action="store_true", help="the variants, their hypotheses and findings")
    ap.add_argument("--smoke", action="store_true", help="tiny recipe, 1 seed, POS only: every code path, no claim")
    ap.add_argument("--shipped", action="store_true", help="measure the shipped toy BERT's retrieval (reference)")
    ap.add_argument("--time-steps", type=int, default=0, help="only time this many pretraining steps (nothing saved)")
    ap.add_argument("--out", type=Path, default=None, help="results file (default xlt_utils/assets/lab/NAME.json)")
    args = ap.parse_args(argv)
    if args.list:
        for v in VARIANTS.values():
            print(f"{v.name}: {v.changes}\n  hypothesis: {v.hypothesis}\n  finding: {v.finding}\n  ({v.paper})\n")
        return 0
    if args.shipped:
        summary_ = summary(shipped_reference(args.out))
        print(json.dumps({k: v for k, v in summary_.items()}, indent=1))
        return 0
    if args.variant is None:
        ap.error(f"name a variant; valid variants: {', '.join(VARIANTS)}")
    try:
        variant = get_variant(args.variant)
    except ValueError as e:
        ap.error(str(e))
    if args.time_steps:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            r = pretrain_variant(variant, Path(tmp), max_steps=args.time_steps, checkpoint_every=10**9)
        print(f"{variant.name}: {r['steps']} steps in {r['seconds']:.1f} s ({r['seconds'] / r['steps']:.2f} s/step); "
              f"the full {variant.recipe.steps} steps: about {r['seconds'] / r['steps'] * variant.recipe.steps / 60:.0f} min")
        return 0
    res = run_variant(args.variant, smoke=args.smoke, out=args.out, log=lambda m: print(m, flush=True))
    print(json.dumps({k: v for k, v in summary(res).items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
