"""Hydra's and OmegaConf's composition errors turned into one clear line each.

Hydra raises many exception types with long texts; the user needs the bad value and what
would be valid. The texts are matched with regular expressions, which tests pin down.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from imgcls.base.errors import UserError, did_you_mean, unknown_choice
from imgcls.config.files import group_options
from imgcls.config.schemas import MonitorMode

# (parent key, overrides, rejected key) -> the keys that exist at the parent key
ValidKeys = Callable[[str, list[str], str], list[str]]


def translate_compose_error(
    error: Exception, overrides: list[str], valid_keys: ValidKeys
) -> UserError:
    """One clear line for a Hydra composition error: unknown option, unknown key, wrong type."""
    text = " ".join(str(error).split())
    cause = error.__cause__ or error.__context__
    cause_text = " ".join(str(cause).split()) if cause else ""

    missing = re.search(r"Could not find '([\w/]+)/([^']+)'", text)
    if missing:
        group, option = missing.group(1).split("/")[-1], missing.group(2)
        return unknown_choice(group, option, group_options(group))
    missing_group = re.search(r"Could not load '([\w/]+)/([^']+)'", text)
    if missing_group:
        group, option = missing_group.group(1).split("/")[-1], missing_group.group(2)
        return unknown_choice(group, option, group_options(group))

    struct = re.search(r"Could not override '([^']+)'", text) or re.search(
        r"Could not append to config. An item is already at '([^']+)'", text
    )
    if struct and ("not in struct" in text + cause_text or "Key '" in text + cause_text):
        return unknown_key_error(struct.group(1), overrides, valid_keys)

    if "could not be converted" in cause_text or "could not be converted" in text:
        full_key = re.search(r"full_key: ([\w.\[\]]+)", cause_text + " " + text)
        value = re.search(r"Value '([^']*)'", cause_text + " " + text)
        key = full_key.group(1) if full_key else "?"
        expected = re.search(r"converted to (\w+)", cause_text + " " + text)
        kind = expected.group(1).lower() if expected else "another type"
        if "Enum" in kind or kind.endswith("mode"):
            kind = "one of " + ", ".join(m.value for m in MonitorMode)
        return UserError(
            f"{key}={value.group(1) if value else '?'} has the wrong type: expected {kind}"
        )

    not_bool = re.search(r"Value '([^']*)' is not a valid bool", cause_text)
    merging = re.search(r"Error merging override ([^=\s]+)=", text)
    if not_bool and merging:  # report.html=maybe, trainer.channels_last=maybe
        return UserError(
            f"{merging.group(1)}={not_bool.group(1)} has the wrong type: expected a boolean "
            "(true or false)"
        )

    not_list = "is not a ListConfig, list or tuple" in cause_text
    override = re.search(r"Error merging override ([^=\s]+)=(\S*)", text)
    if not_list and override:  # model.widths=3
        return UserError(
            f"{override.group(1)}={override.group(2)} has the wrong type: expected a list"
        )

    if "Ambiguous value for argument" in text:
        arg = re.search(r"argument '([^']+)'", text)
        return UserError(
            f"'{arg.group(1) if arg else text}' is a sweep: add -m (--multirun) to run it"
        )

    if "mismatched input" in text or "no viable alternative" in text or "extraneous input" in text:
        return UserError(f"cannot parse the override(s) {' '.join(overrides)}: {text}")

    if "Invalid value" in cause_text:
        full_key = re.search(r"full_key: ([\w.\[\]]+)", cause_text)
        detail = cause_text.split(" full_key")[0].replace("Invalid value", "invalid value")
        return UserError(f"{full_key.group(1) if full_key else '?'}: {detail}")
    return UserError(text.split(" full_key")[0] or cause_text)


def unknown_key_error(full_key: str, overrides: list[str], valid_keys: ValidKeys) -> UserError:
    """``optimizer.lrr`` -> unknown key, with a did-you-mean from the keys that exist there.

    The valid keys are those of the component the overrides chose (``model=simplecnn``
    lists simplecnn's keys, not the default model's), and the rejected key is never offered.
    """
    parent_key, _, leaf = full_key.rpartition(".")
    base = [k for k in valid_keys(parent_key, overrides, full_key) if k != leaf]
    hint = did_you_mean(leaf, base).replace("'", f"'{parent_key}." if parent_key else "'", 1) or ";"
    where = f" under {parent_key}" if parent_key else ""
    valid = f" valid keys{where}: {', '.join(base)}" if base else ""
    return UserError(f"unknown config key '{full_key}'{hint}{valid}")
