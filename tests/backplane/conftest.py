"""Fixtures for the Redis backplane tests; the helpers live in ``redis_helpers``."""

from __future__ import annotations

from redis_helpers import prefix, private_redis, shared_redis_url

__all__ = ["prefix", "private_redis", "shared_redis_url"]
