"""Length-grouped batches, dynamic padding, and resuming an interrupted fine-tuning run."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time

import pytest
import torch

from xlt_utils.batching import collate, length_grouped_batches, make_examples
from xlt_utils.data.records import label_set
from xlt_utils.data.synthetic import load_toy
from xlt_utils.models import XltModel
from xlt_utils.pretrained import load_encoder
from xlt_utils.profiles import get_profile
from xlt_utils.training import TrainConfig, fine_tune


def test_length_grouped_batches_cover_everything_once_and_group_lengths():
    lengths = [int(x) for x in torch.randint(3, 60, (1000,), generator=torch.Generator().manual_seed(0))]
    batches = length_grouped_batches(lengths, 16, torch.Generator().manual_seed(1), bucket_factor=10)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(1000))
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 10  # random batches would span ~50
    again = length_grouped_batches(lengths, 16, torch.Generator().manual_seed(1), bucket_factor=10)
    assert again == batches


def test_bucket_of_one_batch_gives_random_batches_and_bigger_buckets_less_padding():
    lengths = [int(x) for x in torch.randint(3, 60, (640,), generator=torch.Generator().manual_seed(0))]
    perm = torch.randperm(640, generator=torch.Generator().manual_seed(5)).tolist()
    random_cut = sorted(sorted(perm[k:k + 32]) for k in range(0, 640, 32))
    ones = length_grouped_batches(lengths, 32, torch.Generator().manual_seed(5), bucket_factor=1)
    assert sorted(sorted(b) for b in ones) == random_cut  # the same sentences per batch, another order

    def padded(bf):
        return sum(len(b) * max(lengths[i] for i in b)
                   for b in length_grouped_batches(lengths, 32, torch.Generator().manual_seed(5), bf))

    assert padded(1) > padded(4) > padded(20)
    with pytest.raises(ValueError, match="bucket_factor"):
        length_grouped_batches(lengths, 32, torch.Generator(), bucket_factor=0)


def test_fine_tune_batches_with_the_configured_bucket(monkeypatch):
    import xlt_utils.training as training

    seen = []
    real = training.length_grouped_batches

    def spy(lengths, batch_size, gen, bucket_factor=4):
        seen.append(bucket_factor)
        return real(lengths, batch_size, gen, bucket_factor)

    monkeypatch.setattr(training, "length_grouped_batches", spy)
    torch.set_num_threads(1)
    encoder, tok = load_encoder(get_profile("toy"))
    model = XltModel(encoder, "pos", len(label_set("pos")))
    cfg = TrainConfig(epochs=2, batch_size=16, lr=1e-3, length_bucket=7)
    assert TrainConfig().length_bucket == 4
    fine_tune(model, tok, load_toy("en", "train")[:48], cfg, progress=False)
    assert seen == [7, 7]


def test_collate_pads_to_the_longest_sentence_of_the_batch():
    _, tok = load_encoder(get_profile("toy"))
    ex = make_examples(tok, load_toy("en", "dev")[:8], "pos")
    batch = collate(ex, tok.pad_token_id)
    assert batch["input_ids"].shape[1] == max(len(e["input_ids"]) for e in ex)
    assert batch["labels"].shape[1] == max(len(e["first_subword"]) for e in ex)
    assert (batch["attention_mask"].sum(1) == torch.tensor([len(e["input_ids"]) for e in ex])).all()
    assert (batch["labels"] != -100).sum() == sum(len(e["labels"]) for e in ex)


def _train(run_dir, epochs=2):
    torch.set_num_threads(1)
    torch.manual_seed(0)  # the head's initialisation
    encoder, tok = load_encoder(get_profile("toy"))
    model = XltModel(encoder, "pos", len(label_set("pos")))
    cfg = TrainConfig(epochs=epochs, batch_size=16, lr=1e-3, seed=3)
    fine_tune(model, tok, load_toy("en", "train")[:400], cfg, run_dir=run_dir, progress=False)
    return model


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path):
    reference = _train(None)
    run_dir = tmp_path / "run"
    ctx = mp.get_context("spawn")
    proc = ctx.Process(target=_train, args=(run_dir,), kwargs={"epochs": 2})
    proc.start()
    deadline = time.time() + 120
    while not (run_dir / "checkpoint.pt").exists() and time.time() < deadline and proc.is_alive():
        time.sleep(0.05)
    assert (run_dir / "checkpoint.pt").exists(), "the first epoch never finished"
    os.kill(proc.pid, signal.SIGKILL)  # interrupted during epoch 2
    proc.join()
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 1
    resumed = _train(run_dir)
    for (n, a), (_, b) in zip(reference.named_parameters(), resumed.named_parameters(), strict=True):
        assert torch.equal(a, b), f"{n} differs after resuming"
