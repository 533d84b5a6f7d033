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
    """A one-line description of where the computation runs and what to expect there."""
    if torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(0)} (bf16: {bf16_supported('cuda')})"
    return ("CPU only: fine for the toy profile (minutes); the quick profile takes about an hour "
            f"and the full profile needs a GPU. bf16 autocast: {'on' if bf16_supported() else 'off'}")


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
