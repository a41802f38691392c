"""Events: the streaming reader and the event types."""
