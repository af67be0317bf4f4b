#pragma once
// Pure helpers of the REST wire format: URL paths and query strings, content types,
// list and watch-line decoding. No I/O; unit-tested on their own.
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "waterline/kube/client.h"

namespace waterline::kube {

// Percent-encodes everything but RFC 3986 unreserved characters (A-Z a-z 0-9 - . _ ~).
std::string percentEncode(std::string_view s);

using QueryParams = std::vector<std::pair<std::string, std::string>>;

// "?k=v&k2=v2" with keys and values percent-encoded; "" when empty.
std::string buildQuery(const QueryParams& params);

// Query parameters of a list (watch=false) or a watch (watch=true: adds watch=1,
// allowWatchBookmarks, sendInitialEvents; limit/continue are dropped).
QueryParams listQuery(const ListOptions& opts, bool watch);

// /api/v1/namespaces/<ns>/<resource>[/<name>[/<subresource>]] with segments encoded.
// ns is ignored for cluster-scoped kinds; name "" gives the collection.
std::string resourcePath(const ResourceKind& kind, const std::string& ns,
                         const std::string& name = "", const std::string& subresource = "");

const char* contentType(PatchType type);

// The body of a DELETE: a v1 DeleteOptions.
Json deleteOptionsBody(const DeleteOptions& opts);

// A *List answer. Items get the list's apiVersion and kind (minus "List") when they
// have none, so that every object carries its type as a watch event's does.
Result<ObjectList> decodeObjectList(const Json& list);

// One line of a watch body: {"type": ..., "object": ...}.
//   - blank line: std::nullopt;
//   - ADDED / MODIFIED / DELETED / BOOKMARK: the event;
//   - ERROR: the ApiError its Status maps to (410 / Expired / Gone -> Reason::Gone);
//   - anything else: Reason::Decode.
Result<std::optional<WatchEvent>> decodeWatchLine(std::string_view line);

const char* toString(WatchEventType t);

}  // namespace waterline::kube
