"""calltrail: the gateway and recorder services behind kintone × Twilio calling.

Layout (the walls matter more than the names):

- ``services.common``   the contract in code, shared by both services (event, settings, logging)
- ``services.gateway``  Twilio- and kintone-facing HTTP service; publishes events, no database
- ``services.recorder`` Kafka consumer that records call legs and charges; serves no Twilio
- ``services.devtools`` local stand-ins for production infrastructure (`calltrail dev`)
"""
