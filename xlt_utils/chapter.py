"""One call at the top of every chapter: seeds, quiet logs, plot style, device and versions."""

from __future__ import annotations

import warnings

import torch

from . import settings as settings_module
from .plotting import COLUMN_WIDTH_IN, FIGURE_DPI
from .precision import cuda_capability, describe, forced_precision, hardware_precision
from .training import set_seed


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


def setup_chapter(seed: int = 0, threads: int | None = 2,
                  settings: settings_module.Settings | None = None) -> settings_module.Settings:
    """Seed everything, silence library chatter, set the plot style, print the environment, and
    return the settings in force (`settings`, if given, are put in force first: for example those of
    `colab.use_google_drive`)."""
    import matplotlib
    import transformers

    if settings is not None:
        settings_module.use(settings)
        print(f"cache and results: {settings.cache_dir} (results: {settings.results_root})")

    set_seed(seed)
    settings_module.quiet_tokenizer_threads()
    if threads:
        torch.set_num_threads(threads)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    # Figures as wide as the book's column (plotting.COLUMN_WIDTH_IN at plotting.FIGURE_DPI: shown
    # unscaled, text at its size); a cell that needs another size passes figsize=(COLUMN_WIDTH_IN, h).
    matplotlib.rcParams.update({"figure.dpi": FIGURE_DPI, "savefig.dpi": FIGURE_DPI, "axes.grid": True,
                                "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False,
                                "figure.figsize": (COLUMN_WIDTH_IN, 3.2)})
    print(describe_device())
    print(f"versions: torch {torch.__version__}, transformers {transformers.__version__}")
    return settings_module.current()
