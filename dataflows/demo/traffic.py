"""The random prospects of the simulated traffic: who they are and what they do, as tables.

`simulate.generate` assembles a day from these; they live apart because they are the model
(the weights, the follow-ups, the local-time pull towards working hours) while `simulate` is the
assembly (stories, ordering, redeliveries, files). Generation sits on the benchmark path
(millions of events), so times are integer seconds from `start`, timestamps are built from a
cached per-hour prefix plus a precomputed "MM:SSZ" table instead of datetime formatting, and
weighted choices are lookups in flat tables. Every draw comes from the one `random.Random` the
caller passes in `Gen`, in a fixed order: a seed names one exact day.
"""

import random
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

EventDict = dict[str, object]

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MMSS: Final = tuple(f"{m:02d}:{s:02d}Z" for m in range(60) for s in range(60))
_TABLE: Final = 1024


def _table(weights: Sequence[tuple[str, float]]) -> tuple[str, ...]:
    """A flat lookup table: `table[int(random() * len)]` is a weighted choice in one index."""
    total = sum(w for _, w in weights)
    out: list[str] = []
    cum = 0.0
    for value, w in weights:
        cum += w / total
        out.extend([value] * (round(cum * _TABLE) - len(out)))
    return tuple(out)


# What a random prospect does after its profile, weighted; each kind may bring follow-ups.
_KINDS: Final = _table([
    ("request", 20), ("page_view", 22), ("callback", 12), ("content_download", 4),
    ("form_submit", 2.5), ("proposal_view", 1.5), ("chat_started", 2), ("touch_sent", 3),
    ("replied", 5), ("call_outcome", 3), ("bounce", 1.5), ("complaint", 0.15), ("opt_out", 0.6),
    ("do_not_contact", 0.15), ("preference", 1), ("meeting_booked", 1), ("deal_closed", 0.3),
    ("consent", 1), ("unenroll", 0.5),
])  # fmt: skip
_FOLLOW_UPS: Final = 1.25  # mean events per kind drawn, follow-ups included (measured)
_PRELUDE: Final = 1.0 + 0.35 + 0.40 + 0.30  # profile + sms consent + phone consent + enroll

_ZONES: Final = _table([
    ("America/New_York", 30), ("America/Chicago", 15), ("America/Denver", 5),
    ("America/Los_Angeles", 20), ("America/Phoenix", 3), ("Europe/London", 12),
    ("Europe/Berlin", 6), ("Europe/Paris", 4), ("Asia/Singapore", 3), ("Australia/Sydney", 2),
])  # fmt: skip
# Phone prefixes (fictional 555-01xx style ranges) with the zone for activity and a region.
# The first six are US numbers (Miami, Oklahoma and Maryland have stricter quiet hours); Alaska
# spans two zones and an Australian mobile eight, so quiet hours must hold in all of them.
_PHONES: Final[tuple[tuple[str, str, str | None], ...]] = (
    ("+1305555", "America/New_York", "US-FL"), ("+1212555", "America/New_York", None),
    ("+1415555", "America/Los_Angeles", None), ("+1312555", "America/Chicago", None),
    ("+1405555", "America/Chicago", "US-OK"), ("+1410555", "America/New_York", "US-MD"),
    ("+1206555", "America/Los_Angeles", None), ("+1602555", "America/Phoenix", None),
    ("+1907555", "America/Anchorage", None), ("+44207946", "Europe/London", None),
    ("+6149157", "Australia/Sydney", None),
)  # fmt: skip
_SEGMENTS: Final = _table([("digital_native", 35), ("digital_adopter", 40), ("traditional", 25)])
_LEAD_SOURCES: Final = ("webinar", "paid_search", "referral", "trade_show", "outbound", "organic")
_SEQUENCES: Final = ("basic", "surround", "escalation", "sms_first", "email_first")
_REQUEST_CHANNELS: Final = _table([
    ("auto", 30), ("email", 35), ("linkedin", 10), ("sms", 12), ("phone", 8), ("chat", 5)
])  # fmt: skip
_CAMPAIGNS: Final = (
    ("spring-webinar", "webinar"), ("q3-pricing-update", "pricing"),
    ("product-launch", "launch"), ("case-study-fintech", "case_study"),
    ("renewal-reminder", "renewal"), ("event-invite", "event"),
)  # fmt: skip
_TRANSACTIONAL: Final = (("meeting-reminder", "meeting"), ("invoice-ready", "billing"))
_PAGES: Final = _table([
    ("/", 20), ("/features", 15), ("/blog/outreach-fatigue", 12), ("/customers", 8),
    ("/docs/getting-started", 8), ("/pricing", 12), ("/pricing/enterprise", 4), ("/about", 5),
])  # fmt: skip
_FORMS: Final = ("demo-request", "contact-sales", "newsletter", "webinar-signup")
_ASSETS: Final = ("ebook-roi.pdf", "whitepaper-security.pdf", "case-study-acme.pdf")
_REPLY_CHANNELS: Final = _table([("email", 60), ("sms", 20), ("linkedin", 12), ("chat", 8)])
_SENTIMENTS: Final = _table([
    ("positive", 25), ("neutral", 30), ("negative", 15), ("out_of_office", 15), ("", 15)
])  # fmt: skip
_TEXTS: Final = {
    "positive": "Sounds good, can we talk Thursday?", "neutral": "Can you send me more details?",
    "negative": "Not interested, please take me off your list.", "": "ok",
    "out_of_office": "I am out of the office until Monday.",
}  # fmt: skip
_SMS_KEYWORDS: Final = _table([("STOP", 40), (" stop ", 20), ("START", 25), ("UNSUBSCRIBE", 15)])
_OUTCOMES: Final = _table([
    ("answered", 25), ("voicemail", 30), ("no_answer", 35), ("busy", 7), ("failed", 3)
])  # fmt: skip
SITE: Final = "https://example.com"


class Gen:
    """One generation run: the random source, the clock and the rows produced so far."""

    def __init__(self, rng: random.Random, start: datetime, span: int) -> None:
        if start.tzinfo is None:
            msg = f"simulate: start must be timezone-aware, got {start!r}"
            raise ValueError(msg)
        self.rand = rng.random
        self.start = start
        self.base = (start - EPOCH) // timedelta(seconds=1)
        self.span = span
        self.keys: list[int] = []
        self.rows: list[EventDict] = []
        first_hour, self.skew = divmod(self.base, 3600)
        hours = range(first_hour, first_hour + (self.skew + span) // 3600 + 1)
        self._hours = [
            datetime.fromtimestamp(h * 3600, UTC).strftime("%Y-%m-%dT%H:") for h in hours
        ]
        self._offsets: dict[str, int] = {}
        self.pid, self.k, self.offset = "", 0, 0

    def begin(self, zone: str) -> None:
        """Start the current prospect's events; `zone` shapes when it is active."""
        self.k = 0
        offset = self._offsets.get(zone)
        if offset is None:
            delta = self.start.astimezone(ZoneInfo(zone)).utcoffset() or timedelta()
            offset = self._offsets[zone] = int(delta.total_seconds())
        self.offset = offset

    def add(self, t: int, kind: str, fields: EventDict | None = None) -> None:
        """One event at `start + t`; events past the end of the window are dropped."""
        if 0 <= t < self.span:
            k = self.k = self.k + 1
            pid, x, rows = self.pid, self.skew + t, self.rows
            self.keys.append(t << 32 | len(rows))  # time first, then generation order
            event: EventDict = {"id": f"{pid}-{k}", "type": kind, "prospect": pid}
            event["ts"] = self._hours[x // 3600] + _MMSS[x % 3600]
            if fields:
                event.update(fields)
            rows.append(event)

    def when(self, lo: int) -> int:
        """A time in [lo, span), more often inside the prospect's local working hours (08-19)."""
        width = self.span - lo
        t = lo + int(self.rand() * width)
        if not 28800 <= (self.base + t + self.offset) % 86400 < 68400 and self.rand() < 0.7:
            t = lo + int(self.rand() * width)  # one second draw: a soft pull to daytime
        return t

    def local(self, zone: str, hh: int, mm: int, *, after: int = 0) -> int:
        """Seconds from start to the first hh:mm local time at least `after` seconds in."""
        here = (self.start + timedelta(seconds=after)).astimezone(ZoneInfo(zone))
        at = here.replace(hour=hh, minute=mm, second=0, microsecond=0)
        if at < here:
            at = datetime.combine(at.date() + timedelta(days=1), at.timetz())
        return (at - self.start) // timedelta(seconds=1)


def _profile(g: Gen, n: int) -> tuple[EventDict, str]:
    """The profile event: most give a time zone, some only a phone number, some a region."""
    rand = g.rand
    segment = _SEGMENTS[int(rand() * _TABLE)]
    fields: EventDict = {"email": f"{g.pid}@example.org", "segment": segment}
    roll = rand()
    prefix, phone_zone, region = _PHONES[int(rand() * len(_PHONES))]
    zone = _ZONES[int(rand() * _TABLE)]
    if roll < 0.6:
        fields["timezone"] = zone
        if rand() < 0.5:
            fields["phone"] = f"{prefix}01{int(rand() * 100):02d}"
    elif roll < 0.85:
        fields["phone"] = f"{prefix}01{int(rand() * 100):02d}"
        zone = phone_zone
        if region is not None and rand() < 0.5:
            fields["region"] = region
    elif roll < 0.95:
        prefix, zone, region = _PHONES[int(rand() * 6)]  # a US number, with its state
        fields.update(timezone=zone, phone=f"{prefix}01{int(rand() * 100):02d}")
        fields["region"] = region or "US-FL"
    fields["lead_source"] = _LEAD_SOURCES[int(rand() * len(_LEAD_SOURCES))]
    fields["account"] = f"acct-{int(rand() * (n // 4 + 1)):05d}"
    return fields, zone if roll < 0.95 else "UTC"


def _request(g: Gen, t: int) -> None:
    rand = g.rand
    channel = _REQUEST_CHANNELS[int(rand() * _TABLE)]
    transactional = rand() < 0.03
    campaigns = _TRANSACTIONAL if transactional else _CAMPAIGNS
    campaign, topic = campaigns[int(rand() * len(campaigns))]
    fields: EventDict = {"channel": channel, "campaign": campaign, "topic": topic}
    if transactional:
        fields["transactional"] = True
    elif rand() < 0.3:
        fields["priority"] = int(rand() * 10)
    g.add(t, "touch_request", fields)
    if channel in ("email", "auto"):
        _email_callbacks(g, t, campaign)
    elif channel == "sms" and rand() < 0.8:
        g.add(t + 5 + int(rand() * 60), "delivered", {"channel": "sms"})
    elif channel == "phone" and rand() < 0.6:
        outcome = _OUTCOMES[int(rand() * _TABLE)]
        g.add(t + 60 + int(rand() * 3600), "call_outcome", {"outcome": outcome})


def _email_callbacks(g: Gen, t: int, campaign: str) -> None:
    """Provider callbacks after an email: delivered, often opened, sometimes clicked."""
    rand = g.rand
    if rand() < 0.25:
        return
    g.add(t + 5 + int(rand() * 600), "delivered", {"channel": "email"})
    if rand() < 0.45:
        t += 600 + int(rand() * 14400)
        g.add(t, "opened", {"channel": "email"})
        if rand() < 0.3:
            url = f"{SITE}{_PAGES[int(rand() * _TABLE)]}?utm_campaign={campaign}"
            g.add(t + 5 + int(rand() * 120), "clicked", {"channel": "email", "url": url})
            if rand() < 0.6:
                g.add(t + 10 + int(rand() * 120), "page_view", {"url": url})


def _replied(g: Gen, t: int) -> None:
    """A reply; on sms sometimes a bare keyword (STOP, " stop ", START) rather than words."""
    rand = g.rand
    channel = _REPLY_CHANNELS[int(rand() * _TABLE)]
    if channel == "sms" and rand() < 0.3:
        g.add(t, "replied", {"channel": "sms", "text": _SMS_KEYWORDS[int(rand() * _TABLE)]})
        return
    sentiment = _SENTIMENTS[int(rand() * _TABLE)]
    fields: EventDict = {"channel": channel, "text": _TEXTS[sentiment]}
    if sentiment:
        fields["sentiment"] = sentiment
    g.add(t, "replied", fields)


# "No calls" (phone avoid) mostly, some "call me" (phone only), a few "prefer email".
_STANCES: Final = _table([("avoid", 60), ("only", 25), ("prefer", 15)])
_PREFERENCE: Final[dict[str, EventDict]] = {
    "avoid": {"channel": "phone", "stance": "avoid"},
    "only": {"channel": "phone", "stance": "only"},
    "prefer": {"channel": "email", "stance": "prefer"},
}

Rand = Callable[[], float]
# Kinds that are one event of that type, each with a maker for its fields.
_SIMPLE: Final[dict[str, Callable[[Rand], EventDict | None]]] = {
    "page_view": lambda r: {"url": SITE + _PAGES[int(r() * _TABLE)]},
    "touch_sent": lambda r: {"channel": "email" if r() < 0.85 else "phone", "by": "rep"},
    "content_download": lambda r: {"asset": _ASSETS[int(r() * len(_ASSETS))]},
    "form_submit": lambda r: {"form": _FORMS[int(r() * len(_FORMS))]},
    "proposal_view": lambda r: {"document": "proposal-v1.pdf"},
    "call_outcome": lambda r: {"outcome": _OUTCOMES[int(r() * _TABLE)]},
    "bounce": lambda r: {"channel": "email" if r() < 0.85 else "sms", "hard": r() < 0.35},
    "complaint": lambda r: {"channel": "email" if r() < 0.8 else "sms"},
    "opt_out": lambda r: {"channel": ("email", "sms", "all", "linkedin")[int(r() * 4)]},
    "do_not_contact": lambda r: {"reason": "asked never to be contacted"},
    "preference": lambda r: _PREFERENCE[_STANCES[int(r() * _TABLE)]],
    "consent": lambda r: {"channel": "sms" if r() < 0.5 else "phone", "granted": r() < 0.85},
    "unenroll": lambda r: {"sequence": _SEQUENCES[int(r() * len(_SEQUENCES))]},
    "chat_started": lambda r: None,
    "meeting_booked": lambda r: None,
    "deal_closed": lambda r: {"won": r() < 0.4},
}


def _one(g: Gen, t: int, kind: str) -> None:
    """One random action at `start + t`, with its follow-ups (opens after an email...)."""
    maker = _SIMPLE.get(kind)
    if maker is not None:
        g.add(t, kind, maker(g.rand))
    elif kind == "request":
        _request(g, t)
    elif kind == "callback":
        _email_callbacks(g, t, "newsletter")
    else:
        _replied(g, t)


def prospect(g: Gen, n: int, actions: float) -> None:
    """One random prospect: profile first, consents and enrollment, then a day of activity."""
    rand, add = g.rand, g.add
    t0 = int(rand() * g.span * 0.5)
    fields, zone = _profile(g, n)
    g.begin(zone)
    add(t0, "profile", fields)
    if rand() < 0.35:
        add(t0 + 1 + int(rand() * 90), "consent", {"channel": "sms", "granted": True})
    if rand() < 0.40:
        add(t0 + 91 + int(rand() * 90), "consent", {"channel": "phone", "granted": True})
    if rand() < 0.30:
        add(t0 + 181 + int(rand() * 600), "enroll", {"sequence": _SEQUENCES[int(rand() * 3)]})
    for _ in range(int(rand() * 2 * actions + 0.5)):
        _one(g, g.when(t0 + 1), _KINDS[int(rand() * _TABLE)])


def actions(events_per_prospect: float) -> float:
    """The mean number of random actions that gives a prospect `events_per_prospect` events,
    once its prelude (profile, consents, enrollment) and the follow-ups are counted."""
    return max(0.0, (events_per_prospect - _PRELUDE) / _FOLLOW_UPS)
