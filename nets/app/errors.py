"""User mistakes Hydra and OmegaConf report over many lines, as one ``ConfigError`` line.

``nets.app.config.one_line`` asks ``translate`` first; what it does not know stays with
``one_line``'s own rules. Covered here:

- the override grammar: ``model.activation=rélu`` (Hydra's bare
  ``LexerNoViableAltException`` and a caret under the character): the line names the
  character, its code point and how to quote the value; ``optimizer.lr=[1,`` (a syntax
  error): the override and Hydra's first line;
- interpolations resolved at composition: ``${oc.env:NETS_NO_SUCH_VAR}`` (91 lines of
  traceback before), ``optimizer.lr=${oc.env:HOME}`` (a value of the wrong type),
  ``${nosuch}``, ``${foo:bar}``.

``line`` formats what every command prints: ``prog: kind: message``, escaped and cut
(``nets.text``), whatever the exception.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Sequence

from nets.registry import ConfigError
from nets.text import one_line

_ENV_MISSING = re.compile(r"Environment variable '([^']*)' not found")


def _given(overrides: Sequence[str]) -> dict[str, str]:
    return {o.lstrip("+~").split("=", 1)[0]: o.split("=", 1)[1] for o in overrides if "=" in o}


def _first_line(text: str) -> str:
    return next((ln.strip() for ln in str(text).splitlines() if ln.strip()), "")


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _char_name(ch: str) -> str:
    name = unicodedata.name(ch, "")
    if unicodedata.category(ch) == "Cc":
        name = "a control character"
    return f"U+{ord(ch):04X}" + (f", {name.lower() if name.isupper() else name}" if name else "")


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def grammar_error(exc: BaseException) -> ConfigError | None:
    """An override Hydra's grammar rejects, or ``None`` if ``exc`` is not one."""
    override = next((getattr(c, "override", None) for c in _chain(exc)
                     if getattr(c, "override", None)), None)
    if override is None:
        return None
    key, sep, value = override.partition("=")
    key = key.lstrip("+~") if sep else ""
    # The lexer stops at the first character no unquoted token may hold: in practice a
    # non-ASCII letter or a control character.
    bad = next(((i, ch) for i, ch in enumerate(value)
                if not ch.isascii() or unicodedata.category(ch) == "Cc"), None)
    if bad is not None and not any(q in value for q in "'\""):
        i, ch = bad
        return ConfigError(key or override, value,
                           f"character {ch!r} ({_char_name(ch)}) at position {i + 1} of the "
                           f"value cannot stand unquoted; quote the value: "
                           f"{key}={_quoted(value)} (in a shell: \"{key}={_quoted(value)}\")")
    first = _first_line(getattr(exc, "message", "") or str(exc))
    if first.startswith("LexerNoViableAltException"):
        first = "a character here cannot stand unquoted; quote the value"
    return ConfigError(key or override, value if sep else override,
                       f"not a valid override ({first}); see "
                       "https://hydra.cc/docs/1.2/advanced/override_grammar/basic")


def interpolation_error(exc: BaseException, overrides: Sequence[str] = ()) -> ConfigError | None:
    """A ``${...}`` that did not resolve, or resolved to the wrong type; else ``None``."""
    from omegaconf.errors import (GrammarParseError, InterpolationKeyError,
                                  InterpolationResolutionError, InterpolationValidationError,
                                  UnsupportedInterpolationType)

    kinds = (InterpolationResolutionError, InterpolationKeyError, InterpolationValidationError,
             UnsupportedInterpolationType, GrammarParseError)
    inner = next((c for c in _chain(exc) if isinstance(c, kinds) and getattr(c, "full_key", None)),
                 None)
    if inner is None:
        return None
    key = inner.full_key
    text = _given(overrides).get(key) or _unresolved(inner)
    msg = str(getattr(inner, "msg", "") or inner)
    env = _ENV_MISSING.search(msg)
    if env:
        name = env.group(1)
        return ConfigError(key, text, f"environment variable {name} is not set; set it, or give "
                           f"a default: ${{oc.env:{name},DEFAULT}}")
    if isinstance(inner, InterpolationValidationError):
        m = re.search(r"Value '(.*)' of type '(\w+)' could not be converted to (\w+)", msg)
        if m:
            want = m.group(3).lower()
            return ConfigError(key, text, f"it resolves to {m.group(1)!r}, which is not "
                               f"{'an' if want[0] in 'aeiou' else 'a'} {want}")
    m = re.search(r"Interpolation key '([^']*)' not found", msg)
    if m:
        return ConfigError(key, text, f"it refers to {m.group(1)!r}, which is not a config key "
                           "(write ${section.key}, e.g. ${optimizer.lr})")
    m = re.search(r"Unsupported interpolation type (\S+)", msg)
    if m:
        return ConfigError(key, text, f"no resolver {m.group(1)!r}; nets knows oc.env, "
                           "oc.decode, oc.select and the other oc.* resolvers")
    return ConfigError(key, text, f"the interpolation does not resolve: {_first_line(msg)}")


def _unresolved(exc) -> str:
    """The ``${...}`` text of the node an interpolation error is about."""
    from omegaconf import OmegaConf

    try:
        return str(OmegaConf.to_container(exc.parent_node, resolve=False)[exc.key])
    except Exception:  # noqa: BLE001 - only a nicer message is lost
        return ""


def translate(exc: BaseException, overrides: Sequence[str] = ()) -> ConfigError | None:
    """``ConfigError`` for the mistakes this module knows (module doc), else ``None``."""
    return grammar_error(exc) or interpolation_error(exc, overrides)


def line(prog: str, kind: str, exc_or_text) -> str:
    """``prog: kind: message`` as one printable line (escaped, long values cut)."""
    return f"{prog}: {kind}: {one_line(str(exc_or_text))}"
