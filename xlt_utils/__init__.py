"""xlt_utils: the package behind the xlt notebooks (First Align, then Predict)."""

__version__ = "0.2.0"

#: The public repository: the "Open in Colab" badges, the Colab install cell and the book's launch
#: buttons are all built from this one value (and pyproject.toml's [project.urls], which a test
#: keeps equal to it). A fork changes it here and runs `python -m xlt_utils.nbtools badges`.
REPOSITORY = "xlt-tutorial/xlt"
REPOSITORY_URL = f"https://github.com/{REPOSITORY}"
BRANCH = "main"
