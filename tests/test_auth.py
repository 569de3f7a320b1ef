"""Bearer keys: parsing the configured entries, resolving a caller's tenant, `inferq keys new`."""

import hashlib

import pytest

from inferq.cli import main
from results_api.auth import Keys, hash_key, new_key, parse_keys, visible
from results_api.errors import ApiError
from schemas import ErrorCode

KEY_A = "iq_key-of-tenant-a"
KEY_A2 = "iq_rotated-key-of-tenant-a"
KEY_B = "iq_key-of-tenant-b"
CONFIG = f"acme:{hash_key(KEY_A)}, acme:{hash_key(KEY_A2)}\n  globex:{hash_key(KEY_B)}"


def _refusal(keys: Keys, authorization: str | None) -> ApiError:
    with pytest.raises(ApiError) as caught:
        keys.tenant_of(authorization)
    return caught.value


def test_hash_key_is_sha256_hex_of_utf8() -> None:
    assert hash_key("clé") == hashlib.sha256("clé".encode()).hexdigest()
    assert hash_key("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_new_key_is_prefixed_random_and_urlsafe() -> None:
    first, second = new_key(), new_key()
    assert first.startswith("iq_")
    assert len(first) == 3 + 43
    assert first != second
    assert set(first[3:]) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_parse_keys_reads_commas_and_whitespace() -> None:
    assert parse_keys(CONFIG) == {
        hash_key(KEY_A): "acme",
        hash_key(KEY_A2): "acme",
        hash_key(KEY_B): "globex",
    }


@pytest.mark.parametrize("text", ["", "  ", " , ,\n"])
def test_parse_keys_of_nothing_is_empty(text: str) -> None:
    assert parse_keys(text) == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            hash_key(KEY_A),
            "INFERQ_API_KEYS entry 1: expected tenant:sha256-hex, found no ':'",
        ),
        (
            f"acme:{hash_key(KEY_A)},-bad:{hash_key(KEY_B)}",
            "INFERQ_API_KEYS entry 2: tenant '-bad' must be 1-64 letters, digits, '.', '_' or "
            "'-', starting with a letter or digit",
        ),
        (
            f":{hash_key(KEY_A)}",
            "INFERQ_API_KEYS entry 1: tenant '' must be 1-64 letters, digits, '.', '_' or "
            "'-', starting with a letter or digit",
        ),
        (
            f"acme:{hash_key(KEY_A).upper()}",
            "INFERQ_API_KEYS entry 1: after the tenant and ':' expected the key's SHA-256 as 64 "
            "lowercase hex characters",
        ),
        (
            f"acme:{hash_key(KEY_A)[:63]}",
            "INFERQ_API_KEYS entry 1: after the tenant and ':' expected the key's SHA-256 as 64 "
            "lowercase hex characters",
        ),
        (
            f"acme:{KEY_A}",
            "INFERQ_API_KEYS entry 1: after the tenant and ':' expected the key's SHA-256 as 64 "
            "lowercase hex characters",
        ),
        (
            f"acme:{hash_key(KEY_A)} globex:{hash_key(KEY_A)}",
            "INFERQ_API_KEYS entry 2: the same key is listed for tenants 'acme' and 'globex'",
        ),
    ],
)
def test_parse_keys_rejects_a_malformed_entry_without_echoing_it(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=r"^INFERQ_API_KEYS entry \d: ") as caught:
        parse_keys(text)
    assert str(caught.value) == message
    assert hash_key(KEY_A) not in message.lower()
    assert KEY_A not in message


def test_the_same_entry_twice_is_one_key() -> None:
    assert parse_keys(f"acme:{hash_key(KEY_A)},acme:{hash_key(KEY_A)}") == {hash_key(KEY_A): "acme"}


def test_keys_init_raises_for_bad_text() -> None:
    with pytest.raises(ValueError, match=r"^INFERQ_API_KEYS entry 1: expected tenant:sha256-hex"):
        Keys("acme")


def test_without_keys_authentication_is_off() -> None:
    keys = Keys("")
    assert keys.enabled is False
    assert keys.tenant_of(None) is None
    assert keys.tenant_of(f"Bearer {KEY_A}") is None
    assert keys.tenant_of("Basic dXNlcjpwdw==") is None


def test_a_key_maps_to_its_own_tenant() -> None:
    keys = Keys(CONFIG)
    assert keys.enabled is True
    assert keys.tenant_of(f"Bearer {KEY_A}") == "acme"
    assert keys.tenant_of(f"Bearer {KEY_B}") == "globex"


def test_rotation_two_keys_of_one_tenant_both_work() -> None:
    keys = Keys(CONFIG)
    assert keys.tenant_of(f"Bearer {KEY_A}") == "acme"
    assert keys.tenant_of(f"Bearer {KEY_A2}") == "acme"


@pytest.mark.parametrize("header", [f"bearer {KEY_A}", f"BEARER {KEY_A}", f"  Bearer   {KEY_A} "])
def test_the_scheme_is_case_insensitive(header: str) -> None:
    assert Keys(CONFIG).tenant_of(header) == "acme"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "missing bearer key"),
        ("", "missing bearer key"),
        ("   ", "missing bearer key"),
        ("Basic dXNlcjpwdw==", "expected Authorization: Bearer <key>"),
        (KEY_A, "expected Authorization: Bearer <key>"),
        ("Bearer", "missing bearer key"),
        ("Bearer   ", "missing bearer key"),
        ("Bearer iq_not-a-configured-key", "unknown API key"),
        (f"Bearer {hash_key(KEY_A)}", "unknown API key"),
        (f"Bearer {KEY_A}x", "unknown API key"),
    ],
)
def test_refusals_are_401_with_a_bearer_challenge(header: str | None, message: str) -> None:
    error = _refusal(Keys(CONFIG), header)
    assert error.status == 401
    assert error.code is ErrorCode.UNAUTHORIZED
    assert error.message == message
    assert error.headers == {"WWW-Authenticate": "Bearer"}


def test_visible_with_authentication_off_is_everything() -> None:
    assert visible("acme", None, keys_enabled=False) is True
    assert visible(None, None, keys_enabled=False) is True


def test_visible_with_authentication_on_is_the_callers_tenant_only() -> None:
    assert visible("acme", "acme", keys_enabled=True) is True
    assert visible("acme", "globex", keys_enabled=True) is False
    assert visible(None, "acme", keys_enabled=True) is False
    assert visible("acme", None, keys_enabled=True) is False


def test_cli_keys_new_prints_a_key_and_its_entry(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "new", "acme.prod-1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    key_line, entry_line = out
    assert key_line.startswith("key: iq_")
    assert entry_line.startswith("entry: acme.prod-1:")
    key = key_line.removeprefix("key: ")
    keys = Keys(entry_line.removeprefix("entry: "))
    assert keys.tenant_of(f"Bearer {key}") == "acme.prod-1"
    assert parse_keys(entry_line.removeprefix("entry: ")) == {hash_key(key): "acme.prod-1"}


def test_cli_keys_new_rejects_a_bad_tenant(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "new", "no spaces"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "error: tenant 'no spaces' must be 1-64 letters, digits, '.', '_' or '-', "
        "starting with a letter or digit\n"
    )
