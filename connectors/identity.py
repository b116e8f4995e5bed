"""The identity index: which prospects hold an email address or a phone number, in Redis.

The gateway resolves a provider event that carries no prospect id through it; the live flow
keeps it from every `profile` it processes (`index_profiles`). Keys, under the streams prefix:

- `<prefix>:identity:email:<address, lower-cased>`, `<prefix>:identity:phone:<E.164>`: sets of
  prospect ids;
- `<prefix>:identity:prospect:<prospect>`: hash, the `email` and `phone` it is indexed under;
- `<prefix>:parked:<kind>:<address>`: list, the contract events for an address nobody holds yet
  (`prospect` empty), expiring `parked_days` after the last one;
- `<prefix>:gw:seen:<sha1(prospect, id)>`: marker, event `id` is on that prospect's stream.

An address shared by several prospects resolves to all of them. A provider event for an address
no profile holds is dead-lettered (`unknown prospect`) and parked; `index_profiles` appends the
parked events to the new holder's stream in the same script that indexes it, so no event can
slip between "not found" and "now indexed": the gateway's write checks the index inside its own
script and retries if the index moved (`connectors/gateway_store.py`).

Not for Redis Cluster: `index_profiles` removes a prospect from its old address's set, whose key
it can only build inside the script.
"""

import hashlib
from collections.abc import Iterable
from typing import Any, Final, NamedTuple

import redis

from connectors.keys import Keys, shard_of
from operators.providers.common import Kind, e164, email_address

KINDS: Final[tuple[Kind, ...]] = ("email", "phone")
PARKED_PREFIX: Final = b'{"prospect":""'
DEFAULT_DEDUPE_S: Final = 48 * 3600


class ProfileAddresses(NamedTuple):
    """A prospect and the addresses of its merged profile (None: keep what is indexed)."""

    prospect: str
    email: str | None = None
    phone: str | None = None


def normalized(kind: Kind, address: str) -> str | None:
    """The index form of an address: emails trimmed and lower-cased, phones in E.164."""
    return email_address(address) if kind == "email" else e164(address)


def identity_key(keys: Keys, kind: Kind, address: str) -> str:
    return f"{keys.prefix}:identity:{kind}:{address}"


def parked_key(keys: Keys, kind: Kind, address: str) -> str:
    return f"{keys.prefix}:parked:{kind}:{address}"


def profile_key(keys: Keys, prospect: str) -> str:
    return f"{keys.prefix}:identity:prospect:{prospect}"


def marker_key(keys: Keys, prospect: str, event_id: str) -> str:
    """Set once the event is on `prospect`'s stream (sha1 as Lua's `redis.sha1hex` computes it,
    so the redrive script builds the same key)."""
    digest = hashlib.sha1(f"{prospect}\n{event_id}".encode(), usedforsecurity=False).hexdigest()
    return f"{keys.prefix}:gw:seen:{digest}"


def park_marker_key(keys: Keys, kind: Kind, address: str, event_id: str) -> str:
    """Set once the event is parked for the address (a provider's retry parks nothing twice)."""
    text = f"\n{kind}:{address}\n{event_id}"
    digest = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()
    return f"{keys.prefix}:gw:parked:{digest}"


def lookup(client: redis.Redis, keys: Keys, kind: Kind, address: str) -> set[str]:
    """The prospects whose profile holds `address` (empty for an unknown or invalid address)."""
    index = normalized(kind, address)
    if index is None:
        return set()
    members: set[bytes] = client.smembers(identity_key(keys, kind, index))  # type: ignore[assignment]
    return {m.decode() for m in members}


# KEYS: per profile its hash and its event stream, then per address the identity set and the
# parked list. ARGV: prefix, marker TTL, then per profile: prospect, address count, and per
# address its kind and value. Every index change comes first; then each parked list of those
# addresses goes to every prospect of this call holding it (each event once per prospect, by its
# marker) and is deleted. A prospect indexed earlier would have taken the event when it was
# written (the gateway checks the set in its own script), so those are all the holders.
_INDEX_PROFILES: Final = """
local prefix, ttl = ARGV[1], ARGV[2]
local k, a, moved = 1, 3, 0
local targets, order = {}, {}
while a <= #ARGV do
  local prospect, n = ARGV[a], tonumber(ARGV[a + 1])
  local hash, stream = KEYS[k], KEYS[k + 1]
  a, k = a + 2, k + 2
  for _ = 1, n do
    local kind, address = ARGV[a], ARGV[a + 1]
    local ident, parked = KEYS[k], KEYS[k + 1]
    a, k = a + 2, k + 2
    local old = redis.call('HGET', hash, kind)
    if old and old ~= address then
      redis.call('SREM', prefix .. ':identity:' .. kind .. ':' .. old, prospect)
    end
    redis.call('HSET', hash, kind, address)
    redis.call('SADD', ident, prospect)
    if not targets[parked] then
      targets[parked] = {}
      order[#order + 1] = parked
    end
    table.insert(targets[parked], {prospect, stream})
  end
end
for _, parked in ipairs(order) do
  local events = redis.call('LRANGE', parked, 0, -1)
  for _, target in ipairs(targets[parked]) do
    local prospect, stream = target[1], target[2]
    local head = '{"prospect":' .. cjson.encode(prospect)
    for _, event in ipairs(events) do
      -- A parked entry that is not an event with a string id (written by hand, corrupted)
      -- goes to the dead letters: raising here would fail every checkpoint from now on.
      local ok, decoded = pcall(cjson.decode, event)
      local id = ok and type(decoded) == 'table' and decoded['id']
      if type(id) ~= 'string' or string.sub(event, 1, 14) ~= '{"prospect":""' then
        redis.call('XADD', prefix .. ':dead', '*', 'event', event,
                   'reason', 'malformed parked event')
      else
        local marker = prefix .. ':gw:seen:' .. redis.sha1hex(prospect .. '\\n' .. id)
        if redis.call('EXISTS', marker) == 0 then
          redis.call('XADD', stream, '*', 'event', head .. string.sub(event, 15))
          redis.call('SET', marker, '1', 'EX', ttl)
          moved = moved + 1
        end
      end
    end
  end
  if #events > 0 then
    redis.call('DEL', parked)
  end
end
return moved
"""


def index_profiles(
    pipe_or_client: Any,
    keys: Keys,
    profiles: Iterable[ProfileAddresses | tuple[str, str | None, str | None]],
    *,
    dedupe_s: int = DEFAULT_DEDUPE_S,
) -> Any:
    """Index prospects under their addresses and append the events parked for those addresses.

    One Lua script per call, so atomic: the index and the parked events move together, and a
    retried call appends nothing twice (the parked lists are gone, and each event's marker is
    set). Addresses that are not a valid email or E.164 number are skipped; `None` keeps what
    the prospect is indexed under. On a client, returns how many events were appended; on a
    pipeline, queues the call (its result comes with `execute()`). Nothing is sent when no
    profile has an address.
    """
    script_keys: list[str] = []
    argv: list[str | int] = [keys.prefix, dedupe_s]
    for entry in profiles:
        prospect, email, phone = entry
        found = [
            (kind, index)
            for kind, value in zip(KINDS, (email, phone), strict=True)
            if value is not None and (index := normalized(kind, value)) is not None
        ]
        if not prospect or not found:
            continue
        script_keys += [profile_key(keys, prospect), keys.events(shard_of(prospect, keys.shards))]
        argv += [prospect, len(found)]
        for kind, index in found:
            script_keys += [identity_key(keys, kind, index), parked_key(keys, kind, index)]
            argv += [kind, index]
    if not script_keys:
        return 0
    return pipe_or_client.execute_command(
        "EVAL", _INDEX_PROFILES, len(script_keys), *script_keys, *argv
    )
