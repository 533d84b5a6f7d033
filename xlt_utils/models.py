"""Encoder + task heads: a token tagger (POS, NER) and a biaffine parser over first-subword states."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from torch import nn
from transformers import AutoTokenizer, BertConfig, BertModel, PreTrainedTokenizerFast

from .data.download import hub_offline, offline_reason
from .parsing import BiaffineParserHead

SPECIAL_TOKENS = dict(unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]", mask_token="[MASK]")
#: Passed to every model load (`from_pretrained`). From transformers 5.25, `from_pretrained` kernelizes a
#: model by default: with the `kernels` package (a dependency of transformers since then), layers that
#: have a Hub kernel for the model's device are swapped for it, and `model.train()` / `model.eval()`
#: kernelize again for the new mode. For BERT that is the GELU of every layer, on CUDA, ROCm and XPU,
#: in inference mode only: `model.eval()` on a GPU would download `kernels-community/activation` from
#: the Hub (no network: an error; offline: a warning and the PyTorch GELU) and evaluate with another
#: GELU than training used. A model on the `meta` device cannot be kernelized at all (ValueError). This
#: package evaluates with the same PyTorch code it trains with, on every device and offline, so it
#: turns hub kernels off; `tests/test_devices.py` checks that no load kernelizes.
MODEL_LOAD_KW = {"use_kernels": False}
OFFLINE_HINT = ("This machine is offline (XLT_OFFLINE or HF_HUB_OFFLINE set) or cannot reach the model hub. "
                "The 'toy' profile needs no network: use profile='toy'.")


def load_tokenizer(path: str | Path, revision: str | None = None):
    """A fast tokenizer from a directory with tokenizer.json, or from a hub id.

    Never build BERT tokenizers with `vocab_file=` under transformers 5: it silently yields
    a 5-token vocabulary. `tokenizer.json` carries the whole pipeline.
    """
    p = Path(path)
    if (p / "tokenizer.json").is_file():
        config = p / "tokenizer_config.json"
        max_len = json.loads(config.read_text()).get("model_max_length", 512) if config.is_file() else 512
        return PreTrainedTokenizerFast(tokenizer_file=str(p / "tokenizer.json"), model_max_length=min(max_len, 512),
                                       **SPECIAL_TOKENS)
    return from_hub(AutoTokenizer, str(path), **({"revision": revision} if revision else {}))


def from_hub(cls, name: str, **kw):
    """`cls.from_pretrained(name)`, from the local cache only when offline (`offline_reason`): then
    no request at all leaves the process (`local_files_only=True` and the Hugging Face libraries'
    own offline flag, `hub_offline`, which XLT_OFFLINE alone would not set)."""
    offline = offline_reason() is not None
    if offline:
        kw.setdefault("local_files_only", True)
    try:
        with hub_offline() if offline else contextlib.nullcontext():
            return cls.from_pretrained(name, **kw)
    except OSError as e:
        raise RuntimeError(f"could not load {name!r} from the Hugging Face Hub or its cache. {OFFLINE_HINT}") from e


def model_device(model: nn.Module):
    """The device of a model's parameters: where its inputs must go (the full device: cuda:1 too)."""
    return next(model.parameters()).device


def tiny_bert_config(vocab_size: int, **kw) -> BertConfig:
    """The toy profile's architecture: a 12-layer, 128-wide BERT (about 2.8 M parameters with a
    3,000-subword vocabulary); `pretraining.PretrainRecipe.architecture()` gives the shipped values."""
    cfg = dict(vocab_size=vocab_size, hidden_size=128, num_hidden_layers=12, num_attention_heads=4,
               intermediate_size=512, max_position_embeddings=128, type_vocab_size=2,
               hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    cfg.update(kw)
    return BertConfig(**cfg)


class XltModel(nn.Module):
    """A BERT encoder with one head on the first-subword state of every word."""

    def __init__(self, encoder: BertModel, task: str, n_labels: int, dropout: float = 0.1):
        super().__init__()
        self.encoder, self.task, self.n_labels = encoder, task, n_labels
        hidden = encoder.config.hidden_size
        self.dropout = nn.Dropout(dropout)
        if task == "parse":
            self.head = BiaffineParserHead(hidden, n_labels)
        else:
            self.head = nn.Linear(hidden, n_labels)
            nn.init.normal_(self.head.weight, std=0.02), nn.init.zeros_(self.head.bias)

    @property
    def base_model(self) -> BertModel:
        """The encoder alone (what CKA and the ablations look at)."""
        return self.encoder

    def word_states(self, input_ids, attention_mask, first_subword, output_hidden_states=False):
        """Hidden state of each word's first subword, [B, W, H] (and all layers if asked)."""
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                           output_hidden_states=output_hidden_states)
        h = out.last_hidden_state
        idx = first_subword.unsqueeze(-1).expand(-1, -1, h.size(-1))
        return h.gather(1, idx), (out.hidden_states if output_hidden_states else None)

    def forward(self, batch: dict, output_hidden_states: bool = False):
        words, hidden = self.word_states(batch["input_ids"], batch["attention_mask"], batch["first_subword"],
                                         output_hidden_states)
        words = self.dropout(words)
        if self.task == "parse":  # relation logits at the gold heads when training, all heads otherwise
            out = self.head(words, batch["word_mask"], heads=batch.get("heads"))
        else:
            out = self.head(words)
        return (out, hidden) if output_hidden_states else out
