"""Conversation state that stays correct when several `rasa run` replicas share it.

`atomic_redis_lock_store` replaces Rasa's `RedisLockStore`, whose GET/modify/SET
ticket updates can hand two replicas the same ticket; `strict_tracker_store` makes
database outages raise instead of continuing with an empty conversation;
`inner_store` builds the store a wrapping store (linking, masking) wraps.
"""
