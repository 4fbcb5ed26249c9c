// The metrics registry (host/metrics/Metrics): counters, gauges and
// histograms keyed by name and canonical labels, value() for the tests and
// the admin API, and the Prometheus text format that /metrics serves.
#include "metrics/Metrics.h"

#include <catch2/catch.hpp>

#include <limits>
#include <stdexcept>
#include <thread>
#include <vector>

using clayhook::Histogram;
using clayhook::Metrics;

TEST_CASE("metrics: a counter adds up, per name and label set", "[metrics]") {
    Metrics m;
    auto& a = m.counter("clayhook_requests_total", R"(source="clay",status="200")");
    a.add(1);
    a.add(2);
    m.counter_add("clayhook_requests_total", R"(source="clay",status="200")", 4);
    m.counter_add("clayhook_requests_total", R"(source="clay",status="401")", 1);
    m.counter_add("clayhook_dropped_total", "", 5);
    // The same series is the same value: the reference stays valid.
    CHECK(&m.counter("clayhook_requests_total", R"(source="clay",status="200")") == &a);
    CHECK(a.get() == 7);
    CHECK(m.value("clayhook_requests_total", R"(source="clay",status="200")") == 7);
    CHECK(m.value("clayhook_requests_total", R"(source="clay",status="401")") == 1);
    CHECK(m.value("clayhook_dropped_total", "") == 5);
}

TEST_CASE("metrics: value() is 0 for what was never counted", "[metrics]") {
    Metrics m;
    m.counter_add("clayhook_requests_total", R"(status="200")", 3);
    CHECK(m.value("clayhook_nothing_total", "") == 0);
    CHECK(m.value("clayhook_requests_total", R"(status="500")") == 0);
    CHECK(m.value("clayhook_requests_total", "") == 0);  // labels are part of the key
}

TEST_CASE("metrics: counters added to from many threads lose nothing", "[metrics]") {
    Metrics m;
    auto& c = m.counter("clayhook_parallel_total");
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < 10000; ++i)
                c.add(1);
        });
    for (auto& t : threads)
        t.join();
    CHECK(m.value("clayhook_parallel_total", "") == 40000);
}

TEST_CASE("metrics: a gauge holds the last value set", "[metrics]") {
    Metrics m;
    m.gauge_set("clayhook_queue_depth", "", 12);
    m.gauge_set("clayhook_queue_depth", "", 3);
    m.gauge("clayhook_lag_seconds", R"(plugin="p")").set(1.5);
    m.gauge("clayhook_lag_seconds", R"(plugin="p")").add(-0.5);
    CHECK(m.value("clayhook_queue_depth", "") == 3);
    CHECK(m.value("clayhook_lag_seconds", R"(plugin="p")") == 1);
}

TEST_CASE("metrics: a histogram counts each value in the first bucket it fits", "[metrics]") {
    Histogram h({0.1, 1, 10});
    for (double v : {0.05, 0.1, 0.5, 1.0, 5.0, 50.0})
        h.observe(v);
    // Upper bounds are inclusive (le): 0.1 is in the 0.1 bucket, 1 in the 1 bucket.
    CHECK(h.cumulative() == std::vector<uint64_t>{2, 4, 5, 6});
    CHECK(h.count() == 6);
    CHECK(h.sum() == Approx(56.65));
    CHECK(h.bounds() == std::vector<double>{0.1, 1, 10});

    Metrics m;
    auto& r = m.histogram("clayhook_handle_seconds", R"(plugin="p")", {0.5});
    CHECK(&m.histogram("clayhook_handle_seconds", R"(plugin="p")", {0.5}) == &r);
    CHECK(&m.histogram("clayhook_handle_seconds", R"(plugin="q")", {0.5}) != &r);
}

TEST_CASE("metrics: labels are canonical: sorted by name, values quoted and escaped", "[metrics]") {
    CHECK(Metrics::canonical_labels("") == "");
    CHECK(Metrics::canonical_labels("status=200") == R"(status="200")");
    CHECK(Metrics::canonical_labels("status=200,plugin=sink,method=POST") ==
          R"(method="POST",plugin="sink",status="200")");
    // The same set written in any order is the same series.
    CHECK(Metrics::canonical_labels("b=2,a=1") == Metrics::canonical_labels("a=1,b=2"));
    // Empty pairs are skipped; a value may hold '='; the last of a repeated name wins.
    CHECK(Metrics::canonical_labels(",a=1,,b=2,") == R"(a="1",b="2")");
    CHECK(Metrics::canonical_labels("a=x=y") == R"(a="x=y")");
    CHECK(Metrics::canonical_labels("a=1,a=2") == R"(a="2")");
    CHECK(Metrics::canonical_labels("a=") == R"(a="")");
    // Backslash, double quote and newline are escaped as the text format wants.
    CHECK(Metrics::canonical_labels("path=C:\\dir\\\"x\"\nend") == R"(path="C:\\dir\\\"x\"\nend")");
}

TEST_CASE("metrics: malformed label lists and names are refused", "[metrics]") {
    for (const char* bad : {"status", "a=1,b", "=x", "1a=x", "a-b=x", "a:b=x", "a b=x"}) {
        INFO("labels '" << bad << "'");
        CHECK_THROWS_AS(Metrics::canonical_labels(bad), std::invalid_argument);
    }
    CHECK(Metrics::valid_name("clayhook_requests_total"));
    CHECK(Metrics::valid_name("_private"));
    CHECK(Metrics::valid_name("job:rate5m"));  // colons: allowed in metric names
    CHECK(Metrics::valid_name("a1"));
    CHECK_FALSE(Metrics::valid_name(""));
    CHECK_FALSE(Metrics::valid_name("1a"));
    CHECK_FALSE(Metrics::valid_name("a-b"));
    CHECK_FALSE(Metrics::valid_name("a b"));
}

TEST_CASE("metrics: render() is the Prometheus text format, families sorted by name", "[metrics]") {
    Metrics m;
    m.set_help("clayhook_requests_total", "Requests by source and status.");
    m.counter_add("clayhook_requests_total", R"(source="clay",status="401")", 2);
    m.counter_add("clayhook_requests_total", R"(source="clay",status="200")", 40);
    m.gauge_set("clayhook_last_reload_success", "", 1);
    m.gauge_set("clayhook_lag_seconds", R"(plugin="sink")", 0.25);
    auto& h = m.histogram("clayhook_commit_seconds", "", {0.0005, 0.01, 1});
    h.observe(0.000244140625);  // 2^-12 and 2^-7: exact in binary, so is the sum
    h.observe(0.0078125);
    h.observe(2);
    auto& hl = m.histogram("clayhook_handle_seconds", R"(plugin="sink")", {1});
    hl.observe(0.5);
    // Help without any series: not rendered.
    m.set_help("clayhook_unused_total", "Never counted.");

    CHECK(m.render() ==
          "# TYPE clayhook_commit_seconds histogram\n"
          "clayhook_commit_seconds_bucket{le=\"0.0005\"} 1\n"
          "clayhook_commit_seconds_bucket{le=\"0.01\"} 2\n"
          "clayhook_commit_seconds_bucket{le=\"1\"} 2\n"
          "clayhook_commit_seconds_bucket{le=\"+Inf\"} 3\n"
          "clayhook_commit_seconds_sum 2.008056640625\n"
          "clayhook_commit_seconds_count 3\n"
          "# TYPE clayhook_handle_seconds histogram\n"
          "clayhook_handle_seconds_bucket{plugin=\"sink\",le=\"1\"} 1\n"
          "clayhook_handle_seconds_bucket{plugin=\"sink\",le=\"+Inf\"} 1\n"
          "clayhook_handle_seconds_sum{plugin=\"sink\"} 0.5\n"
          "clayhook_handle_seconds_count{plugin=\"sink\"} 1\n"
          "# TYPE clayhook_lag_seconds gauge\n"
          "clayhook_lag_seconds{plugin=\"sink\"} 0.25\n"
          "# TYPE clayhook_last_reload_success gauge\n"
          "clayhook_last_reload_success 1\n"
          "# HELP clayhook_requests_total Requests by source and status.\n"
          "# TYPE clayhook_requests_total counter\n"
          "clayhook_requests_total{source=\"clay\",status=\"200\"} 40\n"
          "clayhook_requests_total{source=\"clay\",status=\"401\"} 2\n");
}

TEST_CASE("metrics: values that are not finite render as the text format spells them",
          "[metrics]") {
    Metrics m;
    m.gauge_set("a", "", std::numeric_limits<double>::infinity());
    m.gauge_set("b", "", -std::numeric_limits<double>::infinity());
    m.gauge_set("c", "", std::numeric_limits<double>::quiet_NaN());
    m.gauge_set("d", "", 1e21);
    CHECK(m.render() ==
          "# TYPE a gauge\na +Inf\n"
          "# TYPE b gauge\nb -Inf\n"
          "# TYPE c gauge\nc NaN\n"
          "# TYPE d gauge\nd 1e+21\n");
}
