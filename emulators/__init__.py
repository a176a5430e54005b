"""Loopback emulators of the services the pipeline talks to: Knack, Socrata (SODA 2) and ArcGIS Online.

Each lives in its own subpackage (``emulators.knack``, ``emulators.socrata``, ``emulators.arcgis``)
and exposes ``main(argv)`` for ``python -m emulators <name> ...``. See ``emulators/README.md``.
"""
