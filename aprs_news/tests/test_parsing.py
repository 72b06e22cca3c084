"""parsing.py on real-format packets from the shipped sample capture."""

from collections import Counter

import pytest

from aprs_news.models import GENERAL_GROUP, NewsItem
from aprs_news.parsing import UnparseablePacket, decode_line, parse_packet
from aprs_news.tests.conftest import SAMPLE, SAMPLE_LINES, sample_packet


def test_general_bulletin_belongs_to_the_general_group():
    news = parse_packet(sample_packet("::BLN1     :Eastern MA"))
    assert news.kind == NewsItem.Kind.BULLETIN
    assert news.source == "W1QXA-10"
    assert news.addressee == "BLN1"
    assert news.group == GENERAL_GROUP
    assert news.text == "Eastern MA ARES net tonight 2000 EST on W1BOS rptr 146.82-"


@pytest.mark.parametrize(
    ("fragment", "addressee", "group"),
    [
        ("::BLN1WX   :", "BLN1WX", "WX"),
        ("::BLN3CLUB :", "BLN3CLUB", "CLUB"),
        ("BLN1ARES", "BLN1ARES", "ARES"),
    ],
)
def test_named_group_bulletin_belongs_to_its_group(fragment, addressee, group):
    news = parse_packet(sample_packet(fragment))
    assert news.kind == NewsItem.Kind.BULLETIN
    assert (news.addressee, news.group) == (addressee, group)


def test_announcement_is_kept_as_announcement():
    news = parse_packet(sample_packet("::BLNA     :"))
    assert news.kind == NewsItem.Kind.ANNOUNCEMENT
    assert news.addressee == "BLNA"
    assert news.text.startswith("Hamfest Saturday 0800-1400")


def test_status_report_loses_its_timestamp():
    news = parse_packet(sample_packet(">231958zWX3in1"))
    assert news.kind == NewsItem.Kind.STATUS
    assert news.text == "WX3in1Plus2.0 U=13.8V,T=4.1C"


def test_status_text_with_markup_characters_stays_literal_text():
    news = parse_packet(sample_packet("VA3QZZ>"))
    assert news.text == "Net <tonight> 19:00 & after, 'all welcome'"


def test_third_party_packet_is_judged_by_the_inner_packet():
    raw = sample_packet("}N5QZX-7>")
    news = parse_packet(raw)
    assert news.kind == NewsItem.Kind.STATUS
    assert news.source == "N5QZX-7"
    assert news.text == "Portable at Enchanted Rock"
    assert news.raw == raw


def test_object_carries_name_comment_and_position():
    news = parse_packet(sample_packet(";HAMFEST  *"))
    assert news.kind == NewsItem.Kind.OBJECT
    assert news.addressee == "HAMFEST"
    assert news.text == "HAMFEST: Sat 0800 Fairgrounds talk-in 147.330"
    assert news.details["position"] == {"latitude": 37.77, "longitude": -122.41833}
    assert news.details["alive"] is True


def test_killed_object_is_marked_removed():
    news = parse_packet(sample_packet(";SNOWPLOW _"))
    assert news.kind == NewsItem.Kind.OBJECT
    assert news.details["alive"] is False
    assert news.text.endswith("(removed)")


def test_weather_with_position_reads_wind_from_course_and_speed():
    news = parse_packet(sample_packet("CW4412>"))
    assert news.kind == NewsItem.Kind.WEATHER
    weather = news.details["weather"]
    assert {"temperature", "humidity", "pressure", "wind_direction", "wind_speed"} <= set(weather)
    assert "°C" in news.text and "hPa" in news.text and "wind" in news.text
    assert "position" in news.details


def test_positionless_weather_report_is_weather():
    news = parse_packet(sample_packet("DL2QXZ-13>APRS,TCPIP*,qAC,T2ERFURT:_"))
    assert news.kind == NewsItem.Kind.WEATHER
    assert "position" not in news.details
    assert news.details["weather"]["wind_direction"] >= 0


@pytest.mark.parametrize(
    "fragment",
    [
        "N5QZX-9>APAT51,WIDE1-1,WIDE2-1,qAR,KD5ABC-10:!",  # position
        "::KB1ZQK-13:Are you on the net",  # message to a station
        ":ack17",  # acknowledgement
    ],
)
def test_packets_that_are_not_news_give_none(fragment):
    assert parse_packet(sample_packet(fragment)) is None


@pytest.mark.parametrize(
    "line",
    [
        "this is not an aprs packet",
        "N0CALL>APRS,TCPIP*:",
        "K1ZZZ>APRS,TCPIP*,qAC,T2X",
        "KB1ZQK-13>APMI06,TCPIP*,qAC,T2BOSTON:T#042,138,041,000,000,000,00000000",
        "# aprsc 2.1.19-g730c5c0",
        "",
    ],
)
def test_unparseable_lines_raise_unparseable_packet(line):
    with pytest.raises(UnparseablePacket):
        parse_packet(line)


def test_every_sample_line_is_news_none_or_unparseable_and_every_kind_occurs():
    outcomes = Counter()
    for line in SAMPLE_LINES:
        try:
            news = parse_packet(line)
        except UnparseablePacket:
            outcomes["unparseable"] += 1
            continue
        outcomes[news.kind if news else "none"] += 1
    for kind in [*NewsItem.Kind.values, "none", "unparseable"]:
        assert outcomes[kind] > 0, f"the sample has no {kind} line: {outcomes}"


def test_resent_bulletin_via_another_path_has_the_same_dedupe_key():
    by_internet = parse_packet(sample_packet("VE3QRP-5>APRS,WIDE2-1,qAR,VE3GTA::BLN3CLUB"))
    by_radio = parse_packet(sample_packet("VE3QRP-5>APRS,VE3RPT*,WIDE2,qAR,VE3KTW-10::BLN3CLUB"))
    assert by_internet.raw != by_radio.raw
    assert by_internet.dedupe_key == by_radio.dedupe_key


def test_other_text_or_other_line_number_makes_a_different_dedupe_key():
    first = parse_packet(sample_packet("::BLN1     :"))
    second = parse_packet(sample_packet("::BLN2     :"))
    assert first.dedupe_key != second.dedupe_key


def test_control_characters_in_text_become_spaces():
    news = parse_packet("K1ABC>APRS,TCPIP*,qAC,T2X:>Line one\x07\x1bLine\ttwo")
    assert news.text == "Line one Line two"


def test_latin1_bytes_decode_leniently():
    raw = SAMPLE.read_bytes().splitlines()[-1].split(b"\t", 1)[1]
    assert decode_line(raw) == "OE3QZX>APRS,TCPIP*,qAC,T2AUSTRIA:>Grüße von der Straße, QRV 70cm"
    assert decode_line("DL2QXZ>APRS:>Grüße\r\n".encode()) == "DL2QXZ>APRS:>Grüße"
