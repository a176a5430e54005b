"""Prefect tasks and the I/O code behind them; pure code lives in ``tasks.domain``."""
