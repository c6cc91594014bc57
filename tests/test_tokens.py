import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from drip.errors import TokenError
from drip.tokens import IDS, Purpose, link_values, make_dotted_token, make_token, read_token

KEY = "k" * 32


@given(st.integers(0, 10**12), st.integers(0, 99), st.sampled_from(list(Purpose)))
@hsettings(max_examples=200, deadline=None)
def test_round_trip(delivery: int, index: int, purpose: Purpose) -> None:
    ids = (delivery, index)[: IDS[purpose]]
    assert read_token(KEY, purpose, make_token(KEY, purpose, *ids)) == ids


@pytest.mark.parametrize("purpose", list(Purpose))
def test_a_signed_token_of_another_shape_is_refused(purpose: Purpose) -> None:
    for ids in ((5,), (5, 1), (5, 1, 2)):
        token = make_token(KEY, purpose, *ids)
        if len(ids) == IDS[purpose]:
            assert read_token(KEY, purpose, token) == ids
        else:
            with pytest.raises(TokenError):
                read_token(KEY, purpose, token)


def test_a_previous_key_verifies_and_an_empty_one_never_does() -> None:
    old = make_token("old-key-0123456789abcdef", Purpose.confirm, 9)
    assert read_token((KEY, "old-key-0123456789abcdef"), Purpose.confirm, old) == (9,)
    forged = make_token("", Purpose.confirm, 9)
    with pytest.raises(TokenError):
        read_token((KEY, ""), Purpose.confirm, forged)


@given(st.integers(0, 10**9), st.data())
@hsettings(max_examples=300, deadline=None)
def test_one_changed_character_fails(delivery: int, data: st.DataObject) -> None:
    token = make_token(KEY, Purpose.confirm, delivery)
    i = data.draw(st.integers(0, len(token) - 1))
    c = data.draw(st.sampled_from("0123456789-._ABCabcxyzXYZ"))
    if token[i] == c:
        return
    with pytest.raises(TokenError):
        read_token(KEY, Purpose.confirm, token[:i] + c + token[i + 1 :])


def test_purpose_and_key_are_bound() -> None:
    token = make_token(KEY, Purpose.open, 42)
    with pytest.raises(TokenError):
        read_token(KEY, Purpose.unsubscribe, token)
    with pytest.raises(TokenError):
        read_token("another-key-0123456789", Purpose.open, token)


def test_token_holds_no_address_and_is_short() -> None:
    token = make_token(KEY, Purpose.click, 7, 1)
    assert "@" not in token and "." not in token
    assert len(make_token(KEY, Purpose.answer, 123_456_789, 4)) <= 28
    assert len(token) < len(make_dotted_token(KEY, Purpose.click, 7, 1))


@given(st.integers(0, 10**12), st.integers(0, 99), st.sampled_from(list(Purpose)))
@hsettings(max_examples=200, deadline=None)
def test_links_sent_with_the_dotted_form_still_verify(
    delivery: int, index: int, purpose: Purpose
) -> None:
    ids = (delivery, index)[: IDS[purpose]]  # each purpose's own shape
    token = make_dotted_token(KEY, purpose, *ids)
    assert read_token(KEY, purpose, token) == ids


@given(st.integers(0, 10**9), st.data())
@hsettings(max_examples=300, deadline=None)
def test_one_changed_character_of_a_dotted_token_fails(delivery: int, data: st.DataObject) -> None:
    token = make_dotted_token(KEY, Purpose.confirm, delivery)
    i = data.draw(st.integers(0, len(token) - 1))
    c = data.draw(st.sampled_from("0123456789-._ABCabcxyzXYZ"))
    if token[i] == c:
        return
    with pytest.raises(TokenError):
        read_token(KEY, Purpose.confirm, token[:i] + c + token[i + 1 :])


@given(st.binary(min_size=16, max_size=30))
@hsettings(max_examples=300, deadline=None)
def test_random_compact_tokens_are_refused(data: bytes) -> None:
    import base64

    token = base64.urlsafe_b64encode(data).decode().rstrip("=")
    with pytest.raises(TokenError):
        read_token(KEY, Purpose.open, token)


def test_tokens_keep_the_bytes_of_the_links_already_sent() -> None:
    # Links in mail already delivered must go on working: a change in how a token is computed
    # (its MAC, its varints, its base64) shows here, not in a reader's inbox. Values made by the
    # module as it was before its MAC took each purpose's prefix in ahead of time.
    key = "known-answer-secret"
    assert make_token(key, Purpose.open, 42) == "KvpRvaoY5C3n0Rk_Zuj5Uh4"
    assert make_token(key, Purpose.answer, 123456789, 3) == "lZrvOgMC1Be4_v-kjIPXJVPTZpff"
    assert link_values("https://learn.example.com", key, 7, 1, 1) == {
        "OPEN": "https://learn.example.com/o/B_Tg9N1B__KKBMjfAR8V6EY.gif",
        "CONFIRM": "https://learn.example.com/r/BwMYgWGTj68F_Ys3cKFgd00",
        "PAUSE": "https://learn.example.com/p/B0ef9ASMA-V12f1rP1xH0nc",
        "UNSUBSCRIBE": "https://learn.example.com/u/B3XpXwscCIiem7Uly0Qa3o4",
        "SCHEDULE": "https://learn.example.com/t/ByeSIANbaOnYciukyd9D8q8",
        "ANSWER-0": "https://learn.example.com/a/BwAJSziQCja0J_WFUKHBXeVW",
        "LINK-0": "https://learn.example.com/c/BwDMNZm7-sA5Gqh0COtLW8HD",
    }
    assert read_token(key, Purpose.answer, "lZrvOgMC1Be4_v-kjIPXJVPTZpff") == (123456789, 3)
