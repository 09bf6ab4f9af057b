"""LiteLLM custom auth for the rate-limited proxy (`litellm-keys`) that start.sh runs.

Without a database LiteLLM has no virtual keys, so nothing can carry a per-key `rpm_limit`;
a custom auth function is LiteLLM's documented way to hand one to its own rate limiter (the
parallel request limiter, v3), which then enforces it and answers 429 exactly as it does for
database keys. One key exists: $LITELLM_LIMITED_KEY, limited to $LITELLM_LIMITED_RPM requests
per window ($LITELLM_RATE_LIMIT_WINDOW_SIZE seconds). Any other key is refused with LiteLLM's
own 401 error (a plain exception here would become a 500: the proxy's auth error handler
imports `prisma`, which `litellm[proxy]` does not install).
"""

import os

from litellm.proxy._types import ProxyErrorTypes, ProxyException, UserAPIKeyAuth


async def user_api_key_auth(request, api_key: str) -> UserAPIKeyAuth:
    key = (api_key or "").removeprefix("Bearer ").strip()
    if key and key == os.environ.get("LITELLM_LIMITED_KEY"):
        return UserAPIKeyAuth(
            api_key=key,
            key_alias="rate-limited-test-key",
            rpm_limit=int(os.environ.get("LITELLM_LIMITED_RPM", "1")),
        )
    raise ProxyException(
        message="Authentication Error: invalid key for the rate-limited test proxy",
        type=ProxyErrorTypes.auth_error,
        param="api_key",
        code=401,
    )
