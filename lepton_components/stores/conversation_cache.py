"""Recently used conversations kept in memory, checked against the database before use.

Rasa's SQL tracker store rebuilds the whole conversation on every message: it reads every
event row of the session, parses its JSON and turns it into an `Event` (about 10 ms for a
20-message conversation), although the same process saved that very conversation a moment
earlier. The cache keeps what was saved. It never answers on its own authority: each entry
carries the id of the conversation's newest event row, and the store compares it with the
database's (one indexed `max(id)` query) before using the entry, so an event another
replica appended, or a conversation deleted behind the store's back, is read from the
database as before.

Rasa-free: entries hold any object; the store decides what goes in.
"""

import collections
import dataclasses
from typing import Any, Generic, Optional, OrderedDict, Text, TypeVar

Snapshot = TypeVar("Snapshot")


@dataclasses.dataclass(frozen=True)
class CachedConversation(Generic[Snapshot]):
    """One conversation as the database held it after the store's last read or write.

    ``newest_row_id``: id of the conversation's newest event row (the version check);
    ``stored_events``: how many events of the latest session the database holds, so a save
    needs no count query; ``snapshot``: what `retrieve` would rebuild from those rows.
    """

    newest_row_id: int
    stored_events: int
    snapshot: Snapshot


class ConversationCache(Generic[Snapshot]):
    """Least recently used conversations, at most ``capacity`` (0 keeps none)."""

    def __init__(self, capacity: int) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 0:
            raise ValueError(f"The cache capacity must be a whole number >= 0, got {capacity!r}.")
        self.capacity = capacity
        self._entries: OrderedDict[Text, CachedConversation[Snapshot]] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, sender_id: Text, newest_row_id: Optional[int]) -> Optional[CachedConversation[Snapshot]]:
        """The entry, if the database's newest row for the conversation is still the entry's;
        a stale entry is dropped."""
        entry = self._entries.get(sender_id)
        if entry is None:
            return None
        if entry.newest_row_id != newest_row_id:
            del self._entries[sender_id]
            return None
        self._entries.move_to_end(sender_id)
        return entry

    def put(self, sender_id: Text, entry: CachedConversation[Snapshot]) -> None:
        if not self.capacity:
            return
        self._entries[sender_id] = entry
        self._entries.move_to_end(sender_id)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def forget(self, sender_id: Text) -> None:
        self._entries.pop(sender_id, None)

    def __contains__(self, sender_id: Any) -> bool:
        return sender_id in self._entries
