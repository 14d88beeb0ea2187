"""Everything the stages write and read under ``reports/`` and ``data/``: where it lies
(``paths``), how it is written (``files``: atomic, deterministic), and what a train stage's
outputs hold (``records``)."""
