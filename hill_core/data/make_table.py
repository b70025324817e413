"""Write the synthetic table the ``table20`` preset trains on (no download: scikit-learn makes it).

``python -m hill_core.data.make_table data/raw/table20.parquet`` writes 5,000 rows of a 20-class
``make_classification`` problem (20 features, 10 informative) with ``sample_id`` and ``label``
columns, in the format the ``table`` loader reads. The same arguments give the same file.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import make_classification


def synthetic_table(rows: int = 5000, classes: int = 20, seed: int = 0) -> pd.DataFrame:
    """(rows, 20 features + sample_id + label); classes are balanced, one cluster each."""
    x, y = make_classification(
        n_samples=rows, n_features=20, n_informative=10, n_redundant=4, n_classes=classes,
        n_clusters_per_class=1, class_sep=1.0, random_state=seed,
    )  # fmt: skip
    frame = pd.DataFrame(x.astype(np.float32), columns=[f"f{i:02d}" for i in range(x.shape[1])])
    frame.insert(0, "sample_id", np.arange(rows, dtype=np.int64))
    frame["label"] = y.astype(np.int64)
    return frame


def main(argv: list[str] | None = None) -> None:
    (out,) = argv if argv is not None else sys.argv[1:]
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    synthetic_table().to_parquet(path, index=False)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
