"""From one APRS-IS packet line to the news it carries, if any (aprslib does the decoding).

    parse_packet("W1XYZ>APRS,TCPIP*,qAC,T2X::BLN1WX   :Storm watch until 2100")
        -> NewsPacket(kind="bulletin", source="W1XYZ", addressee="BLN1WX", group="WX",
                      text="Storm watch until 2100", ...)
    parse_packet("W1XYZ>APRS,TCPIP*,qAC,T2X:!4903.50N/07201.75W-")   -> None (a plain position)
    parse_packet("not a packet")                                     -> raises UnparseablePacket

News is: bulletins (to BLN0-9, and named groups BLNnGROUP such as BLN1WX), announcements (BLNA-Z),
status reports, objects, and weather reports (positionless, or a position with weather data).
Third-party packets (`}` gated from RF) are unwrapped and judged by their inner packet.

Which kind a packet is gets decided by routes on aprslib's keys, not an if-chain (NEWS_ROUTES):

    route("aprs.packet", bulletin_news, format=r"^(group-)?bulletin$")
    route("aprs.packet", weather_news, symbol=r"^_$")          # a weather station's symbol
    ...
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import aprslib

from aprs_news.models import GENERAL_GROUP, NewsItem
from aprs_news.protocol import EVENT_PACKET, SCOPE_TYPE
from realtime.message import Message
from realtime.routing import FilterRouter, route
from realtime.text import storable

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


class UnparseablePacket(ValueError):
    """The line is not an APRS packet aprslib can decode; the message says why."""


@dataclass(frozen=True)
class NewsPacket:
    """The news one packet carries, ready to become (or bump) a NewsItem."""

    kind: str
    source: str
    text: str
    raw: str
    addressee: str = ""
    group: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def dedupe_key(self) -> str:
        """Same kind, source, addressee and text: the same news, whatever path it came by."""
        identity = "\x1f".join((self.kind, self.source, self.addressee, self.text))
        return hashlib.sha256(identity.encode("utf-8")).hexdigest()


def decode_line(data: bytes) -> str:
    """Bytes from APRS-IS as text, never failing: UTF-8 when it is valid, else Latin-1 (which
    maps every byte), as stations send both. Line endings are stripped."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return text.rstrip("\r\n")


def decode_packet(raw: str) -> dict[str, Any]:
    """aprslib's decoding of one packet line (a third-party packet's inner packet, with the
    whole line as ``raw``); UnparseablePacket when it is not a packet."""
    # A character no database can store (a NUL from a broken station or TNC) is replaced, not
    # the packet dropped: the rest of the line may be good news. The stored raw line and the news
    # text show U+FFFD where the character was.
    line = storable(raw.rstrip("\r\n"))
    if not line or line.startswith("#"):
        raise UnparseablePacket(f"not a packet: {line[:80]!r}")
    try:
        decoded = aprslib.parse(line)
    except (aprslib.ParseError, aprslib.UnknownFormat) as error:
        raise UnparseablePacket(f"{error}: {line[:80]!r}") from error
    except Exception as error:  # aprslib has raised IndexError/ValueError on odd bodies
        raise UnparseablePacket(f"aprslib failed ({error!r}): {line[:80]!r}") from error
    if decoded.get("format") == "thirdparty" and "subpacket" in decoded:
        decoded = {**decoded["subpacket"], "raw": line}
    return {**decoded, "raw": line}


def parse_packet(raw: str) -> NewsPacket | None:
    """Decode one packet line: its news, None if it carries none; UnparseablePacket otherwise."""
    return news_for(decode_packet(raw))


# -- What news a decoded packet carries: a route per kind, on aprslib's keys -----------------------
#
# Each route is a message consumer of the "aprs.packet" message whose content is the decoded
# packet; the first route whose filters all match decides (seed 001's filter routing). A packet
# no route takes (a plain position, telemetry, a message to a station) carries no news.


def news_for(decoded: dict[str, Any]) -> NewsPacket | None:
    """The news in an aprslib-decoded packet, picked by NEWS_ROUTES; None if it carries none."""
    message = Message(decoded, EVENT_PACKET, scope={"type": SCOPE_TYPE})
    matched = NEWS_ROUTES.match(message)
    if matched is None:
        return None
    build, kwargs = matched
    news: NewsPacket | None = build(message, **kwargs)
    return news


def _source(decoded: dict[str, Any]) -> str:
    return _clean(decoded.get("from", "")).upper()


def bulletin_news(message: Message) -> NewsPacket | None:
    """A bulletin (BLN0-9, or BLNn plus a group name such as BLN1WX) or an announcement (BLNA-Z)."""
    decoded = message.content
    text = _clean(decoded.get("message_text", ""))
    if not text:
        return None
    identifier = _clean(decoded.get("identifier", "")).upper()
    if decoded["format"] == "announcement":
        kind, line_id = NewsItem.Kind.ANNOUNCEMENT, decoded["aid"]
    else:
        kind, line_id = NewsItem.Kind.BULLETIN, decoded["bid"]
    return NewsPacket(
        kind=kind,
        source=_source(decoded),
        text=text,
        raw=decoded["raw"],
        addressee=f"BLN{line_id}{identifier}",
        group=identifier or GENERAL_GROUP,
    )


def weather_news(message: Message) -> NewsPacket | None:
    """A weather report: positionless, or from a weather station (symbol "_") with a position
    or as an object. A station symbol without any values is judged as an object, or nothing."""
    decoded = message.content
    if not decoded.get("weather"):
        return object_news(message) if decoded.get("format") == "object" else None
    weather = _weather_values(decoded)
    details: dict[str, Any] = {"weather": weather}
    if "latitude" in decoded:
        details["position"] = _position(decoded)
    return NewsPacket(
        kind=NewsItem.Kind.WEATHER,
        source=_source(decoded),
        text=_weather_summary(weather),
        raw=decoded["raw"],
        addressee=_clean(decoded.get("object_name", "")),
        details=details,
    )


def object_news(message: Message) -> NewsPacket | None:
    """An object (a net, a hamfest, a snowplow): its name and comment, and whether it is gone."""
    decoded = message.content
    name = _clean(decoded.get("object_name", ""))
    comment = _clean(decoded.get("comment", ""))
    alive = bool(decoded.get("alive", True))
    text = name if not comment else f"{name}: {comment}"
    if not alive:
        text = f"{text} (removed)"
    details: dict[str, Any] = {"alive": alive}
    if "latitude" in decoded:
        details["position"] = _position(decoded)
    return NewsPacket(
        kind=NewsItem.Kind.OBJECT,
        source=_source(decoded),
        text=text,
        raw=decoded["raw"],
        addressee=name,
        details=details,
    )


def status_news(message: Message) -> NewsPacket | None:
    """A status report (">..."); its text without the timestamp."""
    decoded = message.content
    text = _clean(decoded.get("status", ""))
    if not text:
        return None
    return NewsPacket(
        kind=NewsItem.Kind.STATUS, source=_source(decoded), text=text, raw=decoded["raw"]
    )


NEWS_ROUTES = FilterRouter(
    [
        route(EVENT_PACKET, bulletin_news, format=r"^(group-)?bulletin$"),
        route(EVENT_PACKET, bulletin_news, format=r"^announcement$"),
        route(EVENT_PACKET, weather_news, format=r"^wx$"),
        route(EVENT_PACKET, weather_news, symbol=r"^_$"),
        route(EVENT_PACKET, object_news, format=r"^object$"),
        route(EVENT_PACKET, status_news, format=r"^status$"),
    ]
)


def _clean(text: Any) -> str:
    """Plain single-line text: control characters become spaces, runs of blanks collapse."""
    return " ".join(_CONTROL_CHARACTERS.sub(" ", str(text)).split())


def _position(decoded: dict[str, Any]) -> dict[str, float]:
    return {
        "latitude": round(float(decoded["latitude"]), 5),
        "longitude": round(float(decoded["longitude"]), 5),
    }


def _weather_values(decoded: dict[str, Any]) -> dict[str, float]:
    """aprslib's metric weather values; a weather station's course/speed are the wind's."""
    values = {key: value for key, value in decoded["weather"].items() if value is not None}
    if decoded.get("symbol") == "_":
        if "wind_direction" not in values and "course" in decoded:
            values["wind_direction"] = decoded["course"]
        if "wind_speed" not in values and "speed" in decoded:
            values["wind_speed"] = round(decoded["speed"] / 3.6, 2)  # km/h -> m/s
    return {key: round(float(value), 2) for key, value in values.items()}


def _weather_summary(weather: dict[str, float]) -> str:
    """One readable line: "4.4 °C, humidity 79 %, wind 1.5 m/s from 294°, 1006.5 hPa"."""
    parts = []
    if "temperature" in weather:
        parts.append(f"{weather['temperature']:.1f} °C")
    if "humidity" in weather:
        parts.append(f"humidity {weather['humidity']:.0f} %")
    if "wind_speed" in weather:
        wind = f"wind {weather['wind_speed']:.1f} m/s"
        if "wind_direction" in weather:
            wind += f" from {weather['wind_direction']:.0f}°"
        parts.append(wind)
    if "wind_gust" in weather:
        parts.append(f"gusts {weather['wind_gust']:.1f} m/s")
    if "pressure" in weather:
        parts.append(f"{weather['pressure']:.1f} hPa")
    if weather.get("rain_1h"):
        parts.append(f"rain {weather['rain_1h']:.1f} mm/h")
    return ", ".join(parts) or "weather report"
