#include "waterline/caching/answer.h"

#include <algorithm>
#include <map>

#include <nlohmann/json.hpp>

namespace waterline::caching {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

namespace {

std::size_t heapBytes(const std::string& s) {
  // Short strings live inside the object (libstdc++ SSO: 15 chars).
  return s.capacity() > 15 ? s.capacity() + 1 : 0;
}

bool nonNull(const json& o, const char* key) {
  auto it = o.find(key);
  return it != o.end() && !it->is_null();
}

std::optional<std::int64_t> intField(const json& o, const char* key) {
  auto it = o.find(key);
  if (it == o.end() || !it->is_number_integer()) return std::nullopt;
  return it->get<std::int64_t>();
}

void readUsage(const json& u, StoredAnswer& a) {
  if (!u.is_object()) return;
  a.promptTokens = intField(u, "prompt_tokens").value_or(0);
  a.completionTokens = intField(u, "completion_tokens").value_or(0);
}

// Finish reasons a replay can reproduce: not the ones that announce a tool call.
bool replayableFinish(const std::string& f) { return f != "tool_calls" && f != "function_call"; }

}  // namespace

std::size_t StoredAnswer::bytes() const {
  std::size_t n = sizeof(StoredAnswer) + heapBytes(model);
  if (systemFingerprint) n += heapBytes(*systemFingerprint);
  n += choices.capacity() * sizeof(StoredChoice);
  for (const auto& c : choices) n += heapBytes(c.content) + heapBytes(c.finishReason);
  return n;
}

std::optional<StoredAnswer> answerFromJson(std::string_view body, Api api) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  if (nonNull(j, "error")) return std::nullopt;
  auto ch = j.find("choices");
  if (ch == j.end() || !ch->is_array() || ch->empty()) return std::nullopt;

  StoredAnswer a;
  a.api = api;
  if (auto m = j.find("model"); m != j.end() && m->is_string()) a.model = m->get<std::string>();
  if (auto f = j.find("system_fingerprint"); f != j.end() && f->is_string()) a.systemFingerprint = f->get<std::string>();
  if (auto u = j.find("usage"); u != j.end()) readUsage(*u, a);

  int position = 0;
  for (const auto& c : *ch) {
    if (!c.is_object()) return std::nullopt;
    StoredChoice sc;
    sc.index = position++;
    if (auto i = c.find("index"); i != c.end()) {
      if (!i->is_number_integer()) return std::nullopt;
      sc.index = i->get<int>();
    }
    if (nonNull(c, "logprobs")) return std::nullopt;
    auto fr = c.find("finish_reason");
    if (fr == c.end() || !fr->is_string()) return std::nullopt;
    sc.finishReason = fr->get<std::string>();
    if (!replayableFinish(sc.finishReason)) return std::nullopt;
    if (api == Api::Chat) {
      auto m = c.find("message");
      if (m == c.end() || !m->is_object()) return std::nullopt;
      for (const char* k : {"tool_calls", "function_call", "refusal", "audio"}) {
        if (nonNull(*m, k)) return std::nullopt;
      }
      auto ct = m->find("content");
      if (ct == m->end() || !ct->is_string()) return std::nullopt;
      sc.content = ct->get<std::string>();
    } else {
      auto t = c.find("text");
      if (t == c.end() || !t->is_string()) return std::nullopt;
      sc.content = t->get<std::string>();
    }
    a.choices.push_back(std::move(sc));
  }
  std::sort(a.choices.begin(), a.choices.end(), [](const auto& x, const auto& y) { return x.index < y.index; });
  for (std::size_t i = 1; i < a.choices.size(); ++i) {
    if (a.choices[i].index == a.choices[i - 1].index) return std::nullopt;
  }
  a.choices.shrink_to_fit();
  return a;
}

// ---------------------------------------------------------------------------------------
// SSE collection

struct SseAnswerCollector::State {
  Api api;
  std::size_t maxBytes;
  std::size_t total = 0;
  bool failed = false;
  bool done = false;
  bool lastWasCR = false;
  std::string line;       // the current line (without its terminator)
  std::string data;       // the current event's data lines, joined by '\n'
  bool hasData = false;
  std::string eventType;  // the current event's `event:` field
  StoredAnswer answer;
  bool sawModel = false;
  struct Choice {
    std::string content;
    std::optional<std::string> finish;
  };
  std::map<int, Choice> choices;

  void dispatch() {
    if (!hasData) {
      eventType.clear();
      return;
    }
    const bool isError = eventType == "error";
    eventType.clear();
    hasData = false;
    std::string d = std::move(data);
    data.clear();
    if (done) return;  // nothing after [DONE] counts
    if (isError) {
      failed = true;
      return;
    }
    if (d == "[DONE]") {
      done = true;
      return;
    }
    json j = json::parse(d, nullptr, false);
    if (j.is_discarded() || !j.is_object() || nonNull(j, "error")) {
      failed = true;
      return;
    }
    if (!sawModel) {
      if (auto m = j.find("model"); m != j.end() && m->is_string()) {
        answer.model = m->get<std::string>();
        sawModel = true;
      }
    }
    if (auto f = j.find("system_fingerprint"); f != j.end() && f->is_string()) {
      answer.systemFingerprint = f->get<std::string>();
    }
    if (auto u = j.find("usage"); u != j.end() && u->is_object()) readUsage(*u, answer);
    auto ch = j.find("choices");
    if (ch == j.end() || ch->is_null()) return;
    if (!ch->is_array()) {
      failed = true;
      return;
    }
    for (const auto& c : *ch) {
      if (!c.is_object() || nonNull(c, "logprobs")) {
        failed = true;
        return;
      }
      int index = 0;
      if (auto i = c.find("index"); i != c.end()) {
        if (!i->is_number_integer()) {
          failed = true;
          return;
        }
        index = i->get<int>();
      }
      Choice& sc = choices[index];
      if (api == Api::Chat) {
        if (auto dl = c.find("delta"); dl != c.end() && !dl->is_null()) {
          if (!dl->is_object()) {
            failed = true;
            return;
          }
          for (const char* k : {"tool_calls", "function_call", "refusal", "audio"}) {
            if (nonNull(*dl, k)) {
              failed = true;
              return;
            }
          }
          if (auto ct = dl->find("content"); ct != dl->end() && !ct->is_null()) {
            if (!ct->is_string()) {
              failed = true;
              return;
            }
            sc.content += ct->get_ref<const std::string&>();
          }
        }
      } else if (auto t = c.find("text"); t != c.end() && !t->is_null()) {
        if (!t->is_string()) {
          failed = true;
          return;
        }
        sc.content += t->get_ref<const std::string&>();
      }
      if (auto fr = c.find("finish_reason"); fr != c.end() && !fr->is_null()) {
        if (!fr->is_string() || !replayableFinish(fr->get_ref<const std::string&>())) {
          failed = true;
          return;
        }
        sc.finish = fr->get<std::string>();
      }
    }
  }

  void endLine() {
    if (line.empty()) {
      dispatch();
      return;
    }
    if (line[0] == ':') {  // comment
      line.clear();
      return;
    }
    std::string_view l(line);
    std::string_view field = l, value;
    if (auto colon = l.find(':'); colon != std::string_view::npos) {
      field = l.substr(0, colon);
      value = l.substr(colon + 1);
      if (!value.empty() && value[0] == ' ') value.remove_prefix(1);
    }
    if (field == "data") {
      if (hasData) data += '\n';
      data += value;
      hasData = true;
    } else if (field == "event") {
      eventType = std::string(value);
    }
    line.clear();
  }
};

SseAnswerCollector::SseAnswerCollector(Api api, std::size_t maxBytes) : s_(std::make_shared<State>()) {
  s_->api = api;
  s_->maxBytes = maxBytes;
  s_->answer.api = api;
}

void SseAnswerCollector::feed(std::string_view bytes) {
  State& s = *s_;
  s.total += bytes.size();
  if (s.failed) return;
  if (s.total > s.maxBytes) {
    s.failed = true;
    s.line.clear();
    s.data.clear();
    return;
  }
  std::size_t i = 0;
  const std::size_t n = bytes.size();
  while (i < n) {
    if (s.lastWasCR) {  // the second half of a CRLF split across feeds or lines
      s.lastWasCR = false;
      if (bytes[i] == '\n') {
        ++i;
        continue;
      }
    }
    // The rest of the line, in one piece.
    std::size_t j = i;
    while (j < n && bytes[j] != '\n' && bytes[j] != '\r') ++j;
    s.line.append(bytes.data() + i, j - i);
    if (j == n) break;
    s.lastWasCR = bytes[j] == '\r';
    i = j + 1;
    s.endLine();
    if (s.failed) return;
  }
}

std::optional<StoredAnswer> SseAnswerCollector::finish() {
  const State& s = *s_;
  // An event not terminated by a blank line is incomplete (the stream was cut): not used.
  if (s.failed || !s.done || s.total > s.maxBytes || s.choices.empty()) return std::nullopt;
  StoredAnswer a = s.answer;
  a.choices.clear();
  a.choices.reserve(s.choices.size());
  for (const auto& [index, c] : s.choices) {
    if (!c.finish) return std::nullopt;
    a.choices.push_back(StoredChoice{index, c.content, *c.finish});
  }
  return a;
}

// ---------------------------------------------------------------------------------------
// Rendering

namespace {

ojson header(const StoredAnswer& a, std::string_view id, const char* object, std::int64_t created) {
  ojson j = ojson::object();
  j["id"] = std::string(id);
  j["object"] = object;
  j["created"] = created;
  j["model"] = a.model;
  if (a.systemFingerprint) j["system_fingerprint"] = *a.systemFingerprint;
  return j;
}

ojson usage(const StoredAnswer& a) {
  ojson u = ojson::object();
  u["prompt_tokens"] = a.promptTokens;
  u["completion_tokens"] = a.completionTokens;
  u["total_tokens"] = a.promptTokens + a.completionTokens;
  return u;
}

std::string dump(const ojson& j) { return j.dump(-1, ' ', false, ojson::error_handler_t::replace); }

}  // namespace

std::string renderJson(const StoredAnswer& a, std::string_view id, std::int64_t created) {
  const bool chat = a.api == Api::Chat;
  ojson j = header(a, id, chat ? "chat.completion" : "text_completion", created);
  ojson choices = ojson::array();
  for (const auto& c : a.choices) {
    ojson o = ojson::object();
    if (chat) {
      o["index"] = c.index;
      ojson m = ojson::object();
      m["role"] = "assistant";
      m["content"] = c.content;
      o["message"] = std::move(m);
      o["logprobs"] = nullptr;
    } else {
      o["text"] = c.content;
      o["index"] = c.index;
      o["logprobs"] = nullptr;
    }
    o["finish_reason"] = c.finishReason;
    choices.push_back(std::move(o));
  }
  j["choices"] = std::move(choices);
  j["usage"] = usage(a);
  return dump(j);
}

std::string renderSse(const StoredAnswer& a, std::string_view id, std::int64_t created, bool includeUsage) {
  const bool chat = a.api == Api::Chat;
  const char* object = chat ? "chat.completion.chunk" : "text_completion";
  std::string out;
  auto event = [&](ojson choice) {
    ojson j = header(a, id, object, created);
    j["choices"] = ojson::array({std::move(choice)});
    if (includeUsage) j["usage"] = nullptr;
    out += "data: ";
    out += dump(j);
    out += "\n\n";
  };
  for (const auto& c : a.choices) {
    if (chat) {
      auto chunk = [&](ojson delta, const std::optional<std::string>& finish) {
        ojson o = ojson::object();
        o["index"] = c.index;
        o["delta"] = std::move(delta);
        o["logprobs"] = nullptr;
        o["finish_reason"] = finish ? ojson(*finish) : ojson(nullptr);
        event(std::move(o));
      };
      ojson first = ojson::object();
      first["role"] = "assistant";
      first["content"] = "";
      chunk(std::move(first), std::nullopt);
      ojson body = ojson::object();
      body["content"] = c.content;
      chunk(std::move(body), std::nullopt);
      chunk(ojson::object(), c.finishReason);
    } else {
      auto chunk = [&](const std::string& text, const std::optional<std::string>& finish) {
        ojson o = ojson::object();
        o["text"] = text;
        o["index"] = c.index;
        o["logprobs"] = nullptr;
        o["finish_reason"] = finish ? ojson(*finish) : ojson(nullptr);
        event(std::move(o));
      };
      chunk(c.content, std::nullopt);
      chunk("", c.finishReason);
    }
  }
  if (includeUsage) {
    ojson j = header(a, id, object, created);
    j["choices"] = ojson::array();
    j["usage"] = usage(a);
    out += "data: ";
    out += dump(j);
    out += "\n\n";
  }
  out += "data: [DONE]\n\n";
  return out;
}

}  // namespace waterline::caching
