"""The gateway's routes: every endpoint of CONTRACT.md section 2, in one table."""

from __future__ import annotations

from aiohttp import web

from services.common.observability import healthz_view, metrics_view
from services.gateway.entrypoints import handlers


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/token", handlers.issue_token)
    app.router.add_route("OPTIONS", "/token", handlers.token_preflight)
    app.router.add_post("/twiml/voice", handlers.twiml_voice)
    app.router.add_post("/twiml/sip", handlers.twiml_sip)
    app.router.add_post("/twiml/incoming", handlers.twiml_incoming)
    app.router.add_post("/twiml/incoming/after-dial", handlers.twiml_after_dial)
    app.router.add_post("/twiml/voicemail/done", handlers.twiml_voicemail_done)
    app.router.add_post("/twiml/notice", handlers.twiml_notice)
    app.router.add_post("/twilio/status", handlers.twilio_status)
    app.router.add_post("/twilio/recording", handlers.twilio_recording)
    app.router.add_post("/twilio/transcription", handlers.twilio_transcription)
    app.router.add_get("/healthz", healthz_view)
    app.router.add_get("/readyz", handlers.readyz)
    app.router.add_get("/metrics", metrics_view)
