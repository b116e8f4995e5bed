"""The `[gateway]` section of the policy file, as typed, bounded settings.

Kept here, with the mappings it parameterizes, so `operators/policy.py` can embed it as
`gateway: GatewayConfig = GatewayConfig()` without importing any I/O.
"""

from typing import Annotated

from msgspec import Meta, Struct, field

from operators.providers.segment import DEFAULT_TRACK

TrackType = Annotated[
    str, Meta(pattern=r"^(form_submit|proposal_view|content_download|chat_started|meeting_booked)$")
]


class GatewayConfig(
    Struct, kw_only=True, frozen=True, forbid_unknown_fields=True, omit_defaults=True
):
    """Ingestion gateway settings (CONTRACT.md section 7; README "The gateway").

    `dedupe_hours` keeps a marker per appended event id and prospect so a provider's retry, or
    the spool drained again after a crash, appends nothing twice (providers retry for a day at
    most: SendGrid 24 h, Mailgun 8 h); `parked_days` bounds how long an event for an address no
    profile holds yet waits for one. Secrets are named by the environment variables that hold
    them (section 7's table), never written here.
    """

    public_url: str | None = None
    max_body_bytes: Annotated[int, Meta(ge=1024, le=256 * 1024 * 1024)] = 5 * 1024 * 1024
    spool_dir: str = ".touchflow/gateway-spool"
    dedupe_hours: Annotated[int, Meta(ge=1, le=24 * 30)] = 48
    parked_days: Annotated[int, Meta(ge=1, le=365)] = 30
    signature_max_age_s: Annotated[int, Meta(ge=1, le=3600)] = 300
    segment_track: dict[str, TrackType] = field(default_factory=lambda: dict(DEFAULT_TRACK))
    secrets: dict[str, str] = {}
