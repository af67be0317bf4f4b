# The first-fit baseline and the trace replay (CSV cluster + pod workload) as a small
# library, so that tests/unit/trace_replay can test them. Included by bench/scheduler and
# by the test: the sanitizer build (WATERLINE_SANITIZE) skips bench/ but builds the test.
include_guard(GLOBAL)
add_library(waterline_scheduler_trace STATIC
  ${CMAKE_CURRENT_LIST_DIR}/first_fit.cc ${CMAKE_CURRENT_LIST_DIR}/trace.cc)
target_include_directories(waterline_scheduler_trace PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(waterline_scheduler_trace PUBLIC waterline_scheduling)
