"""Configuration: this class, then the environment, then the caller's override."""
from __future__ import annotations

import os


class Config:
    SECRET_KEY = "dev-only-change-me"
    DATABASE_URL = "sqlite:///alliance.db"
    REDIS_URL = ""
    RATELIMIT_DEFAULT = "1200 per minute"
    RATELIMIT_STORAGE_URI = "memory://"
    RATELIMIT_ENABLED = True
    MAX_CONTENT_LENGTH = 64 * 1024
    ACCESS_TOKEN_TTL = 3600
    LOG_LEVEL = "INFO"
    SEED_DEMO = True
    DEMO_DATA_FILE = ""
    CELERY_TASK_ALWAYS_EAGER = True
    PAGE_SIZE_MAX = 200

    API_TITLE = "Alliance loyalty partner API"
    API_VERSION = "v1"
    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = "/"
    OPENAPI_JSON_PATH = "api/v1/openapi.json"
    OPENAPI_SWAGGER_UI_PATH = "api/docs"
    OPENAPI_SWAGGER_UI_URL = "/api/docs/assets/"


#: Environment variables read at start-up, with their meaning (the README lists them).
ENVIRONMENT = {
    "DATABASE_URL": "SQLAlchemy URL; default sqlite:///alliance.db under instance/",
    "SECRET_KEY": "secret for signing; must be set in production",
    "REDIS_URL": "Redis for rate limits and the Celery broker; memory/eager when empty",
    "ACCESS_TOKEN_TTL": "lifetime of OAuth2 access tokens in seconds (default 3600)",
    "RATELIMIT_DEFAULT": "per-client limit, Flask-Limiter syntax (default 1200 per minute)",
    "LOG_LEVEL": "logging level (default INFO)",
    "SEED_DEMO": "seed the demo alliance into an empty database on `flask seed-demo` (default 1)",
}

_INT = {"ACCESS_TOKEN_TTL", "MAX_CONTENT_LENGTH", "PAGE_SIZE_MAX"}
_BOOL = {"SEED_DEMO", "RATELIMIT_ENABLED", "CELERY_TASK_ALWAYS_EAGER"}


def from_environment(environ=os.environ) -> dict:
    """Return the settings the environment overrides."""
    out = {}
    for name in list(ENVIRONMENT) + ["MAX_CONTENT_LENGTH", "PAGE_SIZE_MAX", "RATELIMIT_ENABLED"]:
        if name not in environ:
            continue
        raw = environ[name]
        if name in _INT:
            out[name] = int(raw)
        elif name in _BOOL:
            out[name] = raw.strip().lower() in {"1", "true", "yes", "on"}
        else:
            out[name] = raw
    if out.get("REDIS_URL"):
        out.setdefault("RATELIMIT_STORAGE_URI", out["REDIS_URL"])
    return out
