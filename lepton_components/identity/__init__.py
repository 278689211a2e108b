"""One customer, many channels: linked conversations share chosen slots and the active form.

`link_codes` makes and checks one-time codes, `link_registry` keeps codes, links and
shared values in SQL, `shared_state` turns tracker changes into shared values and back
into events, `linked_tracker_store` wraps the configured tracker store to do the
sharing, and `link_commands` answers `/link` and `/unlink` in any channel.
See docs/identity.md.
"""
