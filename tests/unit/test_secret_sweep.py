"""The secret sweep finds a secret however it was written out: as it is, URL-encoded, in a Basic auth
header, or base64 inside a longer text. A sweep that missed an encoded form would pass a leak."""

from __future__ import annotations

from base64 import b64encode
from urllib.parse import quote, urlencode

import pytest

from tests.faults.harness import AGOL_PASSWORD, SOCRATA_PASSWORD, SOCRATA_USER, find_secrets

pytestmark = pytest.mark.unit

TOKEN = "tok+en/with=odd&chars-3f9a1c"  # an issued token, passed as an extra


@pytest.mark.parametrize("leak", [
    f"password={SOCRATA_PASSWORD}",
    "GET /query?" + urlencode({"token": TOKEN}),
    f"/sharing/rest/generateToken?password={quote(TOKEN, safe='')}",
    "Authorization: Basic " + b64encode(f"{SOCRATA_USER}:{SOCRATA_PASSWORD}".encode()).decode(),
    "Authorization: Basic " + b64encode(f"someone-else:{AGOL_PASSWORD}".encode()).decode(),
    "payload " + b64encode(b'{"k": "' + AGOL_PASSWORD.encode() + b'"}').decode(),
    "payload " + b64encode(b'{"kk": "' + AGOL_PASSWORD.encode() + b'"}').decode(),
    "payload " + b64encode(b'{"kkk": "' + AGOL_PASSWORD.encode() + b'"}').decode(),
], ids=["plain", "query-string", "url-encoded", "basic-auth", "basic-auth-unknown-user", "b64-0", "b64-1", "b64-2"])
def test_the_sweep_finds_a_secret_in_any_encoding(leak: str) -> None:
    assert find_secrets(f"INFO something happened: {leak} (done)", [TOKEN])


def test_the_sweep_passes_text_with_no_secret() -> None:
    text = ("Authorization: Basic " + b64encode(f"{SOCRATA_USER}:not-the-password".encode()).decode()
            + " token=*** password=<hidden> " + quote("a/b c", safe=""))
    assert find_secrets(text, [TOKEN]) == []
