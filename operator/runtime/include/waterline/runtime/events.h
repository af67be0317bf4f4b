#pragma once
// An event recorder writing core/v1 Events (what `kubectl describe` and `kubectl get
// events` show). Like client-go's recorder it aggregates repeats (same object, type,
// reason and message within 10 minutes bump `count` instead of creating new Events),
// and it never blocks a reconciler: events go through a bounded queue to a background
// writer; when the queue is full, events are dropped and counted.
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "waterline/common/time.h"
#include "waterline/kube/client.h"

namespace waterline::runtime {

class EventRecorder {
 public:
  virtual ~EventRecorder() = default;
  // type is "Normal" or "Warning"; reason is UpperCamelCase.
  virtual void event(const kube::Json& object, const std::string& type, const std::string& reason,
                     const std::string& message) = 0;
};
using EventRecorderPtr = std::shared_ptr<EventRecorder>;

class KubeEventRecorder final : public EventRecorder {
 public:
  KubeEventRecorder(kube::ClientPtr client, std::string component, std::string host,
                    TimeSourcePtr time, size_t queueLimit = 1000);
  ~KubeEventRecorder() override;

  void event(const kube::Json& object, const std::string& type, const std::string& reason,
             const std::string& message) override;
  // Waits until the queue is empty (tests, shutdown), bounded by `timeout`.
  bool flush(Duration timeout);
  void stop();
  uint64_t dropped() const { return dropped_.load(); }
  uint64_t written() const { return written_.load(); }

 private:
  struct Pending {
    kube::Json involved;  // ObjectReference
    std::string ns, type, reason, message;
    SystemTime when;
  };
  struct Seen {
    std::string name;  // Event object name
    kube::Json obj;    // last written Event
    int count = 0;
    SystemTime last;
  };
  void loop();
  void write(const Pending& p);

  kube::ClientPtr client_;
  std::string component_, host_;
  TimeSourcePtr time_;
  size_t limit_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> q_;
  bool busy_ = false;
  bool stopped_ = false;
  std::map<std::string, Seen> seen_;  // aggregation key -> last event
  std::atomic<uint64_t> dropped_{0}, written_{0};
  std::thread thread_;
};

// Records into memory; for unit tests of reconcilers.
class FakeEventRecorder final : public EventRecorder {
 public:
  struct Recorded {
    std::string objectKey, type, reason, message;
  };
  void event(const kube::Json& object, const std::string& type, const std::string& reason,
             const std::string& message) override;
  std::vector<Recorded> events() const;

 private:
  mutable std::mutex mu_;
  std::vector<Recorded> events_;
};

// ObjectReference for an object (apiVersion, kind, namespace, name, uid, resourceVersion).
kube::Json objectReference(const kube::Json& obj);

}  // namespace waterline::runtime
