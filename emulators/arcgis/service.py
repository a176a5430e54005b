"""The hosted feature service half: service and layer JSON, query, edits, truncate and append.

Every parameter is read from the query string or the form body (url-encoded or multipart), as the
``arcgis`` client switches between them. Errors are HTTP 200 with an ``{"error": ...}`` envelope.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import TYPE_CHECKING, Any

from emulators._http import Request, Response, json_response

from .layer import LayerStore
from .portal import error_envelope
from .schema import GLOBALID_FIELD, OID_FIELD
from .where import WhereError

if TYPE_CHECKING:
    from .emulator import ArcGISEmulator, Item

EDIT_OPERATIONS = {"applyEdits", "addFeatures", "updateFeatures", "deleteFeatures", "append", "truncate"}
_WGS84 = {"wkid": 4326, "latestWkid": 4326}


def _flag(params: dict[str, str], name: str, default: bool) -> bool:
    value = params.get(name)
    return default if value in (None, "") else value.strip().lower() == "true"


def _invalid(detail: str) -> Response:
    return error_envelope(400, "Unable to complete operation.", [detail])


def layer_json(layer: LayerStore) -> dict[str, Any]:
    """The layer (or table) resource as the service describes it."""
    defn = layer.defn
    indexes = [{"name": "PK__OBJECTID", "fields": OID_FIELD, "isUnique": True, "isAscending": True},
               {"name": "GlobalID_Index", "fields": GLOBALID_FIELD, "isUnique": True, "isAscending": True}]
    indexes += [{"name": f"uidx_{f.name}", "fields": f.name, "isUnique": True, "isAscending": True}
                for f in defn.user_fields if f.unique]
    body: dict[str, Any] = {
        "currentVersion": 11.3, "id": layer.layer_id, "name": defn.name,
        "type": "Table" if defn.kind == "table" else "Feature Layer",
        "objectIdField": OID_FIELD, "globalIdField": GLOBALID_FIELD,
        "uniqueIdField": {"name": OID_FIELD, "isSystemMaintained": True},
        "maxRecordCount": defn.max_record_count, "standardMaxRecordCount": 32000,
        "capabilities": "Create,Delete,Query,Update,Editing", "hasAttachments": False,
        "supportsApplyEditsWithGlobalIds": True, "supportsRollbackOnFailureParameter": True,
        "supportsTruncate": True, "supportsAppend": True, "supportedAppendFormats": "featureCollection",
        "advancedQueryCapabilities": {"supportsPagination": True, "supportsOrderBy": True,
                                      "supportsDistinct": True, "supportsReturningQueryExtent": False},
        "supportedQueryFormats": "JSON", "fields": [f.to_json() for f in defn.fields], "indexes": indexes,
    }
    if defn.kind == "layer":
        body["geometryType"] = defn.esri_geometry_type
        body["extent"] = {"xmin": -180, "ymin": -90, "xmax": 180, "ymax": 90, "spatialReference": _WGS84}
        # every hosted layer has one; query(as_df=True) reads it and fails on empty shapes without it
        body["drawingInfo"] = {"renderer": {"type": "simple", "symbol": {
            "type": "esriSMS", "style": "esriSMSCircle", "color": [0, 112, 255, 255], "size": 6}}}
    return body


def service_json(emu: ArcGISEmulator, item: Item) -> dict[str, Any]:
    entries = {"layers": [], "tables": []}
    for layer_id in sorted(item.layers):
        layer = item.layers[layer_id]
        kind = "tables" if layer.defn.kind == "table" else "layers"
        entry = {"id": layer_id, "name": layer.defn.name, "type": "Table" if kind == "tables" else "Feature Layer"}
        if kind == "layers":
            entry["geometryType"] = layer.defn.esri_geometry_type
        entries[kind].append(entry)
    return {"currentVersion": 11.3, "serviceItemId": item.item_id, "serviceDescription": "",
            "hasVersionedData": False, "supportsDisconnectedEditing": False, "maxRecordCount": 2000,
            "supportedQueryFormats": "JSON", "capabilities": "Create,Delete,Query,Update,Editing",
            "spatialReference": _WGS84, "supportsApplyEditsWithGlobalIds": True, **entries}


def _query(layer: LayerStore, params: dict[str, str]) -> Response:
    if params.get("geometry"):
        return _invalid("Spatial filters are not supported by this emulator.")
    defn = layer.defn
    try:
        condition = layer.filter_sql(params.get("where"), params.get("objectIds"))
        order = layer.order_sql(params.get("orderByFields"))
        if _flag(params, "returnCountOnly", False):
            return json_response({"count": layer.count(condition)})
        if _flag(params, "returnIdsOnly", False):
            return json_response({"objectIdFieldName": OID_FIELD, "objectIds": layer.object_ids(condition, order)})
        out = (params.get("outFields") or "*").replace(" ", "")
        if out == "*" or "*" in out.split(","):
            names = [f.name for f in defn.fields]
        else:
            names = []
            for raw in out.split(","):
                fld = defn.field(raw) if raw else None
                if raw and fld is None:
                    raise WhereError(f"'outFields' names unknown field {raw!r}")
                if fld is not None and fld.name not in names:
                    names.append(fld.name)
        fields_json = [defn.field(n).to_json() for n in names]  # type: ignore[union-attr]
        if _flag(params, "returnDistinctValues", False):
            rows = layer.distinct(condition, names, order)
            return json_response({"fields": fields_json, "features": [{"attributes": r} for r in rows]})
        offset = int(params.get("resultOffset") or 0)
        limit = defn.max_record_count
        if params.get("resultRecordCount"):
            limit = max(1, min(limit, int(params["resultRecordCount"])))
        page = layer.rows(condition, order, offset, limit + 1)
    except (WhereError, ValueError) as exc:
        return _invalid(f"'where' parameter is invalid: {exc}")
    geometry = defn.kind == "layer" and _flag(params, "returnGeometry", True)
    features = []
    for attrs, geom in page[:limit]:
        feature: dict[str, Any] = {"attributes": {n: attrs[n] for n in names}}
        if geometry and geom is not None:
            feature["geometry"] = geom  # AGOL leaves the key out for an empty shape; as_df relies on that
        features.append(feature)
    body: dict[str, Any] = {"objectIdFieldName": OID_FIELD,
                            "uniqueIdField": {"name": OID_FIELD, "isSystemMaintained": True},
                            "globalIdFieldName": GLOBALID_FIELD}
    if defn.kind == "layer":
        body.update(geometryType=defn.esri_geometry_type, spatialReference=_WGS84)
    body.update(fields=fields_json, features=features)
    if len(page) > limit:
        body["exceededTransferLimit"] = True
    return json_response(body)


def _json_list(params: dict[str, str], name: str) -> list[Any]:
    raw = (params.get(name) or "").strip()
    if not raw:
        return []
    value = json.loads(raw)
    if isinstance(value, dict) and "features" in value:
        value = value["features"]
    if not isinstance(value, list):
        raise ValueError(f"'{name}' must be a JSON array")
    return value


def _id_list(raw: str | None) -> list[Any]:
    text = (raw or "").strip()
    if text.startswith("["):
        return list(json.loads(text))
    return [part.strip() for part in text.split(",") if part.strip()]


def _edits(emu: ArcGISEmulator, layer: LayerStore, op: str, params: dict[str, str]) -> Response:
    rollback = _flag(params, "rollbackOnFailure", True)
    use_global_ids = _flag(params, "useGlobalIds", False)
    try:
        adds = _json_list(params, "adds" if op == "applyEdits" else "features") if op in (
            "applyEdits", "addFeatures") else []
        updates = _json_list(params, "updates" if op == "applyEdits" else "features") if op in (
            "applyEdits", "updateFeatures") else []
        if op == "deleteFeatures":
            deletes: list[Any] = _id_list(params.get("objectIds"))
            if params.get("where"):
                condition = layer.filter_sql(params["where"], params.get("objectIds"))
                deletes = layer.object_ids(condition, f'"{OID_FIELD}"')
            elif not deletes:
                return _invalid("'where' or 'objectIds' is required.")
        else:
            deletes = _id_list(params.get("deletes")) if op == "applyEdits" else []
    except (ValueError, WhereError) as exc:
        return _invalid(f"Invalid parameters: {exc}")
    results, rolled_back = layer.apply_edits(adds, updates, deletes, rollback=rollback,
                                             use_global_ids=use_global_ids)
    if rolled_back and emu.faults.rollback_envelope:
        details = ["Operation rolled back."] + [
            r["error"]["description"] for rows in results.values() for r in rows
            if r["error"]["code"] != 1003]
        return error_envelope(400, "Unable to complete operation.", details, extendedCode=-2147467259)
    if op == "applyEdits":
        return json_response(results)
    key = {"addFeatures": "addResults", "updateFeatures": "updateResults", "deleteFeatures": "deleteResults"}[op]
    return json_response({key: results[key]})


def _append(emu: ArcGISEmulator, item: Item, layer: LayerStore, params: dict[str, str]) -> Response:
    fmt = params.get("appendUploadFormat", "featureCollection")
    if fmt != "featureCollection":
        return _invalid(f"appendUploadFormat '{fmt}' is not supported by this emulator.")
    try:
        edits = json.loads(params.get("edits") or "null")
    except ValueError:
        return _invalid("'edits' is not valid JSON.")
    if isinstance(edits, dict) and "layers" in edits:
        edits = (edits["layers"] or [{}])[0].get("featureSet", {})
    features = edits.get("features") if isinstance(edits, dict) else None
    if not isinstance(features, list):
        return _invalid("'edits' must hold a feature collection; uploads by item id are not emulated.")
    status = _append_features(layer, features, params)
    job_id = uuid.uuid4().hex
    emu.jobs[job_id] = {"status": "Completed" if status is None else "Failed",
                        "submissionTime": int(time.time() * 1000), "lastUpdatedTime": int(time.time() * 1000),
                        **({"recordCount": len(features)} if status is None else
                           {"messages": [{"type": "esriJobMessageTypeError", "description": status}]})}
    return json_response({"statusUrl": f"{emu.service_url(item.item_id)}/jobs/{job_id}"})


def _append_features(layer: LayerStore, features: list[Any], params: dict[str, str]) -> str | None:
    """Run an append as one all-or-nothing edit; returns None or the failure message."""
    upsert = _flag(params, "upsert", False)
    adds, updates = features, []
    if upsert:
        fld = layer.defn.field(params.get("upsertMatchingField") or "")
        if fld is None or not fld.unique:
            return "upsertMatchingField must name a field with a unique index."
        keys = [next((v for k, v in (f.get("attributes") or {}).items() if k.lower() == fld.name.lower()), None)
                for f in features if isinstance(f, dict)]
        if len(set(keys)) != len(keys):
            return f"Duplicate values of '{fld.name}' in one append are not allowed."
        existing = layer.oids_by_value(fld.name, keys)
        adds, updates = [], []
        for feature, key in zip(features, keys, strict=True):
            if key in existing:
                if not _flag(params, "skipUpdates", False):
                    attrs = {**feature.get("attributes", {}), OID_FIELD: existing[key]}
                    update = {"attributes": attrs}
                    if _flag(params, "updateGeometry", True) and "geometry" in feature:
                        update["geometry"] = feature["geometry"]
                    updates.append(update)
            elif not _flag(params, "skipInserts", False):
                adds.append(feature)
    results, rolled_back = layer.apply_edits(adds, updates, [], rollback=True)
    if rolled_back:
        errors = [r["error"]["description"] for rows in results.values() for r in rows
                  if r["error"]["code"] != 1003]
        return "; ".join(errors) or "Append failed."
    return None


def handle(emu: ArcGISEmulator, item: Item, rest: list[str], request: Request, admin: bool) -> Response:
    """Answer one feature-service request; ``rest`` is the path after ``FeatureServer``."""
    params = request.params()
    if not rest or (rest == ["refresh"] and admin):
        return json_response({"success": True} if rest else service_json(emu, item))
    if rest[0] == "jobs" and len(rest) == 2:
        job = emu.jobs.get(rest[1])
        return json_response(job) if job else _invalid("Job not found.")
    if not rest[0].isdigit() or int(rest[0]) not in item.layers or len(rest) > 2:
        return error_envelope(400, "Invalid URL", ["The requested layer or operation does not exist."])
    layer = item.layers[int(rest[0])]
    op = rest[1] if len(rest) == 2 else ""
    if op == "":
        return json_response(layer_json(layer))
    if op == "query":
        return _query(layer, params)
    if op in ("applyEdits", "addFeatures", "updateFeatures", "deleteFeatures"):
        return _edits(emu, layer, op, params)
    if op == "append":
        return _append(emu, item, layer, params)
    if op in ("truncate", "refresh") and admin:
        if op == "truncate":
            layer.truncate()
        return json_response({"success": True})
    return error_envelope(400, "Requested operation is not supported by this service.", [f"'{op}'"])
