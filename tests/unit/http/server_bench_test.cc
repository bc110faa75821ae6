// A manual throughput harness, disabled by default. Run a server with a no-op route and
// point wrk at it:
//   SERVEML_BENCH_PORT=18080 SERVEML_BENCH_SECONDS=20 SERVEML_BENCH_THREADS=1
//     unit_http --gtest_also_run_disabled_tests --gtest_filter='ServerBench.*' &
//   wrk -t1 -c64 -d10s http://127.0.0.1:18080/ping
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "core/thread_pool.h"
#include "http/server.h"

namespace serveml::http {
namespace {

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::atoi(v) : fallback;
}

TEST(ServerBench, DISABLED_ServeNoOpRoute) {
  Router router;
  router.Add("GET", "/ping",
             [](Request&, Responder respond) { respond(Response::Json(200, R"({"ok":true})")); });
  ServerOptions opts;
  opts.port = static_cast<uint16_t>(EnvInt("SERVEML_BENCH_PORT", 18080));
  opts.io_threads = static_cast<size_t>(EnvInt("SERVEML_BENCH_THREADS", 0));
  Server server(opts, &router);
  // Declared after the server so it is drained (and its Responders called) first.
  ThreadPool pool(1, "bench");
  // Same answer from a worker thread: measures the cross-thread post path.
  router.Add("GET", "/ping-async", [&pool](Request&, Responder respond) {
    pool.Submit([respond] { respond(Response::Json(200, R"({"ok":true})")); });
  });
  ASSERT_EQ(server.Start(), "");
  std::this_thread::sleep_for(std::chrono::seconds(EnvInt("SERVEML_BENCH_SECONDS", 20)));
  server.Stop(1);
}

}  // namespace
}  // namespace serveml::http
