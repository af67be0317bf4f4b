#include "waterline/router/openai.h"

#include <algorithm>
#include <limits>

namespace waterline::router {

using json = nlohmann::json;

namespace {
std::string percentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}
}  // namespace

Target classifyTarget(std::string_view target) {
  Target t;
  auto q = target.find('?');
  std::string_view path = target.substr(0, q);
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  if (path == "/v1/chat/completions") {
    t.kind = RouteKind::ChatCompletions;
  } else if (path == "/v1/completions") {
    t.kind = RouteKind::Completions;
  } else if (path == "/v1/embeddings") {
    t.kind = RouteKind::Embeddings;
  } else if (path == "/v1/models") {
    t.kind = RouteKind::Models;
  } else if (path == "/metrics") {
    t.kind = RouteKind::Metrics;
  } else if (path == "/healthz") {
    t.kind = RouteKind::Healthz;
  } else if (path == "/readyz") {
    t.kind = RouteKind::Readyz;
  } else if (path == "/debug/routes") {
    t.kind = RouteKind::DebugRoutes;
  } else {
    constexpr std::string_view prefix = "/openai/deployments/";
    if (path.substr(0, prefix.size()) == prefix) {
      std::string_view rest = path.substr(prefix.size());
      auto slash = rest.find('/');
      if (slash != std::string_view::npos && slash > 0) {
        std::string_view name = rest.substr(0, slash);
        std::string_view op = rest.substr(slash);
        if (op == "/chat/completions") t.kind = RouteKind::AzureChat;
        else if (op == "/completions") t.kind = RouteKind::AzureCompletions;
        else if (op == "/embeddings") t.kind = RouteKind::AzureEmbeddings;
        if (t.kind != RouteKind::NotFound) t.deployment = percentDecode(name);
      }
    }
  }
  t.post = t.proxied();
  return t;
}

ApiError makeError(int status, std::string message, std::string type, std::optional<std::string> code,
                   std::optional<std::string> param) {
  ApiError e;
  e.status = status;
  e.message = std::move(message);
  e.type = std::move(type);
  e.code = std::move(code);
  e.param = std::move(param);
  return e;
}

std::string ApiError::body() const {
  json e = {{"message", message},
            {"type", type},
            {"param", param ? json(*param) : json(nullptr)},
            {"code", code ? json(*code) : json(nullptr)}};
  // Replace, not throw: a message may quote request bytes that are not UTF-8.
  return json{{"error", std::move(e)}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string modelsListBody(const routing::RoutingTable& table, std::int64_t createdUnix) {
  json data = json::array();
  for (const auto& d : table.deployments) {
    json m = json::object();
    m["id"] = d.deployment.str();
    m["object"] = "model";
    m["created"] = createdUnix;
    m["owned_by"] = "waterline";
    m["root"] = d.model;
    m["deployment_type"] = std::string(api::toString(d.deploymentType));
    data.push_back(std::move(m));
  }
  json out = json::object();
  out["object"] = "list";
  out["data"] = std::move(data);
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::int64_t promptTokenBound(const routing::TokenEstimate& est, std::size_t requestBodyBytes) {
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  const std::int64_t bytes = requestBodyBytes > static_cast<std::size_t>(kMax) ? kMax : static_cast<std::int64_t>(requestBodyBytes);
  const std::int64_t e = std::max<std::int64_t>(0, est.promptTokens);
  std::int64_t extra = 0;
  if (__builtin_mul_overflow(e, kPromptBoundEstimateFactor, &extra)) return kMax;
  std::int64_t bound = 0;
  if (__builtin_add_overflow(bytes, extra, &bound)) return kMax;
  return bound;
}

routing::Usage clampUsage(routing::Usage u, const routing::TokenEstimate& est, std::size_t requestBodyBytes) {
  u.promptTokens = std::clamp<std::int64_t>(u.promptTokens, 0, promptTokenBound(est, requestBodyBytes));
  u.completionTokens = std::clamp<std::int64_t>(u.completionTokens, 0, std::max<std::int64_t>(0, est.maxOutputTokens));
  return u;
}

std::string quoteBounded(std::string_view s, std::size_t maxBytes) {
  if (s.size() <= maxBytes) return std::string(s);
  std::size_t cut = maxBytes;
  // Back up over continuation bytes (10xxxxxx) so no character is split.
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  std::string out(s.substr(0, cut));
  out += "\u2026";
  return out;
}

int jsonDepth(std::string_view s, int limit) {
  int depth = 0, maxDepth = 0;
  bool inString = false, escape = false;
  for (char c : s) {
    if (inString) {
      if (escape) escape = false;
      else if (c == '\\') escape = true;
      else if (c == '"') inString = false;
      continue;
    }
    if (c == '"') inString = true;
    else if (c == '[' || c == '{') {
      if (++depth > maxDepth) {
        maxDepth = depth;
        if (maxDepth > limit) return maxDepth;
      }
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return maxDepth;
}

namespace {
ApiError bad(std::string msg, std::optional<std::string> param = std::nullopt,
             std::optional<std::string> code = std::nullopt) {
  ApiError e;
  e.status = 400;
  e.message = std::move(msg);
  e.param = std::move(param);
  e.code = std::move(code);
  return e;
}

const char* typeName(const json& j) { return routing::jsonTypeName(j); }

bool isTokenId(const json& v) {
  return v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0);
}

// POST /v1/embeddings: input, encoding_format, dimensions (parseRequestBody).
std::optional<ApiError> checkEmbeddings(const json& j) {
  auto in = j.find("input");
  if (in == j.end() || in->is_null())
    return bad("Missing required parameter: 'input'.", "input", "missing_required_parameter");
  if (in->is_string()) {
    if (in->get_ref<const std::string&>().empty())
      return bad("Invalid 'input': empty string. Expected a string with minimum length 1.", "input", "empty_string");
  } else if (in->is_array()) {
    if (in->empty()) return bad("Invalid 'input': empty array. Expected an array with minimum length 1.", "input", "empty_array");
    // One kind throughout, the first element's: strings, token ids or arrays of token ids.
    const json& first = (*in)[0];
    enum { Strings, Ids, IdArrays } shape = first.is_string() ? Strings : first.is_array() ? IdArrays : Ids;
    for (size_t i = 0; i < in->size(); ++i) {
      const json& v = (*in)[i];
      const std::string p = "input[" + std::to_string(i) + "]";
      const char* want = shape == Strings ? "a string" : shape == Ids ? "a non-negative integer token id" : "an array of token ids";
      const bool typeOk = shape == Strings ? v.is_string() : shape == Ids ? isTokenId(v) : v.is_array();
      if (!typeOk)
        return bad("Invalid type for '" + p + "': expected " + want + ", but got " +
                       (v.is_number() ? v.dump() : std::string(typeName(v))) + ".",
                   p, "invalid_type");
      if (shape == Strings && v.get_ref<const std::string&>().empty())
        return bad("Invalid '" + p + "': empty string. Expected a string with minimum length 1.", p, "empty_string");
      if (shape == IdArrays) {
        if (v.empty()) return bad("Invalid '" + p + "': empty array. Expected an array with minimum length 1.", p, "empty_array");
        for (size_t k = 0; k < v.size(); ++k)
          if (!isTokenId(v[k])) {
            const std::string pk = p + "[" + std::to_string(k) + "]";
            return bad("Invalid type for '" + pk + "': expected a non-negative integer token id, but got " +
                           (v[k].is_number() ? v[k].dump() : std::string(typeName(v[k]))) + ".",
                       pk, "invalid_type");
          }
      }
    }
  } else {
    return bad(std::string("Invalid type for 'input': expected a string or array, but got ") + typeName(*in) + ".",
               "input", "invalid_type");
  }
  if (auto f = j.find("encoding_format"); f != j.end() && !f->is_null()) {
    if (!f->is_string())
      return bad(std::string("Invalid type for 'encoding_format': expected a string, but got ") + typeName(*f) + ".",
                 "encoding_format", "invalid_type");
    const auto& s = f->get_ref<const std::string&>();
    if (s != "float" && s != "base64")
      return bad("Invalid value for 'encoding_format': '" + quoteBounded(s, 64) +
                     "'. Supported values are: 'float' and 'base64'.",
                 "encoding_format", "invalid_value");
  }
  if (auto d = j.find("dimensions"); d != j.end() && !d->is_null()) {
    const bool ok = d->is_number_unsigned() ? d->get<std::uint64_t>() > 0
                                            : d->is_number_integer() && d->get<int64_t>() > 0;
    if (!ok)
      return bad("Invalid 'dimensions': expected a positive integer, but got " +
                     (d->is_number() ? d->dump() : std::string(typeName(*d))) + ".",
                 "dimensions", "invalid_value");
  }
  return std::nullopt;
}
}  // namespace

std::expected<json, ApiError> parseRequestBody(std::string_view body, routing::ApiKind kind, bool requireModel,
                                               int maxDepth) {
  if (body.empty())
    return std::unexpected(bad("We could not parse the JSON body of your request: the body is empty.", std::nullopt,
                               "invalid_json"));
  if (jsonDepth(body, maxDepth) > maxDepth)
    return std::unexpected(bad("The JSON body of your request nests deeper than " + std::to_string(maxDepth) +
                                   " levels.",
                               std::nullopt, "invalid_json"));
  json j = json::parse(body.begin(), body.end(), nullptr, false);
  if (j.is_discarded())
    return std::unexpected(bad("We could not parse the JSON body of your request. (HINT: This likely means you aren't "
                               "using your HTTP library correctly. The OpenAI API expects a JSON payload.)",
                               std::nullopt, "invalid_json"));
  if (!j.is_object())
    return std::unexpected(bad(std::string("The request body must be a JSON object, got ") + typeName(j) + ".",
                               std::nullopt, "invalid_json"));
  auto model = j.find("model");
  if (model == j.end() || model->is_null()) {
    if (requireModel) return std::unexpected(bad("You must provide a model parameter.", "model"));
  } else if (!model->is_string()) {
    return std::unexpected(bad(std::string("Invalid type for 'model': expected a string, but got ") + typeName(*model) + ".",
                               "model", "invalid_type"));
  } else if (model->get_ref<const std::string&>().empty() && requireModel) {
    return std::unexpected(bad("You must provide a model parameter.", "model"));
  }
  if (kind == routing::ApiKind::Embeddings) {
    if (auto e = checkEmbeddings(j)) return std::unexpected(std::move(*e));
    return j;  // no stream or max_tokens: an embedding generates nothing
  }
  if (kind == routing::ApiKind::ChatCompletions) {
    auto m = j.find("messages");
    if (m == j.end() || m->is_null()) return std::unexpected(bad("Missing required parameter: 'messages'.", "messages", "missing_required_parameter"));
    if (!m->is_array())
      return std::unexpected(bad(std::string("Invalid type for 'messages': expected an array, but got ") + typeName(*m) + ".",
                                 "messages", "invalid_type"));
    if (m->empty()) return std::unexpected(bad("Invalid 'messages': empty array. Expected an array with minimum length 1.", "messages", "empty_array"));
    for (size_t i = 0; i < m->size(); ++i) {
      const json& msg = (*m)[i];
      std::string p = "messages[" + std::to_string(i) + "]";
      if (!msg.is_object())
        return std::unexpected(bad("Invalid type for '" + p + "': expected an object, but got " + typeName(msg) + ".", p, "invalid_type"));
      auto role = msg.find("role");
      if (role == msg.end() || !role->is_string())
        return std::unexpected(bad("Missing required parameter: '" + p + ".role'.", p + ".role", "missing_required_parameter"));
    }
  } else {
    auto p = j.find("prompt");
    if (p == j.end() || p->is_null()) return std::unexpected(bad("Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter"));
    if (!p->is_string() && !p->is_array())
      return std::unexpected(bad(std::string("Invalid type for 'prompt': expected a string or array, but got ") + typeName(*p) + ".",
                                 "prompt", "invalid_type"));
  }
  if (auto s = j.find("stream"); s != j.end() && !s->is_null() && !s->is_boolean())
    return std::unexpected(bad(std::string("Invalid type for 'stream': expected a boolean, but got ") + typeName(*s) + ".",
                               "stream", "invalid_type"));
  for (const char* k : {"max_tokens", "max_completion_tokens", "n"}) {
    auto it = j.find(k);
    if (it == j.end() || it->is_null()) continue;
    bool ok = it->is_number_unsigned() || (it->is_number_integer() && it->get<int64_t>() >= 0);
    if (!ok)
      return std::unexpected(bad(std::string("Invalid '") + k + "': expected a non-negative integer, but got " +
                                     (it->is_number() ? it->dump() : std::string(typeName(*it))) + ".",
                                 k, "invalid_value"));
  }
  return j;
}

// ---------------------------------------------------------------------------------

DeploymentIndex::DeploymentIndex(routing::RoutingTable table) : table_(std::move(table)) {
  for (const auto& d : table_.deployments) {
    byKey_[d.deployment.str()] = &d;
    byName_[d.deployment.name].push_back(&d);
    byModel_[d.model].push_back(&d);
  }
}

const routing::DeploymentRoutes* DeploymentIndex::pick(
    std::string_view key, const std::unordered_map<std::string, std::vector<const routing::DeploymentRoutes*>>& m) const {
  auto it = m.find(std::string(key));
  if (it == m.end() || it->second.empty()) return nullptr;
  const auto& cands = it->second;
  if (cands.size() == 1) return cands.front();
  // Prefer a candidate that no other candidate spills over to (the "primary").
  for (const auto* c : cands) {
    bool isTarget = false;
    for (const auto* o : cands)
      if (o != c && o->spillover && *o->spillover == c->deployment.name &&
          o->deployment.namespace_ == c->deployment.namespace_)
        isTarget = true;
    if (!isTarget) return c;
  }
  return cands.front();
}

const routing::DeploymentRoutes* DeploymentIndex::resolve(std::string_view model) const {
  if (model.empty()) return nullptr;
  if (auto it = byKey_.find(std::string(model)); it != byKey_.end()) return it->second;
  if (auto* d = pick(model, byName_)) return d;
  return pick(model, byModel_);
}

const routing::DeploymentRoutes* DeploymentIndex::spilloverOf(const routing::DeploymentRoutes& d) const {
  if (!d.spillover) return nullptr;
  return table_.find({d.deployment.namespace_, *d.spillover});
}

}  // namespace waterline::router
