#include "waterline/common/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <set>
#include <sstream>
#include <stdexcept>
#include <type_traits>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/text_serializer.h>

namespace waterline::metrics {

namespace {

bool endsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Reorders each sample's labels to the family's label-name order (prometheus-cpp keeps
// them in a std::map, i.e. by name), keeping other labels (none today) after them, and
// sorts the samples by those values.
void orderSamples(prometheus::MetricFamily& mf, const std::vector<std::string>& names) {
  std::vector<std::pair<LabelValues, prometheus::ClientMetric>> keyed;
  keyed.reserve(mf.metric.size());
  for (auto& m : mf.metric) {
    std::vector<prometheus::ClientMetric::Label> ordered;
    ordered.reserve(m.label.size());
    LabelValues key;
    key.reserve(m.label.size());
    for (const auto& n : names) {
      auto it = std::find_if(m.label.begin(), m.label.end(), [&](const auto& l) { return l.name == n; });
      if (it != m.label.end()) {
        key.push_back(it->value);
        ordered.push_back(*it);
      }
    }
    for (auto& l : m.label) {
      if (std::find(names.begin(), names.end(), l.name) == names.end()) ordered.push_back(std::move(l));
    }
    m.label = std::move(ordered);
    keyed.emplace_back(std::move(key), std::move(m));
  }
  std::stable_sort(keyed.begin(), keyed.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  mf.metric.clear();
  for (auto& [k, m] : keyed) mf.metric.push_back(std::move(m));
}

prometheus::MetricType promType(Type t) {
  switch (t) {
    case Type::Counter: return prometheus::MetricType::Counter;
    case Type::Gauge: return prometheus::MetricType::Gauge;
    case Type::Histogram: return prometheus::MetricType::Histogram;
  }
  return prometheus::MetricType::Untyped;
}

std::string serializeFamilies(const std::vector<prometheus::MetricFamily>& fams) {
  std::ostringstream os;
  prometheus::TextSerializer().Serialize(os, fams);
  return std::move(os).str();
}

std::vector<std::string> seriesNames(const FamilyBase& f) {
  if (f.type() == Type::Histogram) {
    return {f.name(), f.name() + "_bucket", f.name() + "_sum", f.name() + "_count"};
  }
  return {f.name()};
}

void validate(const std::string& name, const std::string& help, Type type,
              const std::vector<std::string>& labelNames) {
  auto fail = [&](const std::string& why) {
    throw std::invalid_argument("metric " + name + ": " + why);
  };
  if (!isValidMetricName(name)) fail("invalid metric name");
  if (help.empty()) fail("empty HELP text");
  if (type == Type::Counter) {
    if (!endsWith(name, "_total")) fail("counter names must end with _total");
  } else {
    for (std::string_view suffix : {"_total", "_count", "_sum", "_bucket"}) {
      if (endsWith(name, suffix)) fail("non-counter names must not end with " + std::string(suffix));
    }
  }
  std::set<std::string> seen;
  for (const auto& l : labelNames) {
    if (!isValidLabelName(l)) fail("invalid label name \"" + l + "\"");
    if (type == Type::Histogram && l == "le") fail("histograms cannot have an \"le\" label");
    if (!seen.insert(l).second) fail("duplicate label name " + l);
  }
}

}  // namespace

const char* toString(Type t) {
  switch (t) {
    case Type::Counter: return "counter";
    case Type::Gauge: return "gauge";
    case Type::Histogram: return "histogram";
  }
  return "untyped";
}

bool isValidMetricName(std::string_view name) {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    const bool digit = c >= '0' && c <= '9';
    if (!(alpha || (i > 0 && digit))) return false;
  }
  return true;
}

bool isValidLabelName(std::string_view name) {
  if (name.empty() || name.starts_with("__")) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    const bool digit = c >= '0' && c <= '9';
    if (!(alpha || (i > 0 && digit))) return false;
  }
  return true;
}

std::string formatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    return std::to_string(static_cast<long long>(v));
  }
  // %g style with the shortest round-trip precision, as Go's FormatFloat(v, 'g', -1):
  // 0.0001 stays fixed, 1e-05 goes scientific.
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general);
  return std::string(buf, r.ptr);
}

std::string escapeLabelValue(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
  return out;
}

std::string escapeHelp(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
  return out;
}

void Counter::inc(double v) {
  if (!(v >= 0)) throw std::invalid_argument("counter cannot decrease");
  c_->Increment(v);
}
double Counter::value() const { return c_->Value(); }

void Gauge::set(double v) { g_->Set(v); }
void Gauge::inc(double v) { g_->Increment(v); }
void Gauge::dec(double v) { g_->Decrement(v); }
double Gauge::value() const { return g_->Value(); }

void Histogram::observe(double v) {
  if (std::isnan(v)) {
    // prometheus-cpp's lower_bound would put NaN in the first bucket.
    std::vector<double> inc(bounds_->size() + 1, 0.0);
    inc.back() = 1;
    h_->ObserveMultiple(inc, v);
    return;
  }
  h_->Observe(v);
}

Histogram::Snapshot Histogram::snapshot() const {
  const prometheus::ClientMetric m = h_->Collect();
  Snapshot s;
  s.cumulative.reserve(m.histogram.bucket.size());
  for (const auto& b : m.histogram.bucket) s.cumulative.push_back(b.cumulative_count);
  s.sum = m.histogram.sample_sum;
  s.count = m.histogram.sample_count;
  return s;
}

std::vector<double> defaultBuckets() { return {.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}; }

std::vector<double> exponentialBuckets(double start, double factor, int count) {
  if (count < 1 || !(start > 0) || !(factor > 1)) {
    throw std::invalid_argument("exponentialBuckets: need count >= 1, start > 0, factor > 1");
  }
  std::vector<double> out;
  out.reserve(count);
  for (int i = 0; i < count; ++i) {
    const double raw = start * std::pow(factor, i);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.15g", raw);
    out.push_back(std::strtod(buf, nullptr));
  }
  return out;
}

std::vector<double> linearBuckets(double start, double width, int count) {
  if (count < 1 || !(width > 0)) throw std::invalid_argument("linearBuckets: need count >= 1, width > 0");
  std::vector<double> out;
  out.reserve(count);
  for (int i = 0; i < count; ++i) {
    const double raw = start + width * i;
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.15g", raw);
    out.push_back(std::strtod(buf, nullptr));
  }
  return out;
}

void FamilyBase::checkArity(std::size_t n) const {
  if (n != labelNames_.size()) {
    throw std::invalid_argument("metric " + name_ + ": expected " +
                                std::to_string(labelNames_.size()) + " label values, got " +
                                std::to_string(n));
  }
}

void FamilyBase::serialize(std::string& out) const {
  std::vector<prometheus::MetricFamily> fams;
  collect(fams);
  out += serializeFamilies(fams);
}

namespace {
template <class T>
std::unique_ptr<T> makeChild(prometheus::Family<typename Backing<T>::type>& f, const prometheus::Labels& labels,
                             const std::shared_ptr<const std::vector<double>>& bounds) {
  if constexpr (std::is_same_v<T, Histogram>) {
    return std::make_unique<T>(f.Add(labels, prometheus::Histogram::BucketBoundaries(*bounds)), bounds);
  } else {
    return std::make_unique<T>(f.Add(labels));
  }
}
}  // namespace

template <class T>
Family<T>::Family(std::string name, std::string help, Type type, std::vector<std::string> labelNames,
                  std::vector<double> buckets)
    : FamilyBase(std::move(name), std::move(help), type, std::move(labelNames)),
      prom_(std::make_unique<prometheus::Family<typename Backing<T>::type>>(this->name(), escapeHelp(this->help()),
                                                                            prometheus::Labels{})),
      bounds_(std::make_shared<const std::vector<double>>(std::move(buckets))) {
  if (this->labelNames().empty()) children_.emplace(LabelValues{}, makeChild<T>(*prom_, {}, bounds_));
}

template <class T>
Family<T>::~Family() = default;

template <class T>
T& Family<T>::withLabels(const LabelValues& values) {
  checkArity(values.size());
  std::lock_guard g(mu_);
  auto it = children_.find(values);
  if (it == children_.end()) {
    prometheus::Labels labels;
    for (std::size_t i = 0; i < values.size(); ++i) labels.emplace(labelNames()[i], values[i]);
    it = children_.emplace(values, makeChild<T>(*prom_, labels, bounds_)).first;
  }
  return *it->second;
}

template <class T>
T& Family<T>::withLabels(std::initializer_list<std::string_view> values) {
  return withLabels(LabelValues(values.begin(), values.end()));
}

template <class T>
bool Family<T>::remove(const LabelValues& values) {
  std::lock_guard g(mu_);
  auto it = children_.find(values);
  if (it == children_.end()) return false;
  prometheus::Labels labels;
  for (std::size_t i = 0; i < values.size(); ++i) labels.emplace(labelNames()[i], values[i]);
  // prometheus::Family::Remove takes the child's address; find it through Add, which
  // returns the existing child for these labels.
  if constexpr (std::is_same_v<T, Histogram>) {
    prom_->Remove(&prom_->Add(labels, prometheus::Histogram::BucketBoundaries(*bounds_)));
  } else {
    prom_->Remove(&prom_->Add(labels));
  }
  children_.erase(it);
  return true;
}

template <class T>
std::size_t Family<T>::size() const {
  std::lock_guard g(mu_);
  return children_.size();
}

template <class T>
void Family<T>::collect(std::vector<prometheus::MetricFamily>& out) const {
  for (auto& mf : prom_->Collect()) {
    if (mf.metric.empty()) continue;
    orderSamples(mf, labelNames());
    out.push_back(std::move(mf));
  }
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

void CallbackFamily::collect(std::vector<prometheus::MetricFamily>& out) const {
  std::vector<Sample> samples = collect_ ? collect_() : std::vector<Sample>{};
  std::erase_if(samples, [&](const Sample& s) { return s.labelValues.size() != labelNames().size(); });
  std::stable_sort(samples.begin(), samples.end(),
                   [](const Sample& a, const Sample& b) { return a.labelValues < b.labelValues; });
  samples.erase(std::unique(samples.begin(), samples.end(),
                            [](const Sample& a, const Sample& b) { return a.labelValues == b.labelValues; }),
                samples.end());
  if (samples.empty()) return;
  prometheus::MetricFamily mf;
  mf.name = name();
  mf.help = escapeHelp(help());
  mf.type = promType(type());
  mf.metric.reserve(samples.size());
  for (const auto& s : samples) {
    prometheus::ClientMetric m;
    for (std::size_t i = 0; i < s.labelValues.size(); ++i) m.label.push_back({labelNames()[i], s.labelValues[i]});
    if (type() == Type::Counter) {
      m.counter.value = s.value;
    } else {
      m.gauge.value = s.value;
    }
    mf.metric.push_back(std::move(m));
  }
  out.push_back(std::move(mf));
}

Registry::Registry() = default;
Registry::~Registry() = default;

void Registry::add(std::shared_ptr<FamilyBase> f) {
  std::lock_guard g(mu_);
  addLocked(std::move(f));
}

void Registry::addLocked(std::shared_ptr<FamilyBase> f) {
  if (families_.count(f->name())) {
    throw std::invalid_argument("metric " + f->name() + ": already registered");
  }
  reserveLocked(f->name(), seriesNames(*f));
  families_.emplace(f->name(), std::move(f));
}

void Registry::reserveLocked(const std::string& family, const std::vector<std::string>& series) {
  for (const auto& s : series) {
    auto it = seriesOwner_.find(s);
    if (it != seriesOwner_.end()) {
      throw std::invalid_argument("metric " + family + ": series " + s +
                                  " collides with family " + it->second);
    }
  }
  for (const auto& s : series) seriesOwner_.emplace(s, family);
}

void Registry::addCollectable(std::shared_ptr<prometheus::Collectable> c, std::vector<std::string> names) {
  if (!c) throw std::invalid_argument("addCollectable: null collectable");
  std::lock_guard g(mu_);
  for (const auto& n : names) {
    if (!isValidMetricName(n)) throw std::invalid_argument("metric " + n + ": invalid metric name");
    if (families_.count(n)) throw std::invalid_argument("metric " + n + ": already registered");
  }
  // All or nothing: check every name before reserving any.
  for (const auto& n : names) {
    if (auto it = seriesOwner_.find(n); it != seriesOwner_.end()) {
      throw std::invalid_argument("metric " + n + ": collides with family " + it->second);
    }
  }
  for (const auto& n : names) reserveLocked(n, {n});
  extras_.push_back(Extra{std::move(c), std::move(names)});
}

bool Registry::removeCollectable(const prometheus::Collectable* c) {
  std::lock_guard g(mu_);
  auto it = std::find_if(extras_.begin(), extras_.end(), [&](const Extra& e) { return e.collectable.get() == c; });
  if (it == extras_.end()) return false;
  for (const auto& n : it->names) seriesOwner_.erase(n);
  extras_.erase(it);
  return true;
}

CounterFamily& Registry::counter(std::string name, std::string help,
                                 std::vector<std::string> labelNames) {
  validate(name, help, Type::Counter, labelNames);
  auto f = std::make_shared<CounterFamily>(std::move(name), std::move(help), Type::Counter,
                                           std::move(labelNames));
  add(f);
  return *f;
}

CounterFamily& Registry::sharedCounter(std::string name, std::string help, std::vector<std::string> labelNames) {
  validate(name, help, Type::Counter, labelNames);
  std::lock_guard g(mu_);
  if (auto it = families_.find(name); it != families_.end()) {
    auto* f = dynamic_cast<CounterFamily*>(it->second.get());
    if (!f || f->type() != Type::Counter || f->help() != help || f->labelNames() != labelNames)
      throw std::invalid_argument("metric " + name + ": registered already with another type, help or labels");
    return *f;
  }
  auto f = std::make_shared<CounterFamily>(std::move(name), std::move(help), Type::Counter,
                                           std::move(labelNames));
  addLocked(f);
  return *f;
}

GaugeFamily& Registry::gauge(std::string name, std::string help, std::vector<std::string> labelNames) {
  validate(name, help, Type::Gauge, labelNames);
  auto f = std::make_shared<GaugeFamily>(std::move(name), std::move(help), Type::Gauge,
                                         std::move(labelNames));
  add(f);
  return *f;
}

HistogramFamily& Registry::histogram(std::string name, std::string help,
                                     std::vector<std::string> labelNames, std::vector<double> buckets) {
  validate(name, help, Type::Histogram, labelNames);
  if (!buckets.empty() && std::isinf(buckets.back()) && buckets.back() > 0) buckets.pop_back();
  for (std::size_t i = 0; i < buckets.size(); ++i) {
    if (std::isnan(buckets[i]) || (i > 0 && !(buckets[i] > buckets[i - 1]))) {
      throw std::invalid_argument("metric " + name + ": buckets must be strictly increasing");
    }
  }
  auto f = std::make_shared<HistogramFamily>(std::move(name), std::move(help), Type::Histogram,
                                             std::move(labelNames), std::move(buckets));
  add(f);
  return *f;
}

void Registry::gaugeFunc(std::string name, std::string help, std::vector<std::string> labelNames,
                         CollectFn collect) {
  validate(name, help, Type::Gauge, labelNames);
  add(std::make_shared<CallbackFamily>(std::move(name), std::move(help), Type::Gauge,
                                       std::move(labelNames), std::move(collect)));
}

void Registry::counterFunc(std::string name, std::string help, std::vector<std::string> labelNames,
                           CollectFn collect) {
  validate(name, help, Type::Counter, labelNames);
  add(std::make_shared<CallbackFamily>(std::move(name), std::move(help), Type::Counter,
                                       std::move(labelNames), std::move(collect)));
}

bool Registry::unregister(std::string_view name) {
  std::lock_guard g(mu_);
  auto it = families_.find(name);
  if (it == families_.end()) return false;
  for (const auto& s : seriesNames(*it->second)) seriesOwner_.erase(s);
  retired_.push_back(std::move(it->second));
  families_.erase(it);
  return true;
}

bool Registry::contains(std::string_view name) const {
  std::lock_guard g(mu_);
  return families_.find(name) != families_.end();
}

std::vector<std::string> Registry::familyNames() const {
  std::lock_guard g(mu_);
  std::vector<std::string> out;
  for (const auto& [n, f] : families_) out.push_back(n);
  return out;
}

std::vector<prometheus::MetricFamily> Registry::collect() const {
  std::vector<std::shared_ptr<FamilyBase>> fams;
  std::vector<Extra> extras;
  {
    std::lock_guard g(mu_);
    fams.reserve(families_.size());
    for (const auto& [n, f] : families_) fams.push_back(f);
    extras = extras_;
  }
  // Outside the lock: callbacks and collectables may take their own locks.
  std::vector<prometheus::MetricFamily> out;
  for (const auto& f : fams) f->collect(out);
  for (const auto& e : extras) {
    for (auto& mf : e.collectable->Collect()) {
      if (mf.metric.empty()) continue;
      if (std::find(e.names.begin(), e.names.end(), mf.name) == e.names.end()) continue;
      mf.help = escapeHelp(mf.help);
      out.push_back(std::move(mf));
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

std::string Registry::serialize() const { return serializeFamilies(collect()); }

Registry& defaultRegistry() {
  static Registry* r = new Registry();
  return *r;
}

}  // namespace waterline::metrics
