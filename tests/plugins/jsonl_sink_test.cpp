// The bundled example plugin, loaded through the real loader, handed events.
#include "config/Config.h"
#include "log/Logger.h"
#include "metrics/Metrics.h"
#include "plugins/PluginInstance.h"
#include "plugins/PluginLibrary.h"
#include "support/TempDir.h"
#include "support/TestPaths.h"

#include <clayhook/json.hpp>

#include <catch2/catch.hpp>

#include <sstream>

using namespace clayhook;
using clayhook::test::TempDir;

TEST_CASE("jsonl-sink appends one parsable line per event", "[jsonl-sink]") {
    TempDir stage, out;
    std::ostringstream log_out;
    Logger log(log_out, Level::info);
    Metrics metrics;
    auto lib = PluginLibrary::load("sink", std::string(test::kBundledPluginDir) + "/jsonl-sink.so",
                                   stage.path().string());
    CHECK(lib->name() == "jsonl-sink");
    CHECK(lib->event_patterns() == std::vector<std::string>{"*"});

    PluginConfig pc;
    pc.name = "sink";
    std::string path = out.file("nested/dir/events.jsonl");
    pc.config_json = "{\"path\":" + json::quote(path) + "}";
    auto inst = PluginInstance::create(lib, pc, log, metrics);

    const std::string bodies[] = {
        R"({"event":"enrichment.completed","row_id":"row_1","data":{"email":"a@b.com"}})",
        R"({"event":"table.row.created","row_id":"row_\"2\"","note":"tab\there"})"};
    int n = 0;
    for (const auto& b : bodies) {
        EventView e;
        std::string id = "ev_" + std::to_string(++n);
        std::string key = "k" + id;
        std::string type = json::parse(b).get_string("event", "");
        e.id = id;
        e.source = "clay";
        e.type = type;
        e.idempotency_key = key;
        e.body = b;
        e.attempt = 1;
        REQUIRE(inst->handle(e).status == CLAYHOOK_DONE);
    }
    std::istringstream lines(test::read_file(path));
    std::string line;
    std::vector<json::Value> got;
    while (std::getline(lines, line))
        got.push_back(json::parse(line));
    REQUIRE(got.size() == 2);
    CHECK(got[0].get_string("id", "") == "ev_1");
    CHECK(got[0].get_string("type", "") == "enrichment.completed");
    CHECK(got[0].at_path("body.data.email")->as_string() == "a@b.com");
    CHECK(got[1].get_string("key", "") == "kev_2");
    CHECK(got[1].at_path("body.row_id")->as_string() == "row_\"2\"");
    CHECK(metrics.value("clayhook_plugin_lines_written_total", R"(plugin="sink")") == 2);
}

TEST_CASE("jsonl-sink without a path is refused with its reason", "[jsonl-sink]") {
    TempDir stage;
    std::ostringstream log_out;
    Logger log(log_out, Level::info);
    Metrics metrics;
    auto lib = PluginLibrary::load("sink", std::string(test::kBundledPluginDir) + "/jsonl-sink.so",
                                   stage.path().string());
    PluginConfig pc;
    pc.name = "sink";
    pc.config_json = "{}";
    try {
        PluginInstance::create(lib, pc, log, metrics);
        FAIL("created without a path");
    } catch (const PluginError& e) {
        CHECK_THAT(std::string(e.what()), Catch::Contains("'path' is required"));
    }
}

TEST_CASE("jsonl-sink takes a batch in one write, lines in order", "[jsonl-sink]") {
    TempDir stage, out;
    std::ostringstream log_out;
    Logger log(log_out, Level::info);
    Metrics metrics;
    auto lib = PluginLibrary::load("sink", std::string(test::kBundledPluginDir) + "/jsonl-sink.so",
                                   stage.path().string());
    CHECK(lib->descriptor().max_batch_size == 256);
    PluginConfig pc;
    pc.name = "sink";
    std::string path = out.file("events.jsonl");
    pc.config_json = "{\"path\":" + json::quote(path) + ",\"fsync\":true}";
    auto inst = PluginInstance::create(lib, pc, log, metrics);
    std::vector<std::string> ids, bodies;
    for (int i = 0; i < 5; ++i) {
        ids.push_back("ev_" + std::to_string(i));
        bodies.push_back(R"({"event":"table.row.created","row_id":"row_)" + std::to_string(i) +
                         R"("})");
    }
    std::vector<EventView> batch;
    for (int i = 0; i < 5; ++i) {
        EventView e;
        e.id = ids[static_cast<size_t>(i)];
        e.source = "clay";
        e.type = "table.row.created";
        e.idempotency_key = ids[static_cast<size_t>(i)];
        e.body = bodies[static_cast<size_t>(i)];
        e.received_at_ms = 1000 + i;
        e.attempt = 1;
        batch.push_back(e);
    }
    auto results = inst->handle_batch(batch);
    REQUIRE(results.size() == 5);
    for (const auto& r : results)
        CHECK(r.status == CLAYHOOK_DONE);
    std::istringstream lines(test::read_file(path));
    std::string line;
    int n = 0;
    while (std::getline(lines, line)) {
        auto v = json::parse(line);
        CHECK(v.get_string("id", "") == ids[static_cast<size_t>(n)]);
        CHECK(v.get_int("received_at_ms", 0) == 1000 + n);
        CHECK(v.get_int("handled_at_ms", 0) >= 1000);
        ++n;
    }
    CHECK(n == 5);
    CHECK(metrics.value("clayhook_plugin_lines_written_total", R"(plugin="sink")") == 5);
}
