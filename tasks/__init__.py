"""Prefect tasks and the I/O behind them, a folder per system (``knack``, ``store``, ``socrata``, ``agol``);
pure code lives in ``tasks.domain``. The README's "Code map" says which file owns what."""
