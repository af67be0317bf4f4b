#pragma once
// Where the router's routing table comes from. A RoutesSource polls in its own thread
// and hands each new table to a callback; a source that fails keeps the last good table
// (the callback simply is not called), and the router's staleness rule decides how long
// that table's entries are trusted.
//
//   FileRoutesSource: a JSON file (RoutingTableList, array or single RoutingTable),
//                     reloaded when its size, mtime or inode changes.
//   HttpRoutesSource: GET <url> (the operator's /v1/routes) with If-None-Match; 304
//                     keeps the table, 200 replaces it. With a long-poll duration, a
//                     poll that already holds a table asks ?waitSeconds=N and the
//                     operator answers as soon as the table changes (or 304 after N s).
// RoutesMerger combines several sources' tables (earlier sources win on a deployment
// that appears in more than one).
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "waterline/common/time.h"
#include "waterline/routing/table.h"

namespace waterline::router {

class RoutesSource {
 public:
  using Callback = std::function<void(routing::RoutingTable)>;
  enum class PollResult { Updated, Unchanged, Error };

  virtual ~RoutesSource() = default;
  // Polls once now (on the caller's thread), calling the callback when the table changed.
  virtual PollResult pollOnce() = 0;
  virtual std::string describe() const = 0;
  // The last error (empty after a successful poll).
  virtual std::string lastError() const = 0;

  // Polls once on the caller's thread (so the callback has seen a good table, if there is
  // one, when start() returns), then every `interval` in a background thread until stop()
  // (or destruction).
  void start(Callback cb, Duration interval);
  void stop();

 protected:
  void deliver(routing::RoutingTable t);
  void stopThread();  // call from derived destructors
  // Called by stopThread() before it joins: unblock a poll in progress.
  virtual void interrupt() {}
  // True between stop() and the next start().
  bool stopRequested();

 private:
  Callback cb_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

using RoutesSourcePtr = std::unique_ptr<RoutesSource>;

class FileRoutesSource final : public RoutesSource {
 public:
  explicit FileRoutesSource(std::string path);
  ~FileRoutesSource() override;
  PollResult pollOnce() override;
  std::string describe() const override { return "file:" + path_; }
  std::string lastError() const override;

 private:
  std::string path_;
  mutable std::mutex mu_;
  std::string lastError_;
  struct Stamp {
    long long size = -1, mtimeNs = 0, inode = 0;
    bool operator==(const Stamp&) const = default;
  };
  std::optional<Stamp> stamp_;
};

class HttpRoutesSource final : public RoutesSource {
 public:
  // url: http://host[:port]/path. longPoll: how long the server may hold a poll
  // (waitSeconds, whole seconds; zero: plain polling).
  explicit HttpRoutesSource(std::string url, Duration timeout = std::chrono::seconds(5),
                            Duration longPoll = Duration::zero());
  ~HttpRoutesSource() override;
  PollResult pollOnce() override;
  std::string describe() const override { return url_; }
  std::string lastError() const override;
  std::string etag() const;

 protected:
  void interrupt() override;

 private:
  std::string url_, host_, port_, path_;
  Duration timeout_, longPoll_;
  mutable std::mutex mu_;
  std::string etag_, lastError_;
  int activeFd_ = -1;  // the socket of the poll in progress
};

// Keeps each source's latest table and returns their union.
class RoutesMerger {
 public:
  explicit RoutesMerger(size_t sources) : tables_(sources) {}
  routing::RoutingTable update(size_t source, routing::RoutingTable t);

 private:
  std::mutex mu_;
  std::vector<std::optional<routing::RoutingTable>> tables_;
};

}  // namespace waterline::router
