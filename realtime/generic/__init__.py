"""Generic consumers: the websocket family (`realtime.generic.websocket`) and HTTP consumers,
long-poll included (`realtime.generic.http`)."""
