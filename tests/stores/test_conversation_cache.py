"""The in-memory conversation cache answers only for the database's newest row, and evicts
the least recently used conversation first."""

import pytest

from lepton_components.stores.conversation_cache import CachedConversation, ConversationCache


def entry(row: int, snapshot: str = "s") -> CachedConversation:
    return CachedConversation(newest_row_id=row, stored_events=row, snapshot=snapshot)


def test_an_entry_is_used_only_while_the_database_has_no_newer_row() -> None:
    cache = ConversationCache(10)
    cache.put("a", entry(5))
    assert cache.get("a", 5).snapshot == "s"
    assert cache.get("a", 6) is None
    # A stale entry is dropped, so even the old row id no longer finds it.
    assert cache.get("a", 5) is None and "a" not in cache
    cache.put("b", entry(3))
    assert cache.get("b", None) is None  # the conversation was deleted


def test_the_least_recently_used_conversation_is_evicted_first() -> None:
    cache = ConversationCache(2)
    cache.put("a", entry(1))
    cache.put("b", entry(1))
    cache.get("a", 1)
    cache.put("c", entry(1))
    assert ("a" in cache, "b" in cache, "c" in cache) == (True, False, True)
    assert len(cache) == 2


def test_capacity_zero_keeps_nothing_and_a_bad_capacity_is_refused() -> None:
    cache = ConversationCache(0)
    cache.put("a", entry(1))
    assert cache.get("a", 1) is None
    for bad in (-1, 1.5, True, "10"):
        with pytest.raises(ValueError, match="whole number >= 0"):
            ConversationCache(bad)
