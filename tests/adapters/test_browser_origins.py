"""Origin confinement for browser grants: what a grant entry is, which URLs pass."""

from __future__ import annotations

import pytest
from aos.adapters.browser_origins import Origin, OriginError, Origins, parse_origin

GRANT = Origins.parse(["http://127.0.0.1:8080", "https://example.test"])


def test_entries_normalise_default_ports_and_case() -> None:
    assert parse_origin("HTTP://LocalHost") == Origin("http", "localhost", 80)
    assert parse_origin("https://example.test/") == Origin("https", "example.test", 443)
    assert str(parse_origin("http://[::1]:9000")) == "http://[::1]:9000"


@pytest.mark.parametrize("entry", [
    "file:///etc", "chrome://settings", "127.0.0.1:8080", "http://h/path", "http://h?q=1",
    "http://u:p@h", "http://h:99999", "http://", "", 8080,
])
def test_bad_entries_are_one_line_errors(entry: object) -> None:
    with pytest.raises(OriginError) as err:
        parse_origin(entry)  # type: ignore[arg-type]
    assert "\n" not in str(err.value)


def test_a_grant_needs_origins() -> None:
    with pytest.raises(OriginError):
        Origins.parse([])


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/", "http://127.0.0.1:8080/login?next=/a#x", "https://example.test:443/x",
    "HTTPS://Example.Test/",
])
def test_granted_origins_pass(url: str) -> None:
    assert GRANT.check_navigation(url) is None
    assert GRANT.check_request(url) is None


@pytest.mark.parametrize("url, why", [
    ("http://127.0.0.1:8081/", "not granted"),  # another port
    ("https://127.0.0.1:8080/", "not granted"),  # another scheme
    ("http://localhost:8080/", "not granted"),  # another name for the same host
    ("http://example.test/", "not granted"),
    ("file:///etc/passwd", "scheme file:"),
    ("chrome://settings", "scheme chrome:"),
    ("javascript:alert(1)", "scheme javascript:"),
    ("view-source:http://127.0.0.1:8080/", "scheme view-source:"),
    ("http://127.0.0.1:bad/", "malformed"),
    ("", "needs a url"),
])
def test_other_urls_are_refused_with_a_reason(url: str, why: str) -> None:
    reason = GRANT.check_navigation(url)
    assert reason is not None and why in reason and "\n" not in reason
    assert GRANT.check_request(url) is not None


def test_inert_in_page_documents_pass_requests_but_are_not_navigation_targets() -> None:
    for url in ("about:blank", "data:text/html,<p>x</p>", "blob:http://127.0.0.1:8080/uuid"):
        assert GRANT.check_request(url) is None
        assert GRANT.check_navigation(url) is not None
