# Fuzz harnesses of the operator's API types and the routing logic (pure code, no sockets).
# The router's request framing and body parsing are in router.cmake.
waterline_fuzz_harness(token_estimate SOURCES token_estimate.cc LIBS waterline_routing)
waterline_fuzz_harness(usage SOURCES usage.cc LIBS waterline_routing)
waterline_fuzz_harness(quantity SOURCES quantity.cc LIBS waterline_api)
waterline_fuzz_harness(time SOURCES time.cc LIBS waterline_api)
waterline_fuzz_harness(label_selector SOURCES label_selector.cc LIBS waterline_api)
waterline_fuzz_harness(capacity_pool_codec SOURCES capacity_pool_codec.cc LIBS waterline_api)
waterline_fuzz_harness(model_deployment_codec SOURCES model_deployment_codec.cc LIBS waterline_api)
waterline_fuzz_harness(ptu_reservation_codec SOURCES ptu_reservation_codec.cc LIBS waterline_api)
