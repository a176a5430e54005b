"""Feature building and edit-result checks for ArcGIS layers and tables: pure, no sockets."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from tasks.agol.client import error_code, is_token_error, is_transient_agol
from tasks.domain.agol import (
    LayerInfo,
    dropped_fields,
    edit_failures,
    refusal,
    strip_html,
    to_agol_feature,
)
from tasks.domain.errors import AgolEditFailed, ConfigError
from tasks.domain.formatting import Address
from tasks.domain.text import where_in

pytestmark = pytest.mark.unit

CHICAGO = ZoneInfo("America/Chicago")
WGS84 = {"wkid": 4326}


def _props(geometry_type: str | None = "esriGeometryPoint", **extra_fields: dict) -> dict:
    fields = [
        {"name": "OBJECTID", "type": "esriFieldTypeOID", "editable": False},
        {"name": "GlobalID", "type": "esriFieldTypeGlobalID", "length": 38, "editable": False},
        {"name": "id", "type": "esriFieldTypeString", "length": 24},
        {"name": "signal_name", "type": "esriFieldTypeString", "length": 20},
        {"name": "notes", "type": "esriFieldTypeString", "length": 255},
        {"name": "is_active", "type": "esriFieldTypeString", "length": 8},
        {"name": "active_flag", "type": "esriFieldTypeSmallInteger"},
        {"name": "count", "type": "esriFieldTypeInteger"},
        {"name": "score", "type": "esriFieldTypeDouble"},
        {"name": "modified_at", "type": "esriFieldTypeDate", "length": 8},
        {"name": "location", "type": "esriFieldTypeString", "length": 255},
        {"name": "_id", "type": "esriFieldTypeString", "length": 24},
        *extra_fields.values(),
    ]
    props = {"name": "signals", "type": "Feature Layer" if geometry_type else "Table", "fields": fields,
             "objectIdField": "OBJECTID"}
    if geometry_type:
        props["geometryType"] = geometry_type
    return props


POINT_LAYER = LayerInfo.from_properties(_props())
MULTI_LAYER = LayerInfo.from_properties(_props("esriGeometryMultipoint"))
TABLE = LayerInfo.from_properties(_props(None))
NAMES = {"field_1": "signal_name", "field_2": "notes", "field_3": "is_active", "field_4": "active_flag",
         "field_5": "count", "field_6": "score", "field_7": "modified_at", "field_8": "location",
         "field_9": "_id", "field_10": "not_in_layer"}
HOME = Address("1 Main St", 30.27, -97.74)
AWAY = Address("2 Side St", 30.28, -97.75)
UNLOCATED = Address("3 Nowhere", None, None)


def _feature(layer: LayerInfo, formatted: dict, *, location_fields=("field_8",)) -> dict:
    return to_agol_feature("5f1c0a", formatted, NAMES, layer.fields, location_fields=location_fields,
                           geometry_type=layer.geometry_type, layer=layer.name)


def test_layer_info_reads_properties():
    assert POINT_LAYER.geometry_type == "point" and MULTI_LAYER.geometry_type == "multipoint"
    assert TABLE.geometry_type is None and POINT_LAYER.object_id_field == "OBJECTID"
    assert POINT_LAYER.match_field("ID") == "id"
    with pytest.raises(ConfigError, match="needs a text field 'knack_id'"):
        POINT_LAYER.match_field("knack_id")
    with pytest.raises(ConfigError, match="esriGeometryPolygon"):
        LayerInfo.from_properties(_props("esriGeometryPolygon"))


def test_whole_feature_with_every_value_shape():
    formatted = {
        "field_1": "<b>Lamar</b> &amp; 5th",
        "field_2": "<p>line one</p><p>line&nbsp;two<br>three</p>",
        "field_3": True,
        "field_4": False,
        "field_5": 7.0,
        "field_6": 2,
        "field_7": datetime(2024, 1, 1, 0, 0, tzinfo=CHICAGO),
        "field_8": HOME,
        "field_9": "ATD-1",
        "field_10": "dropped",
        "field_99": "no destination name",
    }
    assert _feature(POINT_LAYER, formatted) == {
        "attributes": {
            "id": "5f1c0a",
            "signal_name": "Lamar & 5th",
            "notes": "line one\nline\xa0two\nthree",
            "is_active": "true",
            "active_flag": 0,
            "count": 7,
            "score": 2.0,
            "modified_at": 1704088800000,  # midnight in Chicago is 06:00 UTC
            "location": "1 Main St",
            "_id": "ATD-1",
        },
        "geometry": {"x": -97.74, "y": 30.27, "spatialReference": WGS84},
    }


def test_nulls_stay_null_and_lists_are_joined():
    formatted = {"field_1": None, "field_2": ["a", "<i>b</i>", ""], "field_5": None, "field_7": None,
                 "field_8": None}
    assert _feature(POINT_LAYER, formatted) == {
        "attributes": {"id": "5f1c0a", "signal_name": None, "notes": "a, b", "count": None,
                       "modified_at": None, "location": None},
        "geometry": None,
    }


@pytest.mark.parametrize(("layer", "value", "geometry"), [
    (POINT_LAYER, HOME, {"x": -97.74, "y": 30.27, "spatialReference": WGS84}),
    (POINT_LAYER, [UNLOCATED, AWAY, HOME], {"x": -97.75, "y": 30.28, "spatialReference": WGS84}),
    (POINT_LAYER, UNLOCATED, None),           # empty lat/long strings upstream: no shape, never (0, 0)
    (POINT_LAYER, [UNLOCATED], None),
    (POINT_LAYER, None, None),
    (MULTI_LAYER, [HOME, UNLOCATED, AWAY], {"points": [[-97.74, 30.27], [-97.75, 30.28]], "spatialReference": WGS84}),
    (MULTI_LAYER, HOME, {"points": [[-97.74, 30.27]], "spatialReference": WGS84}),
    (MULTI_LAYER, [UNLOCATED], None),
    (MULTI_LAYER, None, None),
])
def test_geometry_for_every_location_shape(layer, value, geometry):
    assert _feature(layer, {"field_8": value})["geometry"] == geometry


def test_two_location_fields_point_takes_the_first_located_multipoint_takes_all():
    formatted = {"field_8": UNLOCATED, "field_11": [AWAY]}
    fields = ("field_8", "field_11")
    assert _feature(POINT_LAYER, formatted, location_fields=fields)["geometry"] == {
        "x": -97.75, "y": 30.28, "spatialReference": WGS84}
    both = {"field_8": HOME, "field_11": [AWAY]}
    assert _feature(MULTI_LAYER, both, location_fields=fields)["geometry"]["points"] == [
        [-97.74, 30.27], [-97.75, 30.28]]


def test_address_outside_location_fields_gives_no_geometry():
    assert _feature(POINT_LAYER, {"field_8": HOME}, location_fields=())["geometry"] is None


def test_table_gets_no_geometry_and_address_lists_become_text():
    feature = _feature(TABLE, {"field_8": [HOME, UNLOCATED]})
    assert feature == {"attributes": {"id": "5f1c0a", "location": "1 Main St, 3 Nowhere"}}


@pytest.mark.parametrize(("formatted", "message"), [
    ({"field_1": "x" * 21}, r"record .*5f1c0a.*field signal_name \(Knack field_1\): the value has 21 characters"),
    ({"field_6": "abc"}, r"field score .* 'abc' is not a number"),
    ({"field_5": 1.5}, r"field count .* 1.5 is not a whole number"),
    ({"field_7": datetime(2024, 1, 1)}, r"modified_at .* needs an aware datetime"),
    ({"field_7": "2024-01-01"}, r"modified_at .* needs an aware datetime"),
    ({"field_5": ["1", "2"]}, r"field count .* a list cannot go into"),
])
def test_values_that_cannot_fit_name_record_and_field(formatted, message):
    with pytest.raises(AgolEditFailed, match=message) as raised:
        _feature(POINT_LAYER, formatted)
    assert raised.value.ids == ["5f1c0a"] and raised.value.layer == "signals"


def test_numbers_and_dates_convert():
    formatted = {"field_5": "1,024", "field_6": True, "field_7": datetime(2024, 6, 1, 12, tzinfo=UTC)}
    attrs = _feature(POINT_LAYER, formatted)["attributes"]
    assert attrs["count"] == 1024 and attrs["score"] == 1.0 and attrs["modified_at"] == 1717243200000


def test_dropped_fields_lists_what_the_layer_cannot_take():
    names = {**NAMES, "field_12": "objectid", "field_13": "id"}
    assert dropped_fields(names, POINT_LAYER.fields) == ["not_in_layer", "objectid", "id"]


def test_a_field_mapped_onto_the_match_field_never_overwrites_the_record_id():
    feature = to_agol_feature("rec1", {"field_1": "other"}, {"field_1": "id"}, POINT_LAYER.fields,
                              geometry_type="point")
    assert feature["attributes"] == {"id": "rec1"}


def test_strip_html():
    assert strip_html("<div>A<br/>B</div>\n\n\n<ul><li>c</li></ul>") == "A\nB\n\nc"
    assert strip_html("<p> </p>") is None
    assert strip_html("5 < 6 &lt; 7") == "5 < 6 < 7"


def test_edit_failures_counts_successes():
    response = {"addResults": [{"objectId": 1, "success": True}],
                "updateResults": [{"objectId": 2, "success": True}, {"objectId": 3, "success": True}],
                "deleteResults": []}
    ids = {"adds": ["a"], "updates": ["b", "c"], "deletes": []}
    assert edit_failures(response, ids) == ({"added": 1, "updated": 2, "deleted": 0}, [])


def test_a_refusal_names_failed_ids_culprits_first():
    response = {"addResults": [
        {"objectId": None, "success": False, "error": {"code": 1003, "description": "Operation rolled back."}},
        {"objectId": None, "success": False, "error": {"code": 1000, "description": "Field 'x' does not exist."}},
    ], "updateResults": [{"objectId": 9, "success": True}], "deleteResults": []}
    counts, failures = edit_failures(response, {"adds": ["a", "b"], "updates": ["c"]})
    assert counts == {"added": 0, "updated": 1, "deleted": 0}
    error = refusal("signals", failures)
    assert isinstance(error, AgolEditFailed) and error.ids == ["b", "a"]
    text = str(error)
    assert "signals" in text and "Field 'x' does not exist. (code 1000) (b: 1 feature)" in text
    assert "Operation rolled back" in text


@pytest.mark.parametrize("response", [
    {"error": {"code": 400, "message": "Unable to complete operation.", "details": ["Operation rolled back."]}},
    None,
    {"addResults": [{"success": True}]},   # one result for two adds
])
def test_envelopes_and_odd_replies_fail_every_row(response):
    _, failures = edit_failures(response, {"adds": ["a", "b"]})
    assert [record_id for record_id, _ in failures] == ["a", "b"]
    assert refusal("signals", failures).ids == ["a", "b"]


def test_where_in_doubles_quotes():
    assert where_in("id", ["a", "O'Brien"]) == "id IN ('a','O''Brien')"


@pytest.mark.parametrize(("exc", "transient", "token"), [
    (Exception("Your request has timed out.\n(Error Code: 504)"), True, False),
    (ValueError({"error": {"code": 503, "message": "Service unavailable"}}), True, False),
    (Exception("Token Required\n(Error Code: 499)"), False, True),
    (Exception("Invalid token.\n(Error Code: 498)"), False, True),
    (ValueError({"error": {"code": 400, "message": "Unable to complete operation."}}), False, False),
    (Exception("Unable to complete operation.\nOperation rolled back.\n(Error Code: 400)"), False, False),
    (ConnectionError("reset"), True, False),
    (AgolEditFailed("signals", ["a"], "Your request has timed out"), False, False),
])
def test_error_classification(exc, transient, token):
    assert is_transient_agol(exc) is transient
    assert is_token_error(exc) is token


def test_error_code_reads_both_client_formats():
    assert error_code(Exception("x\n(Error Code: 504)")) == 504
    assert error_code(ValueError({"error": {"code": 499}})) == 499
    assert error_code(Exception("nothing")) is None
