"""APRS news: a bridge from the APRS-IS network into Switchboard.

`manage.py aprs_gateway` (gateway.py) is the protocol server for the "aprs" scope type;
APRSNewsConsumer (consumers.py) turns packets into NewsItems; /news/ shows them live.
"""
