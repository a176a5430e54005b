"""Pure code: no Prefect, no network, no clock. Tasks import it, never the reverse.

One door to the outside: ``config.load_config`` reads the config file (found through
``$KNACK_SERVICES_CONFIG`` or the working directory); everything else here takes its inputs as arguments.
"""
