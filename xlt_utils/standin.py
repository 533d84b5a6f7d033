"""A stand-in for mBERT: a small BERT with mBERT's real tokenizer and vocabulary, saved as a local
model directory, so that the quick/full code path (a model directory instead of the toy BERT, real
UD/UNER/WikiANN files, mBERT's 119,547-subword vocabulary) runs offline in minutes.

    path = build_standin("/tmp/standin", tokenizer_dir="../shared/data/mbert-tokenizer")
    get_profile("quick", model=path, ...)   # or papermill -p profile_overrides '{"model": path, ...}'

The weights are random: the stand-in checks that every cell runs, not what mBERT scores.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .models import load_tokenizer

#: Small but mBERT-shaped where it matters: the vocabulary and 512 positions. Four layers, so that the
#: lower pair of claim C1 (1-2) and the upper pair of claim C2 (3-4) are different layers.
STANDIN_CONFIG = dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=2, intermediate_size=128,
                      max_position_embeddings=512, type_vocab_size=2)

#: The profile overrides of a quick-shaped run on the stand-in: tiny sizes, and only real files that
#: ../shared/data holds. The source trains on its dev split (`train_split="dev"`: UD_English-EWT dev for
#: POS and parsing, UNER English-EWT dev for NER, since neither train file is there), NER comes from
#: Universal NER, and the targets have both a UD PUD and a UNER PUD test file (de, ru, zh).
QUICK_SHAPED = dict(targets=("de", "ru", "zh"), n_train=64, n_eval=24, n_cka=24, epochs=1, batch_size=16,
                    seeds=(1,), ner_source="uner", train_split="dev")


def build_standin(out_dir: str | Path, tokenizer_dir: str | Path, seed: int = 0, **config) -> Path:
    """Save a randomly initialised BERT (`STANDIN_CONFIG`, overridable) with mBERT's tokenizer files
    (``tokenizer.json``, ``vocab.txt``) to `out_dir`; returns it."""
    import torch
    from transformers import BertConfig, BertModel

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = load_tokenizer(tokenizer_dir)
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=len(tok), **{**STANDIN_CONFIG, **config})
    BertModel(cfg, add_pooling_layer=False).save_pretrained(out)
    for name in ("tokenizer.json", "vocab.txt"):
        if (Path(tokenizer_dir) / name).is_file():
            shutil.copyfile(Path(tokenizer_dir) / name, out / name)
    (out / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 512, "do_lower_case": False}))
    return out
