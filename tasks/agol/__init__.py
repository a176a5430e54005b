"""ArcGIS Online: the ``arcgis`` client calls and the publish task (payloads live in ``tasks.domain.agol``)."""
