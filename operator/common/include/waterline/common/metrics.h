#pragma once
// Waterline's Prometheus registry: a thin layer over prometheus-cpp's core (its Counter,
// Gauge and Histogram, prometheus::Family for the labelled children, MetricFamily and
// TextSerializer for the text exposition format 0.0.4). The layer keeps Waterline's
// registration rules, deterministic output, callback families and series removal.
//
//   metrics::Registry& reg = metrics::defaultRegistry();   // or a private Registry in tests
//   auto& reconciles = reg.counter("waterline_reconcile_total", "Reconciles by result.",
//                                  {"controller", "result"});
//   reconciles.withLabels({"capacitypool", "success"}).inc();
//   auto& latency = reg.histogram("waterline_reconcile_duration_seconds", "Reconcile time.",
//                                 {"controller"}, {0.01, 0.1, 1, 10});
//   latency.withLabels({"capacitypool"}).observe(0.25);
//   reg.gaugeFunc("waterline_pool_ready_gpus", "Ready GPUs per pool.", {"pool"},
//                 [&] { return std::vector<metrics::Sample>{{{"a"}, 3}}; });
//   std::string body = reg.serialize();   // serve with kContentType
//
// Rules enforced at registration (std::invalid_argument otherwise):
//   - metric names match [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]*
//     and do not start with "__"; label names are unique within a family;
//   - HELP text is not empty;
//   - counters end with "_total"; gauges and histograms end with none of "_total",
//     "_count", "_sum", "_bucket" (what promtool's linter asks for);
//   - histograms have no "le" label and strictly increasing, non-NaN buckets (a
//     trailing +Inf is implied and may be omitted);
//   - no two families share a name, and no family's series names collide with
//     another's (a histogram "x" owns x, x_bucket, x_sum and x_count).
//
// Output is deterministic: families sorted by name, children by label values (in the
// family's label-name order, compared lexicographically), labels in the family's
// label-name order. A family with label names but no children yet is omitted; an
// unlabelled family always prints (initially 0). The sample lines are prometheus-cpp's
// TextSerializer's: a histogram prints _count, _sum, then its buckets; values have 16
// significant digits; NaN prints as "Nan" (Prometheus parses it case-insensitively).
//
// Families are prometheus::Family objects owned by this registry (not by a
// prometheus::Registry, whose Remove() destroys the family: unregister() must keep the
// references that components hold valid). Other prometheus::Collectable sources (the
// process collector, processcollector.h) join the exposition through addCollectable().
//
// Thread-safety: everything is thread-safe. Child references returned by withLabels()
// stay valid until that child is remove()d; family references stay valid for the
// registry's lifetime (unregister() retires a family but keeps it alive). Callbacks
// run at scrape time, outside the registry's lock, and may be called concurrently
// from concurrent scrapes.
#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

namespace prometheus {
class Counter;
class Gauge;
class Histogram;
template <typename T>
class Family;
}  // namespace prometheus

namespace waterline::metrics {

inline constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

enum class Type { Counter, Gauge, Histogram };
const char* toString(Type t);

using LabelValues = std::vector<std::string>;

// A monotonically increasing value.
class Counter {
 public:
  explicit Counter(prometheus::Counter& c) : c_(&c) {}
  // v must be >= 0 (and not NaN): std::invalid_argument otherwise.
  void inc(double v = 1.0);
  double value() const;

 private:
  prometheus::Counter* c_;
};

// A value that goes up and down.
class Gauge {
 public:
  explicit Gauge(prometheus::Gauge& g) : g_(&g) {}
  void set(double v);
  void inc(double v = 1.0);
  void dec(double v = 1.0);
  void add(double v) { inc(v); }
  void sub(double v) { dec(v); }
  double value() const;

 private:
  prometheus::Gauge* g_;
};

// Cumulative buckets, _sum and _count. Observations are consistent with each other in
// a snapshot (_count equals the +Inf bucket).
class Histogram {
 public:
  Histogram(prometheus::Histogram& h, std::shared_ptr<const std::vector<double>> upperBounds)
      : h_(&h), bounds_(std::move(upperBounds)) {}

  // Bucket i counts v <= bound[i]; NaN counts in +Inf only (as client_golang).
  void observe(double v);

  struct Snapshot {
    std::vector<std::uint64_t> cumulative;  // one per upper bound, then +Inf
    double sum = 0;
    std::uint64_t count = 0;
  };
  Snapshot snapshot() const;
  // The finite upper bounds (the +Inf bucket is implied).
  const std::vector<double>& upperBounds() const { return *bounds_; }

 private:
  prometheus::Histogram* h_;
  std::shared_ptr<const std::vector<double>> bounds_;
};

// Prometheus's DefBuckets: .005 .01 .025 .05 .1 .25 .5 1 2.5 5 10.
std::vector<double> defaultBuckets();
// start, start*factor, ... (count values), rounded to 15 significant digits so that
// printed bounds read 1e-05 rather than 9.999999999999999e-06.
std::vector<double> exponentialBuckets(double start, double factor, int count);
std::vector<double> linearBuckets(double start, double width, int count);

// One sample of a callback family.
struct Sample {
  LabelValues labelValues;
  double value = 0;
};
using CollectFn = std::function<std::vector<Sample>()>;

// The common part of every family.
class FamilyBase {
 public:
  virtual ~FamilyBase() = default;
  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  Type type() const { return type_; }
  const std::vector<std::string>& labelNames() const { return labelNames_; }

  // This family's samples (nothing if it has none), labels in labelNames() order,
  // children sorted by label values.
  virtual void collect(std::vector<prometheus::MetricFamily>& out) const = 0;
  // Appends this family's HELP, TYPE and sample lines (nothing if it has no samples).
  void serialize(std::string& out) const;

 protected:
  FamilyBase(std::string name, std::string help, Type type, std::vector<std::string> labelNames)
      : name_(std::move(name)), help_(std::move(help)), type_(type),
        labelNames_(std::move(labelNames)) {}
  void checkArity(std::size_t n) const;

 private:
  std::string name_;
  std::string help_;
  Type type_;
  std::vector<std::string> labelNames_;
};

// A family of children of one kind (Counter, Gauge, Histogram) with fixed label names.
// The prometheus-cpp type behind each of ours.
template <class T> struct Backing;
template <> struct Backing<Counter> { using type = prometheus::Counter; };
template <> struct Backing<Gauge> { using type = prometheus::Gauge; };
template <> struct Backing<Histogram> { using type = prometheus::Histogram; };

template <class T>
class Family final : public FamilyBase {
 public:
  // Histograms: buckets are the finite upper bounds; others: ignored.
  Family(std::string name, std::string help, Type type, std::vector<std::string> labelNames,
         std::vector<double> buckets = {});
  ~Family() override;

  // The child for these label values (one per label name, in order), created on first
  // use. Wrong arity: std::invalid_argument.
  T& withLabels(const LabelValues& values);
  T& withLabels(std::initializer_list<std::string_view> values);
  // The only child of a family without label names.
  T& get() { return withLabels(LabelValues{}); }
  // Drops a child (its references dangle afterwards). Returns whether it existed.
  bool remove(const LabelValues& values);
  std::size_t size() const;

  void collect(std::vector<prometheus::MetricFamily>& out) const override;

 private:
  std::unique_ptr<prometheus::Family<typename Backing<T>::type>> prom_;
  std::shared_ptr<const std::vector<double>> bounds_;  // histograms
  mutable std::mutex mu_;
  std::map<LabelValues, std::unique_ptr<T>> children_;
};

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

extern template class Family<Counter>;
extern template class Family<Gauge>;
extern template class Family<Histogram>;

// A family whose samples a callback produces at scrape time. Samples with the wrong
// number of label values are dropped; for duplicate label values the first wins.
class CallbackFamily final : public FamilyBase {
 public:
  CallbackFamily(std::string name, std::string help, Type type, std::vector<std::string> labelNames,
                 CollectFn collect)
      : FamilyBase(std::move(name), std::move(help), type, std::move(labelNames)),
        collect_(std::move(collect)) {}
  void collect(std::vector<prometheus::MetricFamily>& out) const override;

 private:
  CollectFn collect_;
};

class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  CounterFamily& counter(std::string name, std::string help,
                         std::vector<std::string> labelNames = {});
  // The counter family `name` when it is registered already with the same help and label
  // names (several components sharing one metric), else a new one; throws when the name
  // is taken by something else.
  CounterFamily& sharedCounter(std::string name, std::string help, std::vector<std::string> labelNames = {});
  GaugeFamily& gauge(std::string name, std::string help, std::vector<std::string> labelNames = {});
  HistogramFamily& histogram(std::string name, std::string help,
                             std::vector<std::string> labelNames = {},
                             std::vector<double> buckets = defaultBuckets());
  // Gauge (or counter: name must end in _total) families computed at scrape time.
  void gaugeFunc(std::string name, std::string help, std::vector<std::string> labelNames,
                 CollectFn collect);
  void counterFunc(std::string name, std::string help, std::vector<std::string> labelNames,
                   CollectFn collect);

  // Removes a family from the exposition (and frees its names for re-registration).
  // The family object itself lives on until the registry dies, so references held
  // elsewhere stay valid. Returns whether it was registered.
  bool unregister(std::string_view name);
  // Another source of families (e.g. the process collector), collected at every scrape.
  // `names` are the family names it produces: they are reserved like registered ones
  // (std::invalid_argument on a collision) and collected families with other names are
  // dropped. removeCollectable() takes it out again.
  void addCollectable(std::shared_ptr<prometheus::Collectable> c, std::vector<std::string> names);
  bool removeCollectable(const prometheus::Collectable* c);
  bool contains(std::string_view name) const;
  std::vector<std::string> familyNames() const;

  // Every family with samples, sorted by name (what serialize() prints).
  std::vector<prometheus::MetricFamily> collect() const;
  // The whole exposition, text format 0.0.4 (prometheus::TextSerializer).
  std::string serialize() const;

 private:
  struct Extra {
    std::shared_ptr<prometheus::Collectable> collectable;
    std::vector<std::string> names;
  };
  void reserveLocked(const std::string& family, const std::vector<std::string>& series);
  void add(std::shared_ptr<FamilyBase> f);
  void addLocked(std::shared_ptr<FamilyBase> f);

  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<FamilyBase>, std::less<>> families_;
  std::map<std::string, std::string, std::less<>> seriesOwner_;  // series name -> family
  std::vector<std::shared_ptr<FamilyBase>> retired_;
  std::vector<Extra> extras_;
};

// The process-wide registry (what /metrics serves).
Registry& defaultRegistry();

// Formatting helpers (exposed for tests and other exposition writers).
bool isValidMetricName(std::string_view name);
bool isValidLabelName(std::string_view name);
// (formatValue is not what /metrics prints: that is TextSerializer's; it stays for
// other writers of Prometheus values, e.g. bucket names in logs and tests.)
// NaN, +Inf, -Inf; integral values below 1e15 without exponent or fraction; otherwise
// the shortest representation that round-trips, %g style (0.0001, 1e-05, 0.25).
std::string formatValue(double v);
// Label value escaping: backslash, double quote and newline.
std::string escapeLabelValue(std::string_view v);
// HELP escaping: backslash and newline.
std::string escapeHelp(std::string_view v);

}  // namespace waterline::metrics
