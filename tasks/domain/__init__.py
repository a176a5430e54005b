"""Pure code: no Prefect, no network, no environment. Tasks import it, never the reverse."""
