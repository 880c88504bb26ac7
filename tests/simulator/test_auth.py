"""Authentication: classic Basic, apikey Basic, IAM bearer tokens and their expiry."""

from __future__ import annotations

import aiohttp

from exporter.simulator import Scenario, SimulatorServer
from tests.simulator.conftest import Client

GRANT = "urn:ibm:params:oauth:grant-type:apikey"


async def token(client: Client, api_key: str) -> tuple[int, dict[str, object]]:
    async with client.session.post(
        client.sim.iam_token_url, data={"grant_type": GRANT, "apikey": api_key}
    ) as r:
        return r.status, await r.json()


def bearer(value: object) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


async def test_classic_basic_auth(client: Client, scenario: Scenario) -> None:
    """username:apikey Basic auth identifies the account."""
    for acct in scenario.accounts:
        answer = await client.get("SoftLayer_Account/getObject.json", acct, objectMask="mask[id]")
        assert answer.json == {"id": acct.id}


async def test_wrong_key_is_401_with_softlayer_body(client: Client, scenario: Scenario) -> None:
    """A wrong key answers HTTP 401 with the invalid-token body."""
    acct = scenario.accounts[0]
    answer = await client.get(
        "SoftLayer_Account/getObject.json",
        headers={"Authorization": aiohttp.encode_basic_auth(acct.username, "f" * 64)},
    )
    assert answer.status == 401
    assert answer.json == {
        "error": "Invalid API token.",
        "code": "SoftLayer_Exception_InvalidLegacyToken",
    }


async def test_missing_or_garbled_auth(client: Client) -> None:
    """No credentials is 401 Access Denied; a garbled header or unknown scheme is 401 too."""
    missing = await client.get("SoftLayer_Account/getObject.json")
    garbled = await client.get(
        "SoftLayer_Account/getObject.json", headers={"Authorization": "Basic !!!notbase64"}
    )
    no_colon = await client.get(
        "SoftLayer_Account/getObject.json", headers={"Authorization": "Basic dXNlcg=="}
    )
    digest = await client.get(
        "SoftLayer_Account/getObject.json", headers={"Authorization": "Digest abc"}
    )
    assert missing.status == 401
    assert missing.json == {"error": "Access Denied. ", "code": "SoftLayer_Exception_Public"}
    for answer in (garbled, no_colon, digest):
        assert answer.status == 401
        assert answer.json["code"] == "SoftLayer_Exception_InvalidLegacyToken"


async def test_apikey_basic_auth(client: Client, scenario: Scenario) -> None:
    """The literal user `apikey` with the IBM Cloud API key works; a wrong key is 401."""
    acct = scenario.accounts[1]
    good = await client.get(
        "SoftLayer_Account/getObject.json",
        headers={"Authorization": aiohttp.encode_basic_auth("apikey", acct.iam_api_key)},
        objectMask="mask[id]",
    )
    bad = await client.get(
        "SoftLayer_Account/getObject.json",
        headers={"Authorization": aiohttp.encode_basic_auth("apikey", "nope")},
    )
    assert good.json == {"id": acct.id}
    assert bad.status == 401


async def test_iam_token_exchange_and_bearer(client: Client, scenario: Scenario) -> None:
    """An API-key grant returns an IAM-shaped token that authenticates as Bearer."""
    acct = scenario.accounts[0]
    status, body = await token(client, acct.iam_api_key)
    assert status == 200
    assert body["token_type"] == "Bearer"
    assert body["refresh_token"] == "not_supported"
    assert body["expires_in"] == 3600
    answer = await client.get(
        "SoftLayer_Account/getObject.json",
        headers=bearer(body["access_token"]),
        objectMask="mask[id]",
    )
    assert answer.json == {"id": acct.id}
    assert client.sim.stats.token_requests == 1


async def test_token_endpoint_errors(client: Client) -> None:
    """Unknown keys, missing keys and other grant types answer IAM's 400 error shape."""
    status, body = await token(client, "no-such-key")
    assert status == 400
    assert body["errorCode"] == "BXNIM0415E"
    assert body["errorMessage"] == "Provided API key could not be found."
    async with client.session.post(client.sim.iam_token_url, data={"grant_type": GRANT}) as r:
        assert r.status == 400
        assert (await r.json())["errorCode"] == "BXNIM0109E"
    async with client.session.post(
        client.sim.iam_token_url, data={"grant_type": "refresh_token", "refresh_token": "x"}
    ) as r:
        assert r.status == 400
        assert "grant_type" in (await r.json())["errorMessage"]


async def test_expired_token_is_http_500_access_token_validation(scenario: Scenario) -> None:
    """With a zero TTL the token is already expired: HTTP 500 ...AccessTokenValidation."""
    async with (
        SimulatorServer(scenario, token_ttl_seconds=0) as sim,
        aiohttp.ClientSession() as session,
    ):
        client = Client(sim, session)
        status, body = await token(client, scenario.accounts[0].iam_api_key)
        assert status == 200
        answer = await client.get(
            "SoftLayer_Account/getObject.json", headers=bearer(body["access_token"])
        )
    assert answer.status == 500
    assert answer.json == {
        "error": "Expired Token",
        "code": "SoftLayer_Exception_Account_Authentication_AccessTokenValidation",
    }


async def test_expire_tokens_and_re_exchange(client: Client, scenario: Scenario) -> None:
    """expire_tokens() invalidates issued tokens; exchanging the key again recovers."""
    key = scenario.accounts[0].iam_api_key
    _, first = await token(client, key)
    assert client.sim.expire_tokens() == 1
    expired = await client.get(
        "SoftLayer_Account/getObject.json", headers=bearer(first["access_token"])
    )
    _, second = await token(client, key)
    fresh = await client.get(
        "SoftLayer_Account/getObject.json", headers=bearer(second["access_token"])
    )
    assert expired.status == 500
    assert (
        expired.json["code"] == "SoftLayer_Exception_Account_Authentication_AccessTokenValidation"
    )
    assert fresh.status == 200


async def test_unknown_bearer_token(client: Client) -> None:
    """A token the simulator never issued fails token validation (HTTP 500)."""
    answer = await client.get("SoftLayer_Account/getObject.json", headers=bearer("made-up"))
    assert answer.status == 500
    assert answer.json == {
        "error": "Invalid Token",
        "code": "SoftLayer_Exception_Account_Authentication_AccessTokenValidation",
    }
