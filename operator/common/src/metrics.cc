#include "waterline/common/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <set>
#include <stdexcept>

namespace waterline::metrics {

namespace {

bool endsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

void appendLabels(std::string& out, const std::vector<std::string>& names, const LabelValues& values,
                  std::string_view extraName = {}, std::string_view extraValue = {}) {
  if (names.empty() && extraName.empty()) return;
  out += '{';
  bool first = true;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (!first) out += ',';
    first = false;
    out += names[i];
    out += "=\"";
    out += escapeLabelValue(values[i]);
    out += '"';
  }
  if (!extraName.empty()) {
    if (!first) out += ',';
    out += extraName;
    out += "=\"";
    out += extraValue;
    out += '"';
  }
  out += '}';
}

void appendSample(std::string& out, std::string_view name, const std::vector<std::string>& names,
                  const LabelValues& values, double v, std::string_view extraName = {},
                  std::string_view extraValue = {}) {
  out += name;
  appendLabels(out, names, values, extraName, extraValue);
  out += ' ';
  out += formatValue(v);
  out += '\n';
}

void appendHeader(std::string& out, const FamilyBase& f) {
  out += "# HELP ";
  out += f.name();
  out += ' ';
  out += escapeHelp(f.help());
  out += "\n# TYPE ";
  out += f.name();
  out += ' ';
  out += toString(f.type());
  out += '\n';
}

void appendChild(std::string& out, const FamilyBase& f, const LabelValues& lv, const Counter& c) {
  appendSample(out, f.name(), f.labelNames(), lv, c.value());
}
void appendChild(std::string& out, const FamilyBase& f, const LabelValues& lv, const Gauge& g) {
  appendSample(out, f.name(), f.labelNames(), lv, g.value());
}
void appendChild(std::string& out, const FamilyBase& f, const LabelValues& lv, const Histogram& h) {
  const Histogram::Snapshot s = h.snapshot();
  const std::string bucket = f.name() + "_bucket";
  const auto& bounds = h.upperBounds();
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    appendSample(out, bucket, f.labelNames(), lv, static_cast<double>(s.cumulative[i]), "le",
                 formatValue(bounds[i]));
  }
  appendSample(out, bucket, f.labelNames(), lv, static_cast<double>(s.count), "le", "+Inf");
  appendSample(out, f.name() + "_sum", f.labelNames(), lv, s.sum);
  appendSample(out, f.name() + "_count", f.labelNames(), lv, static_cast<double>(s.count));
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
  v_.fetch_add(v, std::memory_order_relaxed);
}

Histogram::Histogram(std::shared_ptr<const std::vector<double>> upperBounds)
    : bounds_(std::move(upperBounds)), counts_(bounds_->size() + 1, 0) {}

void Histogram::observe(double v) {
  // Bucket i counts v <= bound[i]; NaN lands in +Inf only (as client_golang).
  const auto& b = *bounds_;
  const std::size_t i =
      std::isnan(v) ? b.size() : static_cast<std::size_t>(std::lower_bound(b.begin(), b.end(), v) - b.begin());
  std::lock_guard g(mu_);
  counts_[i] += 1;
  sum_ += v;
  count_ += 1;
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  std::lock_guard g(mu_);
  s.cumulative.resize(counts_.size());
  std::uint64_t acc = 0;
  for (std::size_t i = 0; i < counts_.size(); ++i) {
    acc += counts_[i];
    s.cumulative[i] = acc;
  }
  s.sum = sum_;
  s.count = count_;
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

template <class T>
Family<T>::Family(std::string name, std::string help, Type type, std::vector<std::string> labelNames,
                  Factory factory)
    : FamilyBase(std::move(name), std::move(help), type, std::move(labelNames)),
      factory_(std::move(factory)) {
  if (this->labelNames().empty()) children_.emplace(LabelValues{}, factory_());
}

template <class T>
T& Family<T>::withLabels(const LabelValues& values) {
  checkArity(values.size());
  std::lock_guard g(mu_);
  auto it = children_.find(values);
  if (it == children_.end()) it = children_.emplace(values, factory_()).first;
  return *it->second;
}

template <class T>
T& Family<T>::withLabels(std::initializer_list<std::string_view> values) {
  return withLabels(LabelValues(values.begin(), values.end()));
}

template <class T>
bool Family<T>::remove(const LabelValues& values) {
  std::lock_guard g(mu_);
  return children_.erase(values) > 0;
}

template <class T>
std::size_t Family<T>::size() const {
  std::lock_guard g(mu_);
  return children_.size();
}

template <class T>
void Family<T>::serialize(std::string& out) const {
  std::lock_guard g(mu_);
  if (children_.empty()) return;
  appendHeader(out, *this);
  for (const auto& [lv, child] : children_) appendChild(out, *this, lv, *child);
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

void CallbackFamily::serialize(std::string& out) const {
  std::vector<Sample> samples = collect_ ? collect_() : std::vector<Sample>{};
  std::erase_if(samples, [&](const Sample& s) { return s.labelValues.size() != labelNames().size(); });
  std::stable_sort(samples.begin(), samples.end(),
                   [](const Sample& a, const Sample& b) { return a.labelValues < b.labelValues; });
  samples.erase(std::unique(samples.begin(), samples.end(),
                            [](const Sample& a, const Sample& b) { return a.labelValues == b.labelValues; }),
                samples.end());
  if (samples.empty()) return;
  appendHeader(out, *this);
  for (const auto& s : samples) appendSample(out, name(), labelNames(), s.labelValues, s.value);
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
  const auto series = seriesNames(*f);
  for (const auto& s : series) {
    auto it = seriesOwner_.find(s);
    if (it != seriesOwner_.end()) {
      throw std::invalid_argument("metric " + f->name() + ": series " + s +
                                  " collides with family " + it->second);
    }
  }
  for (const auto& s : series) seriesOwner_.emplace(s, f->name());
  families_.emplace(f->name(), std::move(f));
}

CounterFamily& Registry::counter(std::string name, std::string help,
                                 std::vector<std::string> labelNames) {
  validate(name, help, Type::Counter, labelNames);
  auto f = std::make_shared<CounterFamily>(std::move(name), std::move(help), Type::Counter,
                                           std::move(labelNames),
                                           [] { return std::make_unique<Counter>(); });
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
                                           std::move(labelNames),
                                           [] { return std::make_unique<Counter>(); });
  addLocked(f);
  return *f;
}

GaugeFamily& Registry::gauge(std::string name, std::string help, std::vector<std::string> labelNames) {
  validate(name, help, Type::Gauge, labelNames);
  auto f = std::make_shared<GaugeFamily>(std::move(name), std::move(help), Type::Gauge,
                                         std::move(labelNames),
                                         [] { return std::make_unique<Gauge>(); });
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
  auto bounds = std::make_shared<const std::vector<double>>(std::move(buckets));
  auto f = std::make_shared<HistogramFamily>(std::move(name), std::move(help), Type::Histogram,
                                             std::move(labelNames),
                                             [bounds] { return std::make_unique<Histogram>(bounds); });
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

std::string Registry::serialize() const {
  std::vector<std::shared_ptr<FamilyBase>> fams;
  {
    std::lock_guard g(mu_);
    fams.reserve(families_.size());
    for (const auto& [n, f] : families_) fams.push_back(f);
  }
  std::string out;
  for (const auto& f : fams) f->serialize(out);
  return out;
}

Registry& defaultRegistry() {
  static Registry* r = new Registry();
  return *r;
}

}  // namespace waterline::metrics
