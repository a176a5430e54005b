"""Analytics tables: a Delta Lake table per container beside its records (rows shaped by ``tasks.domain.table``)."""
