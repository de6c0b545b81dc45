"""What both services need: the event on the wire, settings loading, logging, Kafka factories."""
