"""The recorder's edges: PostgreSQL, Kafka (and, later, kintone)."""
