"""Gateway services: the business operations behind the API and the MQTT bridge.

Each operation takes a SQLAlchemy session and commits its own unit of work.
"""
