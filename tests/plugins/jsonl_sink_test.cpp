// The bundled example plugin, loaded through the real loader, handed events.
#include "config/Config.h"
#include "log/Logger.h"
#include "metrics/Metrics.h"
#include "plugins/PluginInstance.h"
#include "plugins/PluginLibrary.h"
#include "support/TempDir.h"
#include "support/TestPaths.h"
#include "support/Wait.h"

#include <clayhook/json.hpp>

#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
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
        // The host refuses it, from the plugin's declared config (ABI 1.1).
        CHECK_THAT(std::string(e.what()), Catch::Contains("config.path: is required"));
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
// One batch of table.row.created events over `ids` and `bodies` (which must
// outlive it: the views point into them).
std::vector<EventView> views(const std::vector<std::string>& ids,
                             const std::vector<std::string>& bodies, uint32_t attempt = 1) {
    std::vector<EventView> batch;
    for (size_t i = 0; i < ids.size(); ++i) {
        EventView e;
        e.id = ids[i];
        e.source = "clay";
        e.type = "table.row.created";
        e.idempotency_key = ids[i];
        e.body = bodies[i];
        e.received_at_ms = 1000;
        e.attempt = attempt;
        batch.push_back(e);
    }
    return batch;
}

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
        for (const auto& r : inst->handle_batch(views(ids, bodies)))
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

// Rotation (max_bytes, rotate_every, keep): docs/plugins/jsonl-sink.md.
namespace {

namespace fs = std::filesystem;

std::shared_ptr<PluginLibrary> load_sink(const TempDir& stage) {
    return PluginLibrary::load("sink", std::string(test::kBundledPluginDir) + "/jsonl-sink.so",
                               stage.path().string());
}

// An instance named "sink" writing to `path`; `extra` is more of the config
// object, e.g. R"(,"max_bytes":"1KiB")".
std::unique_ptr<PluginInstance> make_sink(const std::shared_ptr<PluginLibrary>& lib,
                                          const std::string& path, const std::string& extra,
                                          Logger& log, Metrics& metrics) {
    PluginConfig pc;
    pc.name = "sink";
    pc.config_json = "{\"path\":" + json::quote(path) + extra + "}";
    return PluginInstance::create(lib, pc, log, metrics);
}

// One batch of `n` events, ids ev_<first> to ev_<first + n - 1>.
std::vector<HandleOutcome> deliver(PluginInstance& inst, int first, int n, uint32_t attempt = 1) {
    std::vector<std::string> ids, bodies;
    for (int i = first; i < first + n; ++i) {
        ids.push_back("ev_" + std::to_string(i));
        bodies.push_back(R"({"event":"table.row.created","row_id":"row_)" + std::to_string(i) +
                         R"("})");
    }
    return inst.handle_batch(views(ids, bodies, attempt));
}

bool all_done(const std::vector<HandleOutcome>& results) {
    for (const auto& r : results)
        if (r.status != CLAYHOOK_DONE) return false;
    return !results.empty();
}

// A rotated file of events.jsonl: events-YYYYMMDDTHHMMSSZ-<n>.jsonl.
const std::regex kRotatedName(R"(events-(\d{8}T\d{6}Z)-([1-9]\d*)\.jsonl)");

struct SinkFile {
    std::string name;
    uintmax_t bytes = 0;
    std::vector<std::string> ids;  // of its lines, each of which parsed
};

// The rotated files of events.jsonl in `dir` (regular files only), oldest
// first by the time and number in their names, then events.jsonl itself.
std::vector<SinkFile> sink_files(const fs::path& dir) {
    std::vector<std::pair<std::pair<std::string, long long>, std::string>> rotated;
    for (const auto& entry : fs::directory_iterator(dir)) {
        std::smatch m;
        const std::string name = entry.path().filename().string();
        if (entry.is_regular_file() && !entry.is_symlink() &&
            std::regex_match(name, m, kRotatedName))
            rotated.push_back({{m[1].str(), std::stoll(m[2].str())}, name});
    }
    std::sort(rotated.begin(), rotated.end());
    std::vector<std::string> names;
    for (const auto& r : rotated)
        names.push_back(r.second);
    names.push_back("events.jsonl");
    std::vector<SinkFile> files;
    for (const auto& name : names) {
        SinkFile f;
        f.name = name;
        const std::string text = test::read_file((dir / name).string());
        f.bytes = text.size();
        INFO(name);
        CHECK((text.empty() || text.back() == '\n'));
        std::istringstream in(text);
        std::string line;
        while (std::getline(in, line))
            f.ids.push_back(json::parse(line).get_string("id", ""));
        files.push_back(std::move(f));
    }
    return files;
}

size_t rotated_count(const fs::path& dir) {
    size_t n = 0;
    for (const auto& entry : fs::directory_iterator(dir))
        if (entry.is_regular_file() &&
            std::regex_match(entry.path().filename().string(), kRotatedName))
            ++n;
    return n;
}

std::vector<std::string> ids_in(const std::vector<SinkFile>& files) {
    std::vector<std::string> all;
    for (const auto& f : files)
        all.insert(all.end(), f.ids.begin(), f.ids.end());
    return all;
}

std::vector<std::string> ids_from(int first, int n) {
    std::vector<std::string> ids;
    for (int i = first; i < first + n; ++i)
        ids.push_back("ev_" + std::to_string(i));
    return ids;
}

// Polls `done` until it holds, for up to 10 s.
bool eventually(const std::function<bool()>& done) {
    return test::wait_until(done, std::chrono::seconds(10));
}

double metric(const Metrics& metrics, const std::string& name) {
    return metrics.value("clayhook_plugin_" + name, R"(plugin="sink")");
}

}  // namespace

TEST_CASE("jsonl-sink rotates by size: no file past max_bytes but a lone big batch, no split",
          "[jsonl-sink]") {
    TempDir stage, out;
    std::ostringstream log_out;
    Logger log(log_out, Level::info);
    Metrics metrics;
    auto inst = make_sink(load_sink(stage), out.file("events.jsonl"),
                          R"(,"max_bytes":"1KiB","keep":0)", log, metrics);
    // Lines are about 190 bytes: a file takes a few batches; the one of 12
    // is more than max_bytes on its own.
    const std::vector<int> sizes = {1, 2, 3, 1, 1, 2, 4, 1, 3, 2, 12, 1, 2, 3, 1,
                                    2, 2, 1, 4, 3, 1, 1, 2, 5, 1, 2,  3, 2, 1, 1};
    std::map<std::string, size_t> batch_of;
    int next = 0, big = 0;
    for (size_t b = 0; b < sizes.size(); ++b) {
        if (sizes[b] == 12) big = next;
        REQUIRE(all_done(deliver(*inst, next, sizes[b])));
        for (const auto& id : ids_from(next, sizes[b]))
            batch_of[id] = b;
        next += sizes[b];
    }
    auto files = sink_files(out.path());
    REQUIRE(files.size() >= 10);
    // Nothing else in the folder: every file is the current one or rotated.
    CHECK(static_cast<size_t>(std::distance(fs::directory_iterator(out.path()),
                                            fs::directory_iterator())) == files.size());
    // Every event exactly once, in order, every line parsed (sink_files).
    CHECK(ids_in(files) == ids_from(0, next));
    // A batch is never split, and only the big one takes a file past max_bytes.
    std::map<size_t, std::string> file_of_batch;
    size_t oversize = 0;
    for (const auto& f : files) {
        INFO(f.name << ": " << f.bytes << " bytes");
        CHECK(!f.ids.empty());
        for (const auto& id : f.ids) {
            auto [it, fresh] = file_of_batch.emplace(batch_of[id], f.name);
            CHECK(it->second == f.name);
        }
        if (f.bytes > 1024) {
            ++oversize;
            CHECK(f.ids == ids_from(big, 12));  // the batch of 12, alone in its file
        }
    }
    CHECK(oversize == 1);
    CHECK(metric(metrics, "files_rotated_total") == static_cast<double>(files.size() - 1));
    CHECK(metric(metrics, "lines_written_total") == next);
    // A fresh file is created 0640 (less the umask).
    struct stat st {};
    REQUIRE(::stat(out.file("events.jsonl").c_str(), &st) == 0);
    CHECK((st.st_mode & 07777 & ~0640u) == 0);
    CHECK_THAT(log_out.str(), Catch::Contains("(max_bytes)"));
}

TEST_CASE("jsonl-sink keeps `keep` rotated files, deletes the oldest, and no other file",
          "[jsonl-sink]") {
    TempDir stage, out;
    std::ostringstream log_out;
    Logger log(log_out, Level::info);
    Metrics metrics;
    // Files that are not this sink's rotated files, even if they look close.
    const std::map<std::string, std::string> foreign = {
        {"notes.txt", "mine\n"},
        {"events-old.jsonl", "old\n"},
        {"events-20200101T000000Z-1.jsonl.gz", "gz\n"},
        {"events-20200101T000000Z-01.jsonl", "leading zero\n"},
        {"events-20200101T000000-1.jsonl", "no Z\n"},
        {"other-20200101T000000Z-1.jsonl", "another sink's\n"},
        {"events.jsonl.1", "logrotate's\n"},
    };
    for (const auto& [name, text] : foreign)
        out.write(name, text);
    fs::create_directory(out.path() / "events-20200101T000000Z-2.jsonl");  // a folder
    // One of its own from long ago: the oldest, deleted first.
    out.write("events-20200101T000000Z-1.jsonl", "{\"id\":\"ancient\"}\n");

    auto inst = make_sink(load_sink(stage), out.file("events.jsonl"),
                          R"(,"max_bytes":1024,"keep":3)", log, metrics);
    int next = 0;
    for (int b = 0; b < 40; ++b) {
        REQUIRE(all_done(deliver(*inst, next, 2)));
        next += 2;
    }
    const double rotations = metric(metrics, "files_rotated_total");
    REQUIRE(rotations >= 10);
    CHECK(rotated_count(out.path()) == 3);
    CHECK(!fs::exists(out.path() / "events-20200101T000000Z-1.jsonl"));
    CHECK(metric(metrics, "rotated_files_deleted_total") == rotations + 1 - 3);
    for (const auto& [name, text] : foreign)
        CHECK(test::read_file(out.file(name)) == text);
    CHECK(fs::is_directory(out.path() / "events-20200101T000000Z-2.jsonl"));
    // What is left is the newest: the last events, in order, up to the end.
    auto files = sink_files(out.path());
    REQUIRE(files.size() == 4);
    auto kept = ids_in(files);
    REQUIRE(!kept.empty());
    const int first = std::stoi(kept.front().substr(3));
    CHECK(kept == ids_from(first, next - first));
    CHECK_THAT(log_out.str(), Catch::Contains("deleted ") && Catch::Contains("(keep: 3)"));
}

TEST_CASE("jsonl-sink rotates by age, a quiet file too", "[jsonl-sink]") {
    TempDir stage, out;
    std::ostringstream log_out;
    Logger log(log_out, Level::info);
    Metrics metrics;
    auto inst = make_sink(load_sink(stage), out.file("events.jsonl"),
                          R"(,"rotate_every":"200ms","keep":0)", log, metrics);
    REQUIRE(all_done(deliver(*inst, 0, 3)));
    // No batch follows: the plugin's own timer rotates the file.
    REQUIRE(eventually([&] { return rotated_count(out.path()) == 1; }));
    auto files = sink_files(out.path());
    REQUIRE(files.size() == 2);
    CHECK(files[0].ids == ids_from(0, 3));
    CHECK(files[1].bytes == 0);
    // A fresh events.jsonl comes with the rotation, not with the next batch.
    CHECK(eventually([&] { return fs::exists(out.path() / "events.jsonl"); }));

    REQUIRE(all_done(deliver(*inst, 3, 2)));
    REQUIRE(eventually([&] { return rotated_count(out.path()) == 2; }));
    files = sink_files(out.path());
    REQUIRE(files.size() == 3);
    CHECK(files[1].ids == ids_from(3, 2));
    CHECK(files[2].bytes == 0);
    CHECK(ids_in(files) == ids_from(0, 5));
    CHECK(metric(metrics, "files_rotated_total") == 2);
    inst.reset();  // joins the timer: the log is ours to read
    CHECK_THAT(log_out.str(), Catch::Contains("(rotate_every)"));
}

TEST_CASE("jsonl-sink refuses a bad rotation config, naming the key", "[jsonl-sink]") {
    TempDir stage, out;
    std::ostringstream log_out;
    Logger log(log_out, Level::info);
    Metrics metrics;
    auto lib = load_sink(stage);
    const std::string path = out.file("events.jsonl");
    // The host checks the config against the plugin's declaration first
    // (ABI 1.1): unknown keys, types and units are refused in its words, at
    // plugins.<name>.config.<key>; the ranges and the rest, the plugin's own
    // ('<key>'), get the sizes in bytes and the durations in milliseconds.
    const std::vector<std::pair<std::string, std::vector<std::string>>> bad = {
        {R"("max_bytes":"10XB")", {"config.max_bytes:", "unknown size unit 'XB'"}},
        {R"("max_bytes":"64 MiB")", {"config.max_bytes:", "unknown size unit ' MiB'"}},
        {R"("max_bytes":-1)", {"config.max_bytes:", "expected a size"}},
        {R"("max_bytes":"-5MiB")", {"config.max_bytes:", "expected a size"}},
        {R"("max_bytes":100)", {"'max_bytes'", "too small", "1KiB"}},
        {R"("max_bytes":"2TiB")", {"config.max_bytes:", "unknown size unit 'TiB'"}},
        {R"("max_bytes":"1025GiB")", {"'max_bytes'", "too large"}},
        {R"("max_bytes":1.5)", {"config.max_bytes:", "expected a size"}},
        {R"("max_bytes":true)", {"config.max_bytes:", "expected a size"}},
        {R"("rotate_every":"2w")",
         {"config.rotate_every:", "unknown duration unit 'w'", "(ms, s, m, h, d)"}},
        {R"("rotate_every":"1.5h")", {"config.rotate_every:", "unknown duration unit '.5h'"}},
        {R"("rotate_every":"-1s")", {"config.rotate_every:", "expected a duration"}},
        {R"("rotate_every":-30)", {"config.rotate_every:", "expected a duration"}},
        {R"("rotate_every":"50ms")", {"'rotate_every'", "too short", "found 50ms"}},
        {R"("rotate_every":"")", {"config.rotate_every:", "expected a duration"}},
        {R"("keep":-1,"max_bytes":"1MiB")", {"'keep'", "between 0"}},
        {R"("keep":"some","max_bytes":"1MiB")", {"config.keep:", "whole number"}},
        {R"("keep":3)", {"'keep'", "only means something with max_bytes or rotate_every"}},
        {R"("bogus":1)",
         {"config.bogus: unknown key", "takes: path fsync max_bytes rotate_every keep"}},
        {R"("max_age":"1h")",
         {"config.max_age: unknown key", "takes: path fsync max_bytes rotate_every keep"}},
        {R"("fsync":"yes")", {"config.fsync:", "true or false"}},
    };
    for (const auto& [extra, says] : bad) {
        INFO(extra);
        try {
            make_sink(lib, path, "," + extra, log, metrics);
            FAIL_CHECK("created");
        } catch (const PluginError& e) {
            for (const auto& s : says)
                CHECK_THAT(std::string(e.what()), Catch::Contains(s));
        }
    }
    try {
        PluginConfig pc;
        pc.name = "sink";
        pc.config_json = R"({"path":12})";
        PluginInstance::create(lib, pc, log, metrics);
        FAIL_CHECK("created");
    } catch (const PluginError& e) {
        CHECK_THAT(std::string(e.what()), Catch::Contains("config.path: expected text"));
    }
    const std::vector<std::string> good = {
        R"(,"max_bytes":"64MiB","rotate_every":"1h","keep":0)",
        R"(,"max_bytes":65536)",
        R"(,"max_bytes":"10MB","keep":5)",
        R"(,"max_bytes":"512KiB","fsync":true)",
        R"(,"rotate_every":30)",
        R"(,"rotate_every":"500ms","keep":100)",
        R"(,"rotate_every":null)",  // as if not given
        R"(,"fsync":false)",
        R"(,"keep":10)",  // the declared default: the same as leaving it out
    };
    for (const auto& extra : good) {
        INFO(extra);
        CHECK_NOTHROW(make_sink(lib, path, extra, log, metrics));
    }
    // A bare number in rotate_every is seconds in the config (the host's
    // meaning), handed to the plugin as milliseconds.
    CHECK_THAT(log_out.str(), Catch::Contains("every 30000ms"));
}

TEST_CASE("jsonl-sink answers retry when a rotation fails, and loses nothing", "[jsonl-sink]") {
    TempDir stage, out;
    std::ostringstream log_out;
    Logger log(log_out, Level::info);
    Metrics metrics;
    const std::string dir = out.file("logs");
    const std::string path = dir + "/events.jsonl";
    auto inst = make_sink(load_sink(stage), path, R"(,"max_bytes":"1KiB","fsync":true,"keep":0)",
                          log, metrics);
    REQUIRE(all_done(deliver(*inst, 0, 4)));
    const std::string before = test::read_file(path);
    // A second batch as large does not fit: it needs a rotation first.
    REQUIRE(before.size() > 512);
    REQUIRE(before.size() <= 1024);

    // The folder replaced by a file: renaming fails, as root too (a
    // read-only folder would not stop root, as CI runs).
    {
        fs::rename(dir, dir + ".away");
        out.write("logs", "not a folder\n");
        auto results = deliver(*inst, 4, 4);
        REQUIRE(results.size() == 4);
        for (const auto& r : results) {
            CHECK(r.status == CLAYHOOK_RETRY);
            CHECK_THAT(r.reason, Catch::Contains("cannot rotate " + path) &&
                                     Catch::Contains("Not a directory"));
        }
        CHECK(test::read_file(dir + ".away/events.jsonl") == before);
        CHECK_THAT(log_out.str(), Catch::Contains("level=warn") &&
                                      Catch::Contains("cannot rotate " + path) &&
                                      Catch::Contains("Not a directory"));
        fs::remove(dir);
        fs::rename(dir + ".away", dir);
        CHECK(metric(metrics, "rotation_failures_total") == 1);
    }
    // The host hands the batch over again; now it goes through.
    REQUIRE(all_done(deliver(*inst, 4, 4, 2)));
    auto files = sink_files(dir);
    REQUIRE(files.size() == 2);
    CHECK(files[0].ids == ids_from(0, 4));
    CHECK(files[1].ids == ids_from(4, 4));
    CHECK(metric(metrics, "files_rotated_total") == 1);
}

TEST_CASE("jsonl-sink with rotation writes to whatever file is at its path", "[jsonl-sink]") {
    TempDir stage, out;
    std::ostringstream log_out;
    Logger log(log_out, Level::info);
    Metrics metrics;
    auto lib = load_sink(stage);
    const std::string path = out.file("events.jsonl");

    SECTION("its file moved away: a fresh one at the path") {
        auto inst = make_sink(lib, path, R"(,"max_bytes":"64KiB")", log, metrics);
        REQUIRE(all_done(deliver(*inst, 0, 2)));
        fs::rename(path, out.file("moved.jsonl"));
        REQUIRE(all_done(deliver(*inst, 2, 2)));
        CHECK(test::read_file(out.file("moved.jsonl")).find("ev_1") != std::string::npos);
        CHECK(sink_files(out.path()).back().ids == ids_from(2, 2));
    }
    SECTION("two instances of one entry, as during a reload, share the rotation") {
        Metrics metrics2;
        auto a = make_sink(lib, path, R"(,"max_bytes":"1KiB","keep":0)", log, metrics);
        auto b = make_sink(lib, path, R"(,"max_bytes":"1KiB","keep":0)", log, metrics2);
        int next = 0;
        for (int i = 0; i < 30; ++i) {
            REQUIRE(all_done(deliver(i % 2 == 0 ? *a : *b, next, 2)));
            next += 2;
        }
        auto files = sink_files(out.path());
        CHECK(files.size() >= 10);
        CHECK(ids_in(files) == ids_from(0, next));
        for (const auto& f : files) {
            INFO(f.name);
            CHECK(f.bytes <= 1024);
            CHECK(f.ids.size() % 2 == 0);  // whole batches of two
        }
    }
}

TEST_CASE("jsonl-sink rotates a file found past max_bytes before its first batch, not at start",
          "[jsonl-sink]") {
    TempDir stage, out;
    std::ostringstream log_out;
    Logger log(log_out, Level::info);
    Metrics metrics;
    std::string old;
    for (int i = 0; i < 100; ++i)
        old += "{\"id\":\"old_" + std::to_string(i) + "\"}\n";
    REQUIRE(old.size() > 1024);
    out.write("events.jsonl", old);
    auto inst = make_sink(load_sink(stage), out.file("events.jsonl"),
                          R"(,"max_bytes":"1KiB","rotate_every":"1h")", log, metrics);
    CHECK(rotated_count(out.path()) == 0);  // creating it (clayhook check) rotates nothing
    REQUIRE(all_done(deliver(*inst, 0, 1)));
    auto files = sink_files(out.path());
    REQUIRE(files.size() == 2);
    CHECK(test::read_file(out.file(files[0].name)) == old);
    CHECK(files[1].ids == ids_from(0, 1));
}
