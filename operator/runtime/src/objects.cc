#include "waterline/runtime/objects.h"

#include <algorithm>

namespace waterline::runtime {

namespace {
const Json kEmptyObject = Json::object();
}

bool hasFinalizer(const Json& obj, const std::string& f) {
  const auto& md = obj.at("metadata");
  if (!md.contains("finalizers")) return false;
  const auto& fs = md["finalizers"];
  return std::find(fs.begin(), fs.end(), f) != fs.end();
}

bool addFinalizer(Json& obj, const std::string& f) {
  if (hasFinalizer(obj, f)) return false;
  auto& md = obj["metadata"];
  if (!md.contains("finalizers") || !md["finalizers"].is_array()) md["finalizers"] = Json::array();
  md["finalizers"].push_back(f);
  return true;
}

bool removeFinalizer(Json& obj, const std::string& f) {
  if (!hasFinalizer(obj, f)) return false;
  auto& fs = obj["metadata"]["finalizers"];
  Json out = Json::array();
  for (const auto& x : fs)
    if (x != f) out.push_back(x);
  fs = out;
  return true;
}

bool isBeingDeleted(const Json& obj) {
  const auto& md = obj.at("metadata");
  return md.contains("deletionTimestamp") && !md["deletionTimestamp"].is_null();
}

std::string finalizersPatch(const Json& obj) {
  const auto& md = obj.at("metadata");
  Json patch = {{"metadata",
                 {{"finalizers", md.value("finalizers", Json::array())},
                  {"resourceVersion", md.value("resourceVersion", "")}}}};
  return patch.dump();
}

Json ownerReference(const Json& owner, bool controller, bool blockOwnerDeletion) {
  const auto& md = owner.at("metadata");
  return {{"apiVersion", owner.value("apiVersion", "")},
          {"kind", owner.value("kind", "")},
          {"name", md.value("name", "")},
          {"uid", md.value("uid", "")},
          {"controller", controller},
          {"blockOwnerDeletion", blockOwnerDeletion}};
}

std::optional<Json> controllerOf(const Json& obj) {
  const auto& md = obj.at("metadata");
  if (!md.contains("ownerReferences")) return std::nullopt;
  for (const auto& ref : md["ownerReferences"])
    if (ref.value("controller", false)) return ref;
  return std::nullopt;
}

bool setControllerReference(const Json& owner, Json& obj) {
  auto existing = controllerOf(obj);
  const std::string uid = uidOf(owner);
  if (existing && existing->value("uid", "") != uid) return false;
  auto& md = obj["metadata"];
  if (!md.contains("ownerReferences")) md["ownerReferences"] = Json::array();
  for (auto& ref : md["ownerReferences"]) {
    if (ref.value("uid", "") == uid) {
      ref = ownerReference(owner);
      return true;
    }
  }
  md["ownerReferences"].push_back(ownerReference(owner));
  return true;
}

bool isControlledBy(const Json& obj, const Json& owner) {
  auto c = controllerOf(obj);
  return c && c->value("uid", "") == uidOf(owner);
}

std::string nameOf(const Json& obj) { return obj.at("metadata").value("name", ""); }
std::string namespaceOf(const Json& obj) { return obj.at("metadata").value("namespace", ""); }
std::string uidOf(const Json& obj) { return obj.at("metadata").value("uid", ""); }
int64_t generationOf(const Json& obj) { return obj.at("metadata").value("generation", int64_t{0}); }
const Json& labelsOf(const Json& obj) {
  const auto& md = obj.at("metadata");
  auto it = md.find("labels");
  return it == md.end() || !it->is_object() ? kEmptyObject : *it;
}

Predicate generationChangedPredicate() {
  return Predicate{nullptr,
                   [](const Json& a, const Json& b) { return generationOf(a) != generationOf(b); },
                   nullptr};
}

Predicate metadataOrGenerationChangedPredicate() {
  return Predicate{nullptr,
                   [](const Json& a, const Json& b) {
                     const auto& ma = a.at("metadata");
                     const auto& mb = b.at("metadata");
                     auto field = [](const Json& m, const char* k) {
                       auto it = m.find(k);
                       return it == m.end() ? Json() : *it;
                     };
                     for (const char* k : {"generation", "labels", "annotations", "finalizers",
                                           "deletionTimestamp"})
                       if (field(ma, k) != field(mb, k)) return true;
                     return false;
                   },
                   nullptr};
}

Predicate labelPredicate(const std::string& key, const std::string& value) {
  auto match = [key, value](const Json& o) {
    const auto& l = labelsOf(o);
    auto it = l.find(key);
    return it != l.end() && it->is_string() && *it == value;
  };
  return Predicate{match, [match](const Json&, const Json& b) { return match(b); }, match};
}

}  // namespace waterline::runtime
