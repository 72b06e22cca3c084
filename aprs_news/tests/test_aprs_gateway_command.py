"""`manage.py aprs_gateway --replay`: the shipped sample capture through the root application."""

from collections import Counter
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from aprs_news.models import NewsItem
from aprs_news.parsing import UnparseablePacket, parse_packet
from aprs_news.tests.conftest import SAMPLE, SAMPLE_LINES

pytestmark = pytest.mark.django_db(transaction=True)


def distinct_news_in_sample() -> Counter:
    keys = {}
    for line in SAMPLE_LINES:
        try:
            news = parse_packet(line)
        except UnparseablePacket:
            continue
        if news is not None:
            keys[news.dedupe_key] = news.kind
    return Counter(keys.values())


def test_replaying_the_sample_stores_each_distinct_news_once(channel_layer):
    out = StringIO()
    call_command("aprs_gateway", "--replay", str(SAMPLE), "--speed", "5000", stdout=out)
    packets = sum(1 for line in SAMPLE_LINES if not line.startswith("#"))
    assert f"replayed {packets} packets" in out.getvalue()
    stored = Counter(NewsItem.objects.values_list("kind", flat=True))
    assert stored == distinct_news_in_sample()
    club = NewsItem.objects.get(addressee="BLN3CLUB")
    assert club.seen_count == sum("BLN3CLUB" in line for line in SAMPLE_LINES)


def test_replay_of_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="does not exist"):
        call_command("aprs_gateway", "--replay", str(tmp_path / "nope.aprs"))


def test_bad_server_option_is_a_clear_error():
    with pytest.raises(CommandError, match="host:port"):
        call_command("aprs_gateway", "--server", "host:port")


@pytest.mark.parametrize("maximum", ["0", "-1", "nan"])
def test_a_max_backoff_that_is_not_a_positive_number_is_a_clear_error(maximum):
    # Accepted, it made the gateway reconnect at once after every drop: a tight loop against the
    # server. The closed local port keeps a gateway that wrongly starts off the network.
    with pytest.raises(CommandError, match="--max-backoff must be a positive number"):
        call_command("aprs_gateway", "--server", "127.0.0.1:9", "--max-backoff", maximum)
