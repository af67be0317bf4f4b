# The router's client-facing parsing (operator/router): request framing (framing.h and
# Beast's request_parser, as session() uses them) and request-body validation
# (openai.h parseRequestBody, then the token estimate and the usage clamp).
waterline_fuzz_harness(router_framing SOURCES router_framing.cc LIBS waterline_router_server)
waterline_fuzz_harness(router_body SOURCES router_body.cc LIBS waterline_router_server)
