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

#include <memory>
#include <sstream>
#include <string>
#include <vector>

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

namespace {

// The sink loaded through the real loader, writing to a fresh file.
struct Sink {
    TempDir stage, out;
    std::ostringstream log_out;
    Logger log{log_out, Level::info};
    Metrics metrics;
    std::string path = out.file("events.jsonl");
    std::unique_ptr<PluginInstance> inst;

    Sink() {
        auto lib = PluginLibrary::load(
            "sink", std::string(test::kBundledPluginDir) + "/jsonl-sink.so", stage.path().string());
        PluginConfig pc;
        pc.name = "sink";
        pc.config_json = "{\"path\":" + json::quote(path) + "}";
        inst = PluginInstance::create(lib, pc, log, metrics);
    }

    // Hands the bodies over as one batch, ids ev_0, ev_1, ...
    void deliver(const std::vector<std::string>& bodies) {
        std::vector<std::string> ids;
        for (size_t i = 0; i < bodies.size(); ++i)
            ids.push_back("ev_" + std::to_string(i));
        std::vector<EventView> batch;
        for (size_t i = 0; i < bodies.size(); ++i) {
            EventView e;
            e.id = ids[i];
            e.source = "clay";
            e.type = "table.row.created";
            e.idempotency_key = ids[i];
            e.body = bodies[i];
            e.received_at_ms = 1000;
            batch.push_back(e);
        }
        for (const auto& r : inst->handle_batch(batch))
            REQUIRE(r.status == CLAYHOOK_DONE);
    }

    // The file split at '\n' (the JSON-lines separator); the file must end
    // with one.
    std::vector<std::string> lines() const {
        std::string text = test::read_file(path);
        REQUIRE(!text.empty());
        REQUIRE(text.back() == '\n');
        std::vector<std::string> got;
        std::istringstream in(text);
        std::string line;
        while (std::getline(in, line))
            got.push_back(line);
        return got;
    }
};

// `text` escaped for use inside a JSON string literal (no quotes around it).
std::string test_escape(const std::string& text) {
    std::string q = json::quote(text);
    return q.substr(1, q.size() - 2);
}

// A line that reads like a whole record, as an attacker would plant it.
const std::string kForged =
    R"({"id":"forged","source":"clay","type":"enrichment.completed","key":"k","attempt":1,)"
    R"("received_at_ms":1,"handled_at_ms":1,"body":{"row_id":"planted"}})";

}  // namespace

TEST_CASE("jsonl-sink writes a pretty-printed body as one compact line", "[jsonl-sink]") {
    Sink s;
    const std::string body =
        "{\n"
        "  \"event\": \"enrichment.completed\",\n"
        "  \"row_id\": \"row_1\",\n"
        "  \"data\": {\n"
        "    \"emails\": [\"a@b.com\",\n\t\"c@d.com\"],\n"
        "    \"score\": 0.5, \"n\": -12, \"big\": 9007199254740993,\n"
        "    \"ok\": true, \"none\": null, \"text\": \"caf\xC3\xA9 \\u00e9\"\r\n"
        "  }\n"
        "}\n";
    s.deliver({body});
    auto lines = s.lines();
    REQUIRE(lines.size() == 1);
    auto v = json::parse(lines[0]);
    CHECK(v.get_string("id", "") == "ev_0");
    REQUIRE(v.find("body") != nullptr);
    // The body as written reads back to the body as sent.
    CHECK(json::dump(*v.find("body")) == json::dump(json::parse(body)));
    CHECK(v.at_path("body.data.emails.1")->as_string() == "c@d.com");
    CHECK(v.at_path("body.data.big")->as_int64() == 9007199254740993);
    CHECK(v.at_path("body.data.text")->as_string() == "caf\xC3\xA9 \xC3\xA9");
    // Compact: no whitespace outside strings is left from the pretty-printing.
    CHECK_THAT(lines[0], Catch::Contains(R"("emails":["a@b.com","c@d.com"])"));
}

TEST_CASE("jsonl-sink cannot be made to write a second record line", "[jsonl-sink]") {
    Sink s;
    SECTION("an escaped newline and record inside a string stay inside it") {
        const std::string body =
            R"({"event":"table.row.created","note":"x\n)" + test_escape(kForged) + R"(\n"})";
        s.deliver({body});
        auto lines = s.lines();
        REQUIRE(lines.size() == 1);
        auto v = json::parse(lines[0]);
        CHECK(v.get_string("id", "") == "ev_0");
        CHECK(v.at_path("body.note")->as_string() == "x\n" + kForged + "\n");
    }
    SECTION("a forged record on a line of its own inside a pretty-printed body") {
        const std::string body = "{\"event\":\"table.row.created\",\"x\":\n" + kForged + "\n}";
        s.deliver({body});
        auto lines = s.lines();
        REQUIRE(lines.size() == 1);
        auto v = json::parse(lines[0]);
        CHECK(v.get_string("id", "") == "ev_0");
        CHECK(v.at_path("body.x.id")->as_string() == "forged");
    }
    SECTION("a body that is a forged-looking record padded with newlines") {
        const std::string body = "\n\r\n  \t\n" + kForged + "\n\n \n";
        s.deliver({body});
        auto lines = s.lines();
        REQUIRE(lines.size() == 1);
        auto v = json::parse(lines[0]);
        CHECK(v.get_string("id", "") == "ev_0");
        CHECK(v.at_path("body.id")->as_string() == "forged");
        CHECK(json::dump(*v.find("body")) == json::dump(json::parse(kForged)));
    }
    SECTION("a body that is not JSON is written as a string, never raw") {
        const std::string body = "not json\n" + kForged + "\n{\"unclosed\":";
        s.deliver({body});
        auto lines = s.lines();
        REQUIRE(lines.size() == 1);
        auto v = json::parse(lines[0]);
        CHECK(v.get_string("id", "") == "ev_0");
        CHECK(v.find("body")->as_string() == body);
    }
    SECTION("a body that is not JSON nor UTF-8 still gives a line that parses") {
        const std::string body = "\xFF\xC0\x80 bad\n" + kForged + "\n\xE2\x82";
        s.deliver({body});
        auto lines = s.lines();
        REQUIRE(lines.size() == 1);
        auto v = json::parse(lines[0]);
        // Bytes that are not UTF-8 become U+FFFD; the rest is kept.
        CHECK(v.find("body")->as_string() == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD bad\n" +
                                                 kForged + "\n\xEF\xBF\xBD\xEF\xBF\xBD");
    }
    SECTION("Unicode line breaks (U+2028, U+2029, U+0085) are written escaped") {
        // Python's str.splitlines() and older JavaScript end a line at these.
        const std::string body = "{\"a\":\"x\xE2\x80\xA8" + test_escape(kForged) +
                                 "\xE2\x80\xA9y\xC2\x85z\",\"\xE2\x80\xA8k\":1}";
        s.deliver({body});
        auto lines = s.lines();
        REQUIRE(lines.size() == 1);
        CHECK(lines[0].find("\xE2\x80\xA8") == std::string::npos);
        CHECK(lines[0].find("\xE2\x80\xA9") == std::string::npos);
        CHECK(lines[0].find("\xC2\x85") == std::string::npos);
        CHECK_THAT(lines[0], Catch::Contains(R"(x\u2028{)"));
        auto v = json::parse(lines[0]);
        CHECK(v.at_path("body.a")->as_string() ==
              "x\xE2\x80\xA8" + kForged + "\xE2\x80\xA9y\xC2\x85z");
        CHECK(v.find("body")->get_int("\xE2\x80\xA8k", 0) == 1);
    }
    SECTION("a batch of such bodies: one line per event, in order") {
        const std::vector<std::string> bodies = {
            "{\n\"a\": 1\n}\n",
            "\n" + kForged + "\n",
            "",
            "[1,\n2]",
            "oops\n" + kForged,
            R"({"s":"\n)" + test_escape(kForged) + R"("})",
        };
        s.deliver(bodies);
        auto lines = s.lines();
        REQUIRE(lines.size() == bodies.size());
        for (size_t i = 0; i < lines.size(); ++i) {
            auto v = json::parse(lines[i]);
            CHECK(v.get_string("id", "") == "ev_" + std::to_string(i));
        }
        CHECK(json::dump(*json::parse(lines[0]).find("body")) == R"({"a":1})");
        CHECK(json::parse(lines[1]).at_path("body.id")->as_string() == "forged");
        CHECK(json::parse(lines[2]).find("body")->is_null());
        CHECK(json::dump(*json::parse(lines[3]).find("body")) == "[1,2]");
        CHECK(json::parse(lines[4]).find("body")->as_string() == "oops\n" + kForged);
        CHECK(json::parse(lines[5]).at_path("body.s")->as_string() == "\n" + kForged);
        CHECK(s.metrics.value("clayhook_plugin_lines_written_total", R"(plugin="sink")") == 6);
    }
}
