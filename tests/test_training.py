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
from xlt_utils.training import TrainConfig, fine_tune, make_optimizer


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


@pytest.mark.slow
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


@pytest.mark.slow
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


# ------------------------------------------------------------------------------- the resume checkpoint


def test_when_a_checkpoint_is_written():
    from xlt_utils.training import LARGE_CHECKPOINT_AFTER_S, SMALL_CHECKPOINT_BYTES, checkpoint_due

    small, mbert = 33 * 2**20, 2_130_000_000
    assert small <= SMALL_CHECKPOINT_BYTES < mbert
    assert checkpoint_due(small, 0.1, last=False) and checkpoint_due(small, 0.1, last=True)  # every epoch
    assert not checkpoint_due(mbert, 20.0, last=False)  # a short epoch: cheaper to redo than to write
    assert checkpoint_due(mbert, LARGE_CHECKPOINT_AFTER_S, last=False)
    assert not checkpoint_due(mbert, 10 * LARGE_CHECKPOINT_AFTER_S, last=True)  # the run is over


@pytest.mark.slow
def test_a_checkpoint_holds_what_a_resume_needs_and_its_size_is_counted(tmp_path):
    from xlt_utils.training import checkpoint_bytes

    model = _train(tmp_path / "run", epochs=1)
    ckpt = tmp_path / "run" / "checkpoint.pt"
    state = torch.load(ckpt, weights_only=True)
    assert set(state) >= {"model", "optimizer", "scheduler", "epoch", "history", "rng", "scaler"}
    head = {id(p) for p in model.head.parameters()}
    opt = make_optimizer([{"params": [p for p in model.parameters() if id(p) not in head]},
                          {"params": list(model.head.parameters())}], 1e-3)  # fine_tune's groups
    opt.load_state_dict(state["optimizer"])
    counted = checkpoint_bytes(model, opt)
    assert counted <= ckpt.stat().st_size < counted * 1.05  # tensors are nearly all of the file


@pytest.mark.slow
def test_a_large_checkpoint_is_written_only_while_it_saves_time_and_still_resumes(tmp_path, monkeypatch):
    """The large-model policy on the toy model (its checkpoint counted as large): after epochs 1 and
    2 of 3, not after the last; a run restarted from the epoch-2 checkpoint ends with the weights of
    the uninterrupted run."""
    import xlt_utils.training as training

    monkeypatch.setattr(training, "SMALL_CHECKPOINT_BYTES", 0)
    monkeypatch.setattr(training, "LARGE_CHECKPOINT_AFTER_S", 0.0)
    saved = []
    real_save = training.atomic_save
    monkeypatch.setattr(training, "atomic_save", lambda obj, path: saved.append(obj["epoch"]) or real_save(obj, path))
    reference = _train(tmp_path / "run", epochs=3)
    assert saved == [1, 2]
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["epoch"] == 2
    saved.clear()
    resumed = _train(tmp_path / "run", epochs=3)  # resumes from epoch 2: trains epoch 3 only
    assert saved == []
    for (n, a), (_, b) in zip(reference.named_parameters(), resumed.named_parameters(), strict=True):
        assert torch.equal(a, b), f"{n} differs after resuming"
    monkeypatch.setattr(training, "LARGE_CHECKPOINT_AFTER_S", float("inf"))  # short epochs: none at all
    _train(tmp_path / "short", epochs=2)
    assert saved == [] and not (tmp_path / "short" / "checkpoint.pt").exists()


def _pos_model(seed=0, task="pos"):
    torch.manual_seed(seed)
    encoder, tok = load_encoder(get_profile("toy"), device="cpu")
    return XltModel(encoder, task, len(label_set(task))), tok


@pytest.mark.slow
@pytest.mark.parametrize("content", ["a list", "another task's head", "a later epoch"])
def test_a_checkpoint_with_the_wrong_content_is_moved_aside_and_training_starts_again(tmp_path, content):
    """A valid zip that is not this run's checkpoint: a warning naming it and why, the file moved
    aside, and the run trains from epoch 1 to the weights of a clean run."""
    from xlt_utils.store import CorruptResultWarning

    torch.set_num_threads(1)
    train, cfg = load_toy("en", "train")[:48], TrainConfig(epochs=2, batch_size=16, lr=1e-3, seed=3)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    ckpt = run_dir / "checkpoint.pt"
    if content == "a list":
        torch.save([1, 2, 3], ckpt)
        why = "it holds a list, not a checkpoint's dict"
    else:
        task = "ner" if content == "another task's head" else "pos"
        other, tok = _pos_model(task=task)
        fine_tune(other, tok, load_toy("en", "train", task)[:48], TrainConfig(epochs=1 if task == "ner" else 3, batch_size=16, lr=1e-3, seed=3), run_dir=run_dir,
                  progress=False)
        why = "this model's (17, 128) (another task's head?)" if content == "another task's head" else "epoch 3 is not a finished epoch"
    clean, tok = _pos_model()
    expected = fine_tune(clean, tok, train, cfg, progress=False)
    model, tok = _pos_model()
    with pytest.warns(CorruptResultWarning, match=rf"{ckpt}: not a resume checkpoint of this run: .*") as w:
        history = fine_tune(model, tok, train, cfg, run_dir=run_dir, progress=False)
    assert why in str(w[0].message) and "moved aside to checkpoint.pt.corrupt-" in str(w[0].message)
    assert len(list(run_dir.glob("checkpoint.pt.corrupt-*"))) == 1
    assert history == expected
    for (n, a), (_, b) in zip(clean.named_parameters(), model.named_parameters(), strict=True):
        assert torch.equal(a, b), f"{n} differs from a clean run"
    assert torch.load(ckpt, weights_only=True)["epoch"] == 2  # this run's own checkpoint replaced it


def test_atomic_save_never_writes_through_a_planted_symlink(tmp_path):
    """The old temporary name was predictable (`checkpoint.pt.tmp`): a symlink planted there had its
    target overwritten. The temporary file is now created exclusively, under a random name."""
    from xlt_utils.training import atomic_save

    target = tmp_path / "elsewhere.txt"
    target.write_text("keep me")
    (tmp_path / "checkpoint.pt.tmp").symlink_to(target)
    atomic_save({"epoch": 1}, tmp_path / "checkpoint.pt")
    assert target.read_text() == "keep me"
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True) == {"epoch": 1}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".checkpoint.pt.")]
