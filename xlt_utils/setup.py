"""One call at the top of every chapter: seeds, quiet logs, plot style, device and versions."""

from __future__ import annotations

import os
import warnings

import torch

from .training import bf16_supported, set_seed


def progress_enabled() -> bool:
    """Progress bars are on, unless XLT_PROGRESS=0 (set by the tutorial and test commands)."""
    return os.environ.get("XLT_PROGRESS", "1") != "0"


def describe_device() -> str:
    """One line: where the computation runs and what each profile costs there.

    It starts with "GPU: " or "CPU only: " (notebooks/nbval_sanitize.cfg masks the whole line, so
    the stored outputs compare equal on any machine) and is the same on every run of one machine.
    """
    expect = "each chapter's Runtime line has the details"
    if torch.cuda.is_available():
        bf16 = "on" if bf16_supported("cuda") else "off"
        return (f"GPU: {torch.cuda.get_device_name(0)}, bf16 autocast {bf16}. Expect: toy profile in seconds "
                "to minutes; quick profile in minutes (chapter 3's ablation grid: about an hour); full profile "
                f"up to about an hour per chapter (chapter 3: a GPU day); {expect}.")
    bf16 = "on" if bf16_supported() else "off"
    return (f"CPU only: no GPU found, bf16 autocast {bf16}. Expect: toy profile fine, minutes per chapter; "
            "quick profile about an hour per chapter (chapter 3: hours); full profile needs a GPU "
            f"(on Colab: Runtime > Change runtime type > GPU); {expect}.")


def setup_chapter(seed: int = 0, threads: int | None = 2) -> None:
    """Seed everything, silence library chatter, set the plot style and print the environment."""
    import matplotlib
    import transformers

    set_seed(seed)
    if threads:
        torch.set_num_threads(threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    matplotlib.rcParams.update({"figure.dpi": 100, "savefig.dpi": 100, "axes.grid": True, "grid.alpha": 0.3,
                                "axes.spines.top": False, "axes.spines.right": False, "figure.figsize": (7, 3.5)})
    print(describe_device())
    print(f"versions: torch {torch.__version__}, transformers {transformers.__version__}")
