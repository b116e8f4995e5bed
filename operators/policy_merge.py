"""A policy file merged over the defaults, and the full key path of a bad value in the result.

Merging happens on the decoded TOML, as plain dicts, before any conversion to Structs: a
partial file must never drop a default rule it does not mention (CONTRACT.md section 4), and
conversion would have filled the gaps with the Structs' own, looser, defaults instead.

1. Tables merge key by key, recursively: a file adding `US-TX` to `quiet_hours.regions` keeps
   US-FL, US-OK and US-MD; a file setting only `[limits] dedupe_ids` keeps the other limits.
2. `[[caps]]` entries merge by `name`: an entry replaces the default entry of that name whole,
   in its place; a new name is appended. An explicit `caps = []` is the one way to say "no cap
   windows at all" (it cannot be written by leaving caps out).
3. `[sequences.<name>]` replaces the default sequence of that name whole; others are kept.
4. Any other array, and any value whose type differs from the default's, replaces it whole.

Paths: msgspec writes `[...]` for a dict key and reports a `__post_init__` error at the
struct, so `explain` converts the merged document part by part down to the deepest part that
fails and names it in full (`$.quiet_hours.regions.US-FL.end`). A cap is named by its position
among the file's own `[[caps]]` entries (`$.caps[0]` is the first cap the file defines),
which is where its author will look, whatever its position in the merged list.
"""

import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Final, get_args, get_origin, get_type_hints

import msgspec

Table = dict[str, Any]
Labels = Mapping[str, Sequence[str]]  # path of a list -> the label of each item in paths

CAPS: Final = "caps"
SEQUENCES: Final = "sequences"
_PLAIN_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")
_AT: Final = re.compile(r" - at (`key` in )?`\$([^`]*)`$")


def merge_policy(defaults: Table, file: Table) -> tuple[Table, dict[str, list[str]]]:
    """`file` over `defaults` (neither is modified), and the labels of the merged caps.

    Raises ValueError (a one-line message with the path) for two caps of one name in `file`:
    merging by name would otherwise keep only the last of them without a word.
    """
    merged = dict(defaults)
    labels: dict[str, list[str]] = {}
    for key, value in file.items():
        base = defaults.get(key)
        if key == CAPS and isinstance(base, list) and isinstance(value, list):
            merged[key], labels[f"$.{CAPS}"] = _merge_caps(base, value)
        elif key == SEQUENCES and isinstance(base, dict) and isinstance(value, dict):
            merged[key] = {**base, **value}
        else:
            merged[key] = _merge(base, value)
    return merged, labels


def _merge(base: Any, over: Any) -> Any:
    """Tables key by key, recursively; anything else (arrays included) replaced whole."""
    if not (isinstance(base, dict) and isinstance(over, dict)):
        return over
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(base[key], value) if key in base else value
    return out


def _merge_caps(base: list[Any], over: list[Any]) -> tuple[list[Any], list[str]]:
    """Caps by name; each merged entry labelled by its index in `over`, or its default name."""
    if not over:
        return [], []
    entries = list(base)
    labels = [str(_cap_name(entry)) for entry in base]
    place = {name: i for i, entry in enumerate(base) if (name := _cap_name(entry)) is not None}
    seen: dict[str, int] = {}
    for index, entry in enumerate(over):
        name = _cap_name(entry)
        if name is not None and name in seen:
            msg = (
                f"cap window names must be unique, {name!r} is also `$.caps[{seen[name]}]`"
                f" - at `$.caps[{index}].name`"
            )
            raise ValueError(msg)
        if name is not None:
            seen[name] = index
        if name is not None and name in place:
            entries[place[name]] = entry
            labels[place[name]] = str(index)
        else:  # a new name, or no usable name (which conversion then reports at this label)
            entries.append(entry)
            labels.append(str(index))
    return entries, labels


def _cap_name(entry: Any) -> str | None:
    name = entry.get("name") if isinstance(entry, dict) else None
    return name if isinstance(name, str) else None


def explain(value: Any, tp: Any, labels: Labels, path: str = "$") -> str | None:
    """None if `value` converts to `tp`; else msgspec's message for the deepest failing part,
    ending ` - at `<full path>``. Only called on failure: it converts each level again."""
    try:
        msgspec.convert(value, tp)
    except msgspec.ValidationError as exc:
        for step, part, part_tp in _parts(value, tp, labels, path):
            found = explain(part, part_tp, labels, path + step)
            if found is not None:
                return found
        return _rebase(str(exc), path)
    return None


def _parts(value: Any, tp: Any, labels: Labels, path: str) -> list[tuple[str, Any, Any]]:
    """(path step, value, type) of each part of `value` that `tp` types separately."""
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    if isinstance(value, dict) and isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        hints = get_type_hints(tp, include_extras=True)
        return [(f".{k}", v, hints[k]) for k, v in value.items() if k in hints]
    if isinstance(value, dict) and get_origin(tp) is dict:
        item_tp = get_args(tp)[1]  # a bad key is left to the dict's own message
        return [(_key_step(k), v, item_tp) for k, v in value.items()]
    if isinstance(value, list) and get_origin(tp) is list:
        item_tp = get_args(tp)[0]
        names = labels.get(path)
        return [
            (f"[{names[i] if names and i < len(names) else i}]", item, item_tp)
            for i, item in enumerate(value)
        ]
    return []


def _key_step(key: str) -> str:
    """`.US-FL` for a plain key, `["a b"]` for any other (JSON-quoted, so still one line)."""
    return f".{key}" if _PLAIN_KEY.fullmatch(key) else f"[{msgspec.json.encode(key).decode()}]"


def _rebase(message: str, path: str) -> str:
    """msgspec's message with its relative path (`$`, `$.x`, `key` in `$`) put under `path`."""
    found = _AT.search(message)
    if found is None:
        return f"{message} - at `{path}`"
    key = found.group(1) or ""
    return f"{message[: found.start()]} - at {key}`{path}{found.group(2)}`"
