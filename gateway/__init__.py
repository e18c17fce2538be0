"""Gateway: RMA API, station event ingestion over MQTT, and the status page."""
