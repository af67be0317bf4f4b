#include "waterline/dra/resource.h"

#include "waterline/api/quantity.h"

#include <cctype>
#include <limits>

namespace waterline::dra {

namespace {
using Json = nlohmann::json;
using i128 = __int128;

std::unexpected<std::string> fail(std::string msg) { return std::unexpected(std::move(msg)); }

// Reads an optional string member; a present non-string is an error.
std::expected<std::string, std::string> str(const Json& obj, const char* field, const std::string& where) {
  auto it = obj.find(field);
  if (it == obj.end() || it->is_null()) return std::string();
  if (!it->is_string()) return fail(where + "." + field + ": not a string");
  return it->get<std::string>();
}

std::expected<int64_t, std::string> integer(const Json& obj, const char* field, const std::string& where,
                                            int64_t dflt) {
  auto it = obj.find(field);
  if (it == obj.end() || it->is_null()) return dflt;
  if (!it->is_number_integer()) return fail(where + "." + field + ": not an integer");
  return it->get<int64_t>();
}

const Json* object(const Json& obj, const char* field) {
  auto it = obj.find(field);
  if (it == obj.end() || !it->is_object()) return nullptr;
  return &*it;
}

const Json* array(const Json& obj, const char* field) {
  auto it = obj.find(field);
  if (it == obj.end() || !it->is_array()) return nullptr;
  return &*it;
}

// counters / capacity: {<name>: {value: <quantity>}}
std::expected<std::map<std::string, int64_t>, std::string> valueMap(const Json* m, const std::string& where) {
  std::map<std::string, int64_t> out;
  if (!m) return out;
  if (!m->is_object()) return fail(where + ": not an object");
  for (auto& [k, v] : m->items()) {
    if (!v.is_object() || !v.contains("value")) return fail(where + "." + k + ": missing value");
    const Json& q = v["value"];
    std::expected<int64_t, std::string> n;
    if (q.is_string()) {
      n = parseQuantity(q.get<std::string>());
    } else if (q.is_number_integer() && q.get<int64_t>() >= 0) {
      n = q.get<int64_t>();
    } else {
      n = fail("not a quantity");
    }
    if (!n) return fail(where + "." + k + ": " + n.error());
    out[k] = *n;
  }
  return out;
}

std::string unqualified(const std::string& name, const std::string& driver) {
  if (name.size() > driver.size() + 1 && name.compare(0, driver.size(), driver) == 0 &&
      name[driver.size()] == '/')
    return name.substr(driver.size() + 1);
  return name;
}

std::expected<Device, std::string> decodeDevice(const Json& d, const std::string& driver, const std::string& where) {
  if (!d.is_object()) return fail(where + ": not an object");
  Device dev;
  auto name = str(d, "name", where);
  if (!name) return fail(name.error());
  if (name->empty()) return fail(where + ".name: required");
  dev.name = *name;
  std::string at = where + "(" + dev.name + ")";
  if (d.contains("basic")) return fail(at + ": v1beta1 'basic' device; expected resource.k8s.io/v1");
  if (const Json* attrs = object(d, "attributes")) {
    for (auto& [k, v] : attrs->items()) {
      Attribute a;
      int set = 0;
      if (v.contains("string") && v["string"].is_string()) {
        a.kind = Attribute::Kind::String, a.text = v["string"].get<std::string>(), ++set;
      }
      if (v.contains("version") && v["version"].is_string()) {
        a.kind = Attribute::Kind::Version, a.text = v["version"].get<std::string>(), ++set;
      }
      if (v.contains("int") && v["int"].is_number_integer()) {
        a.kind = Attribute::Kind::Int, a.number = v["int"].get<int64_t>(), ++set;
      }
      if (v.contains("bool") && v["bool"].is_boolean()) {
        a.kind = Attribute::Kind::Bool, a.flag = v["bool"].get<bool>(), ++set;
      }
      if (set != 1) return fail(at + ".attributes." + k + ": exactly one of string, int, bool, version");
      dev.attributes[unqualified(k, driver)] = std::move(a);
    }
  }
  auto cap = valueMap(object(d, "capacity"), at + ".capacity");
  if (!cap) return fail(cap.error());
  for (auto& [k, v] : *cap) dev.capacity[unqualified(k, driver)] = v;
  if (const Json* cc = array(d, "consumesCounters")) {
    for (const Json& c : *cc) {
      CounterConsumption cons;
      auto set = str(c, "counterSet", at + ".consumesCounters");
      if (!set) return fail(set.error());
      if (set->empty()) return fail(at + ".consumesCounters.counterSet: required");
      cons.counter_set = *set;
      auto counters = valueMap(object(c, "counters"), at + ".consumesCounters." + *set);
      if (!counters) return fail(counters.error());
      cons.counters = std::move(*counters);
      dev.consumes_counters.push_back(std::move(cons));
    }
  }
  if (const Json* ts = array(d, "taints")) {
    for (const Json& t : *ts) {
      DeviceTaint taint;
      auto key = str(t, "key", at + ".taints");
      auto value = str(t, "value", at + ".taints");
      auto effect = str(t, "effect", at + ".taints");
      if (!key || !value || !effect) return fail(at + ".taints: bad taint");
      taint.key = *key, taint.value = *value, taint.effect = *effect;
      dev.taints.push_back(std::move(taint));
    }
  }
  return dev;
}
}  // namespace

std::expected<int64_t, std::string> parseQuantity(std::string_view s) {
  // The project's one resource.Quantity parser (operator/api), whole units rounded up.
  auto q = api::Quantity::parse(s);
  if (!q) return fail("invalid quantity \"" + std::string(s) + "\": " + q.error());
  if (q->value() < 0) return fail("invalid quantity \"" + std::string(s) + "\": negative");  // capacities and counters
  return q->value();
}

const std::string* Device::stringAttr(std::string_view name) const {
  auto it = attributes.find(std::string(name));
  if (it == attributes.end()) return nullptr;
  if (it->second.kind != Attribute::Kind::String && it->second.kind != Attribute::Kind::Version) return nullptr;
  return &it->second.text;
}

std::optional<int64_t> Device::intAttr(std::string_view name) const {
  auto it = attributes.find(std::string(name));
  if (it == attributes.end() || it->second.kind != Attribute::Kind::Int) return std::nullopt;
  return it->second.number;
}

std::optional<int64_t> Device::capacityOf(std::string_view name) const {
  auto it = capacity.find(std::string(name));
  if (it == capacity.end()) return std::nullopt;
  return it->second;
}

bool Device::tainted() const {
  for (const auto& t : taints)
    if (t.effect == "NoSchedule" || t.effect == "NoExecute") return true;
  return false;
}

std::expected<ResourceSlice, std::string> decodeResourceSlice(const nlohmann::json& j) {
  if (!j.is_object()) return fail("ResourceSlice: not an object");
  if (auto av = j.find("apiVersion"); av != j.end() && *av != "resource.k8s.io/v1")
    return fail("ResourceSlice: apiVersion " + av->dump() + ", want resource.k8s.io/v1");
  ResourceSlice s;
  if (const Json* meta = object(j, "metadata")) {
    auto n = str(*meta, "name", "metadata");
    if (!n) return fail(n.error());
    s.name = *n;
  }
  const Json* spec = object(j, "spec");
  if (!spec) return fail("ResourceSlice " + s.name + ": spec missing");
  std::string where = "ResourceSlice " + s.name + ": spec";
  auto driver = str(*spec, "driver", where);
  if (!driver) return fail(driver.error());
  if (driver->empty()) return fail(where + ".driver: required");
  s.driver = *driver;
  const Json* pool = object(*spec, "pool");
  if (!pool) return fail(where + ".pool: required");
  auto pname = str(*pool, "name", where + ".pool");
  if (!pname) return fail(pname.error());
  if (pname->empty()) return fail(where + ".pool.name: required");
  s.pool = *pname;
  auto gen = integer(*pool, "generation", where + ".pool", 0);
  if (!gen) return fail(gen.error());
  auto count = integer(*pool, "resourceSliceCount", where + ".pool", 1);
  if (!count) return fail(count.error());
  if (*gen < 0 || *count < 1) return fail(where + ".pool: generation >= 0 and resourceSliceCount >= 1");
  s.generation = *gen, s.resource_slice_count = *count;
  auto node = str(*spec, "nodeName", where);
  if (!node) return fail(node.error());
  s.node_name = *node;
  if (auto an = spec->find("allNodes"); an != spec->end() && an->is_boolean()) s.all_nodes = an->get<bool>();
  s.node_selector = spec->contains("nodeSelector") && !(*spec)["nodeSelector"].is_null();
  if (auto pdns = spec->find("perDeviceNodeSelection"); pdns != spec->end() && pdns->is_boolean() && pdns->get<bool>())
    s.node_selector = true;  // per-device placement: treated like a selector (unsupported)
  if (const Json* devs = array(*spec, "devices")) {
    for (size_t i = 0; i < devs->size(); ++i) {
      auto d = decodeDevice((*devs)[i], s.driver, where + ".devices[" + std::to_string(i) + "]");
      if (!d) return fail(d.error());
      s.devices.push_back(std::move(*d));
    }
  }
  if (const Json* sc = array(*spec, "sharedCounters")) {
    for (const Json& c : *sc) {
      CounterSet set;
      auto n = str(c, "name", where + ".sharedCounters");
      if (!n) return fail(n.error());
      if (n->empty()) return fail(where + ".sharedCounters.name: required");
      set.name = *n;
      auto counters = valueMap(object(c, "counters"), where + ".sharedCounters." + set.name);
      if (!counters) return fail(counters.error());
      set.counters = std::move(*counters);
      s.shared_counters.push_back(std::move(set));
    }
  }
  return s;
}

std::expected<ResourceClaim, std::string> decodeResourceClaim(const nlohmann::json& j) {
  if (!j.is_object()) return fail("ResourceClaim: not an object");
  if (auto av = j.find("apiVersion"); av != j.end() && *av != "resource.k8s.io/v1")
    return fail("ResourceClaim: apiVersion " + av->dump() + ", want resource.k8s.io/v1");
  ResourceClaim c;
  if (const Json* meta = object(j, "metadata")) {
    auto ns = str(*meta, "namespace", "metadata");
    auto n = str(*meta, "name", "metadata");
    auto uid = str(*meta, "uid", "metadata");
    if (!ns || !n || !uid) return fail("ResourceClaim: bad metadata");
    c.ns = *ns, c.name = *n, c.uid = *uid;
  }
  std::string where = "ResourceClaim " + c.key();
  if (const Json* spec = object(j, "spec")) {
    if (const Json* devices = object(*spec, "devices")) {
      if (const Json* reqs = array(*devices, "requests")) {
        for (const Json& r : *reqs) {
          DeviceRequest req;
          auto n = str(r, "name", where + ".spec.devices.requests");
          if (!n) return fail(n.error());
          req.name = *n;
          if (const Json* ex = object(r, "exactly")) {
            std::string at = where + ".requests." + req.name + ".exactly";
            auto cls = str(*ex, "deviceClassName", at);
            auto mode = str(*ex, "allocationMode", at);
            auto count = integer(*ex, "count", at, 1);
            if (!cls) return fail(cls.error());
            if (!mode) return fail(mode.error());
            if (!count) return fail(count.error());
            req.device_class_name = *cls;
            if (!mode->empty()) req.allocation_mode = *mode;
            req.count = *count;
            if (const Json* sels = array(*ex, "selectors")) {
              for (const Json& s : *sels) {
                if (s.contains("cel") && s["cel"].contains("expression") && s["cel"]["expression"].is_string())
                  req.selectors.push_back(s["cel"]["expression"].get<std::string>());
              }
            }
          } else if (r.contains("firstAvailable")) {
            req.first_available = true;
          }
          c.requests.push_back(std::move(req));
        }
      }
    }
  }
  if (const Json* status = object(j, "status")) {
    if (const Json* alloc = object(*status, "allocation")) {
      c.allocated = true;
      if (const Json* devices = object(*alloc, "devices")) {
        if (const Json* results = array(*devices, "results")) {
          for (const Json& r : *results) {
            DeviceResult res;
            auto req = str(r, "request", where + ".results");
            auto drv = str(r, "driver", where + ".results");
            auto pool = str(r, "pool", where + ".results");
            auto dev = str(r, "device", where + ".results");
            if (!req || !drv || !pool || !dev) return fail(where + ": bad allocation result");
            if (drv->empty() || pool->empty() || dev->empty())
              return fail(where + ": allocation result without driver, pool or device");
            res.request = *req, res.driver = *drv, res.pool = *pool, res.device = *dev;
            c.results.push_back(std::move(res));
          }
        }
      }
      if (auto ns = alloc->find("nodeSelector"); ns != alloc->end()) c.node_selector = *ns;
    }
    if (const Json* rf = array(*status, "reservedFor")) {
      for (const Json& r : *rf) {
        ConsumerRef ref;
        auto g = str(r, "apiGroup", where + ".reservedFor");
        auto res = str(r, "resource", where + ".reservedFor");
        auto n = str(r, "name", where + ".reservedFor");
        auto uid = str(r, "uid", where + ".reservedFor");
        if (!g || !res || !n || !uid) return fail(where + ": bad reservedFor entry");
        ref.api_group = *g, ref.resource = *res, ref.name = *n, ref.uid = *uid;
        c.reserved_for.push_back(std::move(ref));
      }
    }
  }
  return c;
}

}  // namespace waterline::dra
