"""Train one grid cell: conditional flow matching with checkpoints, exact resume and EMA.

A run holds ``<out>/.train.lock`` while it trains. Its live state sits in ``<out>/ckpt/``,
outside the workflow's declared outputs: the checkpoints and the live loss log, published to
``<out>/train_log.csv`` when the run ends. A checkpoint of this cell written with other settings
or data is moved to ``<out>/ckpt.stale/`` and the cell retrains from step 0; a checkpoint of
another cell is refused.

Rooms, imported by name (this file loads none of them): ``cell`` (``train_cell``, the entry
point), ``loop`` (``CellSpec``, ``Trainer`` and its public ``step``), ``schedules`` (learning
rate, EMA), ``bookkeeping`` (stop flag, stopwatch, loss window), ``run_folder`` (the files),
``memory`` (out-of-memory) and ``provenance`` (identity, versions).
"""
