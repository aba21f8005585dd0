"""TwiML, read into the verbs the call engine can carry out.

Supported: ``<Say>``, ``<Play>``, ``<Pause>``, ``<Hangup>``, ``<Reject>``, ``<Redirect>``,
``<Dial>`` (to a virtual human) and ``<Connect><Stream>`` with ``<Parameter>`` children. Any other
verb is kept as :class:`Unsupported` so the engine can note it and move on.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field


class TwimlError(ValueError):
    """The document is not TwiML (Twilio error 12100, document parse failure)."""


@dataclass(frozen=True)
class Say:
    """Speak ``text`` to the caller, ``loop`` times."""

    text: str
    loop: int = 1


@dataclass(frozen=True)
class Play:
    """Play the audio at ``url``, ``loop`` times."""

    url: str
    loop: int = 1


@dataclass(frozen=True)
class Pause:
    """Wait ``length`` seconds."""

    length: float = 1.0


@dataclass(frozen=True)
class Hangup:
    """End the call."""


@dataclass(frozen=True)
class Reject:
    """Refuse an incoming call without answering it."""

    reason: str = "rejected"


@dataclass(frozen=True)
class Redirect:
    """Continue with the TwiML at ``url``."""

    url: str
    method: str = "POST"


@dataclass(frozen=True)
class Dial:
    """Connect the caller to ``number``; afterwards request ``action`` if given."""

    number: str
    action: str | None = None
    method: str = "POST"
    timeout: float = 30.0
    time_limit: float = 14400.0


@dataclass(frozen=True)
class Stream:
    """A bidirectional media stream to ``url`` carrying ``parameters`` in its ``start``."""

    url: str
    name: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    status_callback: str | None = None
    status_callback_method: str = "POST"


@dataclass(frozen=True)
class Connect:
    """Run ``stream`` until its WebSocket closes; afterwards request ``action`` if given."""

    stream: Stream
    action: str | None = None
    method: str = "POST"


@dataclass(frozen=True)
class Unsupported:
    """A verb the sandbox does not carry out."""

    name: str


Verb = Say | Play | Pause | Hangup | Reject | Redirect | Dial | Connect | Unsupported


def _number(value: str | None, default: float) -> float:
    try:
        return float(value) if value is not None else default
    except ValueError:
        return default


def _verb(element: ElementTree.Element) -> Verb:
    attrs = element.attrib
    text = (element.text or "").strip()
    method = attrs.get("method", "POST").upper()
    match element.tag:
        case "Say":
            return Say(text=text, loop=max(int(_number(attrs.get("loop"), 1)), 1))
        case "Play":
            return Play(url=text, loop=max(int(_number(attrs.get("loop"), 1)), 1))
        case "Pause":
            return Pause(length=_number(attrs.get("length"), 1.0))
        case "Hangup":
            return Hangup()
        case "Reject":
            return Reject(reason=attrs.get("reason", "rejected"))
        case "Redirect":
            return Redirect(url=text, method=method)
        case "Dial":
            nouns = [child for child in element if child.tag in {"Number", "Client", "Sip"}]
            number = (nouns[0].text or "").strip() if nouns else text
            return Dial(
                number=number,
                action=attrs.get("action"),
                method=method,
                timeout=_number(attrs.get("timeout"), 30.0),
                time_limit=_number(attrs.get("timeLimit"), 14400.0),
            )
        case "Connect":
            stream = element.find("Stream")
            if stream is None:
                return Unsupported(name="Connect")
            parameters = {
                p.attrib.get("name", ""): p.attrib.get("value", "")
                for p in stream.findall("Parameter")
            }
            return Connect(
                stream=Stream(
                    url=stream.attrib.get("url", ""),
                    name=stream.attrib.get("name"),
                    parameters=parameters,
                    status_callback=stream.attrib.get("statusCallback"),
                    status_callback_method=stream.attrib.get("statusCallbackMethod", "POST"),
                ),
                action=attrs.get("action"),
                method=method,
            )
        case _:
            return Unsupported(name=element.tag)


def parse_twiml(document: str) -> list[Verb]:
    """The verbs of a ``<Response>`` document, in order.

    Raises:
        TwimlError: the document is not well-formed XML or its root is not ``<Response>``.
    """
    try:
        root = ElementTree.fromstring(document)
    except ElementTree.ParseError as error:
        raise TwimlError(f"TwiML is not well-formed: {error}") from None
    if root.tag != "Response":
        raise TwimlError(f"TwiML root must be <Response>, not <{root.tag}>")
    return [_verb(element) for element in root]
