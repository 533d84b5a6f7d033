"""One call at the top of every chapter: seeds, quiet logs, plot style, device and versions."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import torch

from .precision import cuda_capability, describe, forced_precision, hardware_precision
from .training import set_seed


def progress_enabled() -> bool:
    """Progress bars are on, unless XLT_PROGRESS=0 (set by the tutorial and test commands)."""
    return os.environ.get("XLT_PROGRESS", "1") != "0"


def describe_device() -> str:
    """One line: where the computation runs and what each profile costs there.

    It starts with "GPU: " or "CPU only: " (notebooks/nbval_sanitize.cfg masks the whole line, so
    the stored outputs compare equal on any machine) and is the same on every run of one machine.
    """
    expect = "each chapter's Runtime line has the details"
    forced = " (forced by XLT_PRECISION)" if forced_precision() else ""
    toy = "toy profile always fp32"
    if torch.cuda.is_available():
        cap = cuda_capability()
        how = describe(hardware_precision("cuda"))
        return (f"GPU: {torch.cuda.get_device_name(0)} (compute capability {cap[0]}.{cap[1]}), mBERT trains in "
                f"{how}{forced}; {toy}. Expect: toy profile in seconds to minutes; quick and full profiles: "
                f"{expect} (estimated for this device).")
    how = describe(hardware_precision("cpu"))
    return (f"CPU only: no GPU found, mBERT trains in {how}{forced}; {toy}. Expect: toy profile fine, "
            "minutes per chapter; quick profile hours per chapter; full profile needs a GPU "
            f"(on Colab: Runtime > Change runtime type > GPU); {expect}.")


def cache_on_google_drive(folder: str = "xlt-cache", mount: str = "/content/drive") -> str | None:
    """On Colab: mount Google Drive and put the cache (`XLT_CACHE_DIR`: downloads, result records,
    fine-tuned models, the checkpoints of interrupted runs) in ``MyDrive/<folder>``, so that a grid
    resumes after a disconnect instead of starting again. Outside Colab it does nothing and returns None.

    Call it before anything is cached (the chapters' first cell does, when asked). Returns the folder.
    """
    if "google.colab" not in sys.modules:
        return None
    from google.colab import drive  # only exists on Colab

    drive.mount(mount)
    path = Path(mount) / "MyDrive" / folder
    path.mkdir(parents=True, exist_ok=True)
    os.environ["XLT_CACHE_DIR"] = str(path)
    print(f"XLT_CACHE_DIR = {path} (on Google Drive: results survive a disconnect)")
    return str(path)


def restart_needed() -> bool:
    """True when a package this chapter needs was upgraded after it had been imported (on Colab, after
    the install cell upgraded transformers in a session that had already imported it): the old
    version stays loaded until the runtime restarts."""
    import importlib.metadata as md

    for name in ("transformers", "tokenizers", "datasets"):
        mod = sys.modules.get(name)
        if mod is not None and getattr(mod, "__version__", None) not in (None, md.version(name)):
            return True
    return False


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
    # Figures as wide as the book's column (plotting.COLUMN_WIDTH_IN at plotting.FIGURE_DPI: shown
    # unscaled, text at its size); a cell that needs another size passes figsize=(COLUMN_WIDTH_IN, h).
    from .plotting import COLUMN_WIDTH_IN, FIGURE_DPI

    matplotlib.rcParams.update({"figure.dpi": FIGURE_DPI, "savefig.dpi": FIGURE_DPI, "axes.grid": True,
                                "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False,
                                "figure.figsize": (COLUMN_WIDTH_IN, 3.2)})
    print(describe_device())
    print(f"versions: torch {torch.__version__}, transformers {transformers.__version__}")
