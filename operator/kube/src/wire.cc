#include "waterline/kube/wire.h"

namespace waterline::kube {

std::string percentEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    const bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                            (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
                            c == '~';
    if (unreserved) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
    }
  }
  return out;
}

std::string buildQuery(const QueryParams& params) {
  std::string out;
  for (const auto& [k, v] : params) {
    out += out.empty() ? '?' : '&';
    out += percentEncode(k);
    out += '=';
    out += percentEncode(v);
  }
  return out;
}

QueryParams listQuery(const ListOptions& opts, bool watch) {
  QueryParams q;
  if (!opts.labelSelector.empty()) q.emplace_back("labelSelector", opts.labelSelector);
  if (!opts.fieldSelector.empty()) q.emplace_back("fieldSelector", opts.fieldSelector);
  if (!watch) {
    if (opts.limit && *opts.limit > 0) q.emplace_back("limit", std::to_string(*opts.limit));
    if (!opts.continueToken.empty()) q.emplace_back("continue", opts.continueToken);
  }
  if (!opts.resourceVersion.empty()) q.emplace_back("resourceVersion", opts.resourceVersion);
  if (!opts.resourceVersionMatch.empty())
    q.emplace_back("resourceVersionMatch", opts.resourceVersionMatch);
  if (opts.timeoutSeconds) q.emplace_back("timeoutSeconds", std::to_string(*opts.timeoutSeconds));
  if (watch) {
    q.emplace_back("watch", "1");
    if (opts.allowWatchBookmarks) q.emplace_back("allowWatchBookmarks", "true");
    if (opts.sendInitialEvents) q.emplace_back("sendInitialEvents", "true");
  }
  return q;
}

std::string resourcePath(const ResourceKind& kind, const std::string& ns, const std::string& name,
                         const std::string& subresource) {
  std::string p = kind.basePath();
  if (kind.namespaced && !ns.empty()) p += "/namespaces/" + percentEncode(ns);
  p += "/" + kind.resource;
  if (!name.empty()) {
    p += "/" + percentEncode(name);
    if (!subresource.empty()) p += "/" + percentEncode(subresource);
  }
  return p;
}

const char* contentType(PatchType type) {
  switch (type) {
    case PatchType::Merge: return "application/merge-patch+json";
    case PatchType::JsonPatch: return "application/json-patch+json";
    case PatchType::StrategicMerge: return "application/strategic-merge-patch+json";
    case PatchType::Apply: return "application/apply-patch+yaml";
  }
  return "application/merge-patch+json";
}

Json deleteOptionsBody(const DeleteOptions& opts) {
  Json body = {{"apiVersion", "v1"}, {"kind", "DeleteOptions"}};
  if (opts.preconditions.uid || opts.preconditions.resourceVersion) {
    Json pre = Json::object();
    if (opts.preconditions.uid) pre["uid"] = *opts.preconditions.uid;
    if (opts.preconditions.resourceVersion)
      pre["resourceVersion"] = *opts.preconditions.resourceVersion;
    body["preconditions"] = pre;
  }
  if (opts.propagationPolicy) body["propagationPolicy"] = *opts.propagationPolicy;
  if (opts.gracePeriodSeconds) body["gracePeriodSeconds"] = *opts.gracePeriodSeconds;
  return body;
}

Result<ObjectList> decodeObjectList(const Json& list) {
  if (!list.is_object()) return std::unexpected(decodeError("list answer is not a JSON object"));
  ObjectList out;
  std::string apiVersion = list.value("apiVersion", "");
  std::string kind = list.value("kind", "");
  if (kind.size() > 4 && kind.ends_with("List")) kind.resize(kind.size() - 4);
  auto md = list.find("metadata");
  if (md != list.end() && md->is_object()) {
    out.resourceVersion = md->value("resourceVersion", "");
    out.continueToken = md->value("continue", "");
    auto ric = md->find("remainingItemCount");
    if (ric != md->end() && ric->is_number_integer()) out.remainingItemCount = ric->get<int64_t>();
  }
  auto items = list.find("items");
  if (items != list.end() && items->is_array()) {
    out.items.reserve(items->size());
    for (const auto& item : *items) {
      Json obj = item;
      if (obj.is_object()) {
        if (!apiVersion.empty() && !obj.contains("apiVersion")) obj["apiVersion"] = apiVersion;
        if (!kind.empty() && !obj.contains("kind")) obj["kind"] = kind;
      }
      out.items.push_back(std::move(obj));
    }
  } else if (items != list.end() && !items->is_null()) {
    return std::unexpected(decodeError("list answer has non-array items"));
  }
  return out;
}

const char* toString(WatchEventType t) {
  switch (t) {
    case WatchEventType::Added: return "ADDED";
    case WatchEventType::Modified: return "MODIFIED";
    case WatchEventType::Deleted: return "DELETED";
    case WatchEventType::Bookmark: return "BOOKMARK";
    case WatchEventType::Error: return "ERROR";
  }
  return "?";
}

Result<std::optional<WatchEvent>> decodeWatchLine(std::string_view line) {
  size_t b = 0, e = line.size();
  while (b < e && (line[b] == ' ' || line[b] == '\t' || line[b] == '\r' || line[b] == '\n')) ++b;
  while (e > b && (line[e - 1] == ' ' || line[e - 1] == '\t' || line[e - 1] == '\r' ||
                   line[e - 1] == '\n'))
    --e;
  if (b == e) return std::optional<WatchEvent>{};
  Json doc = Json::parse(line.begin() + b, line.begin() + e, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object())
    return std::unexpected(decodeError("watch line is not a JSON object: " +
                                       std::string(line.substr(b, std::min<size_t>(e - b, 200)))));
  auto type = doc.find("type");
  auto obj = doc.find("object");
  if (type == doc.end() || !type->is_string() || obj == doc.end())
    return std::unexpected(decodeError("watch event lacks type or object"));
  const std::string& t = type->get_ref<const std::string&>();
  WatchEvent ev;
  if (t == "ADDED") ev.type = WatchEventType::Added;
  else if (t == "MODIFIED") ev.type = WatchEventType::Modified;
  else if (t == "DELETED") ev.type = WatchEventType::Deleted;
  else if (t == "BOOKMARK") ev.type = WatchEventType::Bookmark;
  else if (t == "ERROR") {
    ApiError err = errorFromStatus(*obj);
    if (err.reason == ApiError::Reason::Unknown && err.httpCode == 0 && err.message.empty())
      err.message = "watch ERROR event: " + obj->dump();
    return std::unexpected(std::move(err));
  } else {
    return std::unexpected(decodeError("unknown watch event type \"" + t + "\""));
  }
  ev.object = std::move(*obj);
  return std::optional<WatchEvent>(std::move(ev));
}

}  // namespace waterline::kube
