#pragma once
// waterline-router's command-line flags (docs/flags.md), parsed with CLI11 through
// operator/cli: the same duration syntax as the operator ("15s", "500ms"; a bare number
// is an error), sizes ("4Mi"), and errors that name the flag.
#include <expected>
#include <string>
#include <vector>

#include "waterline/cli/flags.h"
#include "waterline/router/config.h"

namespace waterline::router {

// Parses args (argv[0] excluded). --help comes back as an Exit with code 0 and the
// usage for stdout; a bad flag as code 2 and a message that names it.
std::expected<RouterConfig, cli::Exit> parseRouterConfig(const std::vector<std::string>& args);
std::expected<RouterConfig, cli::Exit> parseRouterConfig(int argc, const char* const* argv);

// Every flag and its default, for docs/flags.md (tests/unit/flags compares them).
std::vector<cli::FlagDoc> routerFlags();

}  // namespace waterline::router
