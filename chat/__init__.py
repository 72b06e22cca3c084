"""Chat: public rooms, the staff console and moderation, over WebSockets."""
