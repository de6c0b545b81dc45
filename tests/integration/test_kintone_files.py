"""Files into kintone in two steps, against the stand-in over real HTTP: the client uploads
(POST file.json, multipart) and gets a temporary fileKey; a FILE field's value attaches it, in a
record or in a table row; the stored file is downloaded by the key GET record gives."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from services.devtools.kintone_standin import Field, KintoneDomain, KintoneStandin
from services.recorder.adapters.kintone import (
    KintoneAuthError,
    KintoneClient,
    KintoneError,
    KintoneValidationError,
)

APP = 40
OTHER_APP = 41
TOKEN = "FilesTokenA1b2C3d4E5f6G7h8I9j0KlMnOpQr"
OTHER_TOKEN = "OtherTokenZ9y8X7w6V5u4T3s2R1q0PoNmLkJi"
MP3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(range(256)) * 40  # not text: bytes survive
CALLS = Field(
    "SUBTABLE",
    fields={"CallSid": Field("SINGLE_LINE_TEXT"), "録音": Field("FILE")},
)


@pytest.fixture
def domain() -> KintoneDomain:
    kintone = KintoneDomain()
    kintone.add_app(APP, {"name": Field("SINGLE_LINE_TEXT"), "録音": Field("FILE"), "calls": CALLS})
    kintone.add_app(OTHER_APP, {"name": Field("SINGLE_LINE_TEXT")})
    kintone.add_token(TOKEN, APP, view=True, add=True, edit=True)
    kintone.add_token(OTHER_TOKEN, OTHER_APP, view=True)
    return kintone


@pytest.fixture
async def standin(domain: KintoneDomain) -> AsyncIterator[KintoneStandin]:
    async with KintoneStandin(domain) as server:
        yield server


@pytest.fixture
async def client(standin: KintoneStandin) -> AsyncIterator[KintoneClient]:
    async with KintoneClient(standin.base_url, [TOKEN], backoff_base_s=0.001) as kintone:
        yield kintone


async def download(base_url: str, file_key: str, token: str = TOKEN) -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{base_url}/k/v1/file.json",
            params={"fileKey": file_key},
            headers={"X-Cybozu-API-Token": token},
        ) as response,
    ):
        return response.status, await response.read()


async def test_an_upload_attaches_to_a_field_and_downloads_as_sent(
    client: KintoneClient, domain: KintoneDomain, standin: KintoneStandin
) -> None:
    key = await client.upload_file(APP, "CA01.mp3", "audio/mpeg", MP3)
    record_id = domain.add_record(APP, {"name": {"value": "Yamada"}})
    await client.update_record(APP, record_id, {"録音": {"value": [{"fileKey": key}]}})
    record, _ = await client.get_record(APP, record_id)
    [stored] = record["録音"]["value"]
    assert stored["name"] == "CA01.mp3"
    assert stored["contentType"] == "audio/mpeg"
    assert stored["size"] == str(len(MP3))
    assert stored["fileKey"] != key  # the stored file has a key of its own
    status, body = await download(standin.base_url, stored["fileKey"])
    assert (status, body) == (200, MP3)
    # Another app's token may not read it.
    status, _ = await download(standin.base_url, stored["fileKey"], OTHER_TOKEN)
    assert status == 403


async def test_a_table_row_takes_a_file_and_the_other_rows_keep_theirs(
    client: KintoneClient, domain: KintoneDomain
) -> None:
    first = await client.upload_file(APP, "CA01.mp3", "audio/mpeg", MP3)
    record_id = domain.add_record(
        APP,
        {
            "calls": {
                "value": [
                    {
                        "value": {
                            "CallSid": {"value": "CA01"},
                            "録音": {"value": [{"fileKey": first}]},
                        }
                    }
                ]
            }
        },
    )
    record, revision = await client.get_record(APP, record_id)
    [row] = record["calls"]["value"]
    second = await client.upload_file(APP, "CA02.mp3", "audio/mpeg", MP3[:100])
    rows = [
        {"id": row["id"]},  # sent by id only: kept as it is, its file too
        {"value": {"CallSid": {"value": "CA02"}, "録音": {"value": [{"fileKey": second}]}}},
    ]
    await client.update_record(APP, record_id, {"calls": {"value": rows}}, revision)
    after, _ = await client.get_record(APP, record_id)
    files = [r["value"]["録音"]["value"] for r in after["calls"]["value"]]
    assert [[f["name"] for f in row_files] for row_files in files] == [["CA01.mp3"], ["CA02.mp3"]]


async def test_an_unknown_or_used_key_refuses_the_whole_write(
    client: KintoneClient, domain: KintoneDomain
) -> None:
    record_id = domain.add_record(APP, {"name": {"value": "before"}})
    with pytest.raises(KintoneError) as unknown:
        await client.update_record(
            APP, record_id, {"name": {"value": "after"}, "録音": {"value": [{"fileKey": "nope"}]}}
        )
    assert unknown.value.code == "GAIA_BL01"
    assert domain.record(APP, record_id)["name"]["value"] == "before"
    key = await client.upload_file(APP, "a.mp3", "audio/mpeg", MP3)
    await client.update_record(APP, record_id, {"録音": {"value": [{"fileKey": key}]}})
    with pytest.raises(KintoneError) as used:  # a temporary key attaches once
        await client.update_record(APP, record_id, {"録音": {"value": [{"fileKey": key}]}})
    assert used.value.code == "GAIA_BL01"
    with pytest.raises(KintoneValidationError):
        await client.update_record(APP, record_id, {"録音": {"value": "a.mp3"}})


async def test_uploads_are_retried_and_need_a_known_token(
    client: KintoneClient, domain: KintoneDomain, standin: KintoneStandin
) -> None:
    domain.fail_next(500, 503)
    key = await client.upload_file(APP, "b.mp3", "audio/mpeg", MP3)
    assert domain.uploads[key].data == MP3
    assert domain.request_count(method="POST", path="/file.json") == 3
    async with KintoneClient(standin.base_url, ["UnknownTokenQ1w2E3r4T5y6U7i8O9p0"]) as stranger:
        with pytest.raises(KintoneAuthError):
            await stranger.upload_file(APP, "c.mp3", "audio/mpeg", MP3)


async def test_the_recording_never_appears_in_the_clients_repr_or_errors(
    client: KintoneClient, domain: KintoneDomain
) -> None:
    domain.fail_next(400)
    with pytest.raises(KintoneError) as error:
        await client.upload_file(APP, "d.mp3", "audio/mpeg", b"secret words of the customer")
    assert "secret words" not in str(error.value) + repr(error.value) + repr(client)
