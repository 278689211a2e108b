"""Conversation state that stays correct when several `rasa run` replicas share it.

`atomic_redis_lock_store` replaces Rasa's `RedisLockStore`, whose GET/modify/SET
ticket updates can hand two replicas the same ticket (its Lua scripts live in
`redis_lock_scripts`, its endpoint settings in `redis_lock_settings`);
`strict_tracker_store` makes database outages raise instead of continuing with an
empty conversation; `inner_store` builds the store a wrapping store (linking, masking)
wraps; `store_startup` turns a missing driver or a misspelt store type into a start-up
error instead of Rasa's in-memory fallback.
"""
